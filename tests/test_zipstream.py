"""The constant-memory zip writer, checked by Python's zipfile and by
Info-ZIP's `unzip -t` (a reader we did not write), including the ZIP64 end
records past 65,535 entries."""

import io
import subprocess
import zipfile

import pytest

from ra.zipstream import ZipStreamWriter
from tests.conftest import need


class Unseekable(io.RawIOBase):
    """An output that can only be appended to (an HTTP response)."""

    def __init__(self):
        self.parts = []

    def writable(self):
        return True

    def write(self, data):
        self.parts.append(bytes(data))
        return len(data)

    def seek(self, *args):
        raise OSError("not seekable")


def _check(tmp_path, data: bytes) -> zipfile.ZipFile:
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    unzip = need("unzip")
    (tmp_path / "t.zip").write_bytes(data)
    result = subprocess.run([unzip, "-tq", str(tmp_path / "t.zip")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return archive


def test_small_archive_with_names_and_a_streamed_entry(tmp_path):
    out = Unseekable()
    with ZipStreamWriter(out) as archive:
        archive.add("issuing/active/01.pem", b"one")
        archive.add("issuing/revoked/\u00e9t\u00e9.pem", b"")  # UTF-8 name, empty file
        archive.add_stream("manifest.csv", io.BytesIO(b"x" * 300_000))
    read = _check(tmp_path, b"".join(out.parts))
    assert read.namelist() == [
        "issuing/active/01.pem",
        "issuing/revoked/\u00e9t\u00e9.pem",
        "manifest.csv",
    ]
    assert read.read("issuing/active/01.pem") == b"one"
    assert read.read("manifest.csv") == b"x" * 300_000


def test_zip64_end_records_past_65535_entries(tmp_path):
    buffer = io.BytesIO()
    with ZipStreamWriter(buffer, level=1) as archive:
        for i in range(70_000):
            archive.add(f"f/{i}", b"%d" % i)
    read = _check(tmp_path, buffer.getvalue())
    assert len(read.namelist()) == 70_000 and read.read("f/69999") == b"69999"


def test_an_aborted_archive_writes_no_end_record():
    buffer = io.BytesIO()
    with pytest.raises(RuntimeError), ZipStreamWriter(buffer) as archive:
        archive.add("a", b"1")
        raise RuntimeError("the store failed")
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
