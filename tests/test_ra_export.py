"""Export: the zip's layout, PEMs that parse, the manifest, filters, the API
download, and a failed export that leaves no file behind."""

import copy
import csv
import io
import zipfile

import pytest
from cryptography import x509

from ra.export import export_zip
from tests.conftest import make_csr
from tests.ra_fixtures import OFFICER_ENTITY, start_ra


@pytest.fixture
def ra(loop, pki):
    env, runner = start_ra(loop, pki)
    body = copy.deepcopy(OFFICER_ENTITY)
    assert env.call("POST", "/api/entities", body, role="ra-officer").status == 201
    yield env
    loop.run(runner.cleanup())


def _enroll(ra):
    body = {"csr": make_csr("x", ("dns:web-1.example.com",)).decode()}
    reply = ra.call("POST", "/api/entities/web-1/enroll", body, role="ra-officer")
    return reply.body["certificate"]


def _read(data: bytes):
    archive = zipfile.ZipFile(io.BytesIO(data))
    manifest = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
    return archive, manifest


def test_layout_pems_and_manifest(ra):
    kept, revoked = _enroll(ra), _enroll(ra)
    ra.service.revoke("issuing", int(revoked["serial"], 16), "superseded")
    buffer = io.BytesIO()
    count = export_zip(ra.service.store, buffer, ca="issuing")
    archive, manifest = _read(buffer.getvalue())
    assert count == 2
    names = sorted(archive.namelist())
    assert names == sorted(
        [
            f"issuing/active/{kept['serial']}.pem",
            f"issuing/revoked/{revoked['serial']}.pem",
            "manifest.csv",
        ]
    )
    for row in manifest:
        cert = x509.load_pem_x509_certificate(archive.read(row["path"]))
        assert f"{cert.serial_number:x}".lstrip("0") == row["serial"].lstrip("0")
        assert row["end_entity"] == "web-1" and row["sans"] == "dns:web-1.example.com"
    assert {r["status"] for r in manifest} == {"good", "revoked"}
    everything = io.BytesIO()
    assert export_zip(ra.service.store, everything) == 3  # and the issuing CA, from root


def test_filters_and_bad_filters(ra):
    _enroll(ra)
    buffer = io.BytesIO()
    assert export_zip(ra.service.store, buffer, ca="issuing", issued_after=4_000_000_000) == 0
    assert _read(buffer.getvalue())[1] == []
    from ca.errors import BadInputError, NotFoundError

    with pytest.raises(NotFoundError):
        export_zip(ra.service.store, io.BytesIO(), ca="nope")
    with pytest.raises(BadInputError):
        export_zip(ra.service.store, io.BytesIO(), issued_after=10, issued_before=5)


def test_api_download(ra):
    serial = _enroll(ra)["serial"]
    reply = ra.call("GET", "/api/export?issuer=issuing", role="auditor")
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/zip"
    _archive, manifest = _read(reply.raw)
    assert [r["serial"] for r in manifest] == [serial]
    bad = ra.call("GET", "/api/export?issuer=nope", role="auditor")
    assert (bad.status, bad.body["error"]["code"]) == (404, "not_found")


def test_cli_export_leaves_no_partial_file(cli_pki):
    from tests.conftest import run

    tmp = cli_pki
    result = run(tmp, "ra", "export", "--out", "all.zip")
    assert result.returncode == 0, result.stderr
    _archive, manifest = _read((tmp / "all.zip").read_bytes())
    assert len(manifest) == 1  # the issuing CA's certificate, issued by root
    missing = run(tmp, "ra", "export", "--out", "none.zip", "--ca", "nope")
    assert missing.returncode == 3
    assert not (tmp / "none.zip").exists() and not (tmp / "none.zip.partial").exists()
