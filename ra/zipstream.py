"""A zip writer for very many small files with constant memory.

``zipfile.ZipFile`` keeps a ZipInfo per entry until it writes the central
directory at the end (about 0.5 KB each: 500 MB for a million
certificates). This writer spools each central-directory record to a
temporary file as it goes and copies them out at the end, so memory stays
flat; it writes to any binary stream (no seeking), deflates every entry,
and switches to ZIP64 end records when the entry count or offsets need it
(APPNOTE 6.3.10, sections 4.3.7-4.3.16, 4.5.3). Entries must each be under
4 GiB; ``add_stream`` takes one larger-than-memory entry (the manifest)
with a data descriptor.
"""

import struct
import tempfile
import time
import zlib
from typing import BinaryIO

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_DESCRIPTOR = struct.Struct("<IIII")
_ZIP64_END = struct.Struct("<IQHHIIQQQQ")
_ZIP64_LOCATOR = struct.Struct("<IIQI")
_END = struct.Struct("<IHHHHIIH")
_UTF8 = 0x0800
_DESCRIPTOR_FLAG = 0x0008
_DEFLATE = 8
_MADE_BY = (3 << 8) | 45  # Unix, spec 4.5
_FILE_MODE = (0o100644 & 0xFFFF) << 16
_MAX32 = 0xFFFFFFFF


def _dos_time(epoch: float) -> tuple[int, int]:
    t = time.gmtime(epoch)
    return (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2), (
        ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday
    )


class ZipStreamWriter:
    def __init__(self, out: BinaryIO, *, level: int = 6, when: float | None = None):
        self.out = out
        self.level = level
        self.offset = 0
        self.count = 0
        self.central = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self.time, self.date = _dos_time(time.time() if when is None else when)
        self.closed = False

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.offset += len(data)

    def _central_record(
        self, name: bytes, flags: int, crc: int, csize: int, size: int, offset: int
    ) -> None:
        extra = b""
        if offset >= _MAX32:
            extra = struct.pack("<HHQ", 0x0001, 8, offset)
            offset = _MAX32
        self.central.write(
            _CENTRAL.pack(
                0x02014B50,
                _MADE_BY,
                45 if extra else 20,
                flags,
                _DEFLATE,
                self.time,
                self.date,
                crc,
                csize,
                size,
                len(name),
                len(extra),
                0,
                0,
                0,
                _FILE_MODE,
                offset,
            )
            + name
            + extra
        )
        self.count += 1

    def add(self, name: str, data: bytes) -> None:
        """One entry, held in memory (a certificate)."""
        encoded = name.encode()
        packer = zlib.compressobj(self.level, zlib.DEFLATED, -15)
        compressed = packer.compress(data) + packer.flush()
        crc = zlib.crc32(data)
        if len(compressed) >= _MAX32 or len(data) >= _MAX32:
            raise ValueError(f"{name}: entries must be under 4 GiB")
        offset = self.offset
        self._write(
            _LOCAL.pack(
                0x04034B50,
                20,
                _UTF8,
                _DEFLATE,
                self.time,
                self.date,
                crc,
                len(compressed),
                len(data),
                len(encoded),
                0,
            )
            + encoded
        )
        self._write(compressed)
        self._central_record(encoded, _UTF8, crc, len(compressed), len(data), offset)

    def add_stream(self, name: str, source: BinaryIO, chunk: int = 1 << 16) -> None:
        """One entry read from ``source`` a chunk at a time (sizes and CRC
        follow the data in a descriptor)."""
        encoded = name.encode()
        flags = _UTF8 | _DESCRIPTOR_FLAG
        offset = self.offset
        self._write(
            _LOCAL.pack(
                0x04034B50, 20, flags, _DEFLATE, self.time, self.date, 0, 0, 0, len(encoded), 0
            )
            + encoded
        )
        packer = zlib.compressobj(self.level, zlib.DEFLATED, -15)
        crc = size = csize = 0
        while data := source.read(chunk):
            crc = zlib.crc32(data, crc)
            size += len(data)
            out = packer.compress(data)
            csize += len(out)
            self._write(out)
        out = packer.flush()
        csize += len(out)
        self._write(out)
        if size >= _MAX32 or csize >= _MAX32:
            raise ValueError(f"{name}: entries must be under 4 GiB")
        self._write(_DESCRIPTOR.pack(0x08074B50, crc, csize, size))
        self._central_record(encoded, flags, crc, csize, size, offset)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        start = self.offset
        self.central.seek(0)
        while block := self.central.read(1 << 20):
            self._write(block)
        self.central.close()
        size = self.offset - start
        zip64 = self.count >= 0xFFFF or start >= _MAX32 or size >= _MAX32
        if zip64:
            end64 = self.offset
            self._write(
                _ZIP64_END.pack(
                    0x06064B50, 44, _MADE_BY, 45, 0, 0, self.count, self.count, size, start
                )
            )
            self._write(_ZIP64_LOCATOR.pack(0x07064B50, 0, end64, 1))
        self._write(
            _END.pack(
                0x06054B50,
                0,
                0,
                min(self.count, 0xFFFF),
                min(self.count, 0xFFFF),
                min(size, _MAX32),
                min(start, _MAX32),
                0,
            )
        )

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            self.close()
        else:
            self.central.close()
