"""Export: the zip's layout, PEMs that parse, the manifest, filters, the API
download, and a failed export that leaves no file behind."""

import copy
import csv
import io
import zipfile

import pytest
from cryptography import x509

from ra.export import export_zip
from tests.conftest import FIXED_NOW, make_csr
from tests.ra_fixtures import OFFICER_ENTITY, start_ra

NOW = int(FIXED_NOW.timestamp())
DAY = 86400


@pytest.fixture
def clock():
    return [FIXED_NOW]


@pytest.fixture
def ra(loop, make_service, clock):
    pki = make_service(clock=lambda: clock[0])
    pki.init_root("root", "CN=Export Root,O=Revoca Tests,C=DE", key_type="ec-p384")
    pki.create_sub("issuing", "root", "CN=Export CA,O=Revoca Tests,C=DE")
    env, runner = start_ra(loop, pki)
    body = copy.deepcopy(OFFICER_ENTITY)
    assert env.call("POST", "/api/entities", body, role="ra-officer").status == 201
    yield env
    loop.run(runner.cleanup())


def _enroll(ra, days=None):
    body = {"csr": make_csr("x", ("dns:web-1.example.com",)).decode()}
    if days:
        body["days"] = days
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
    count = export_zip(ra.service.store, buffer, now=NOW, ca="issuing")
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
    assert {r["status"] for r in manifest} == {"active", "revoked"}
    assert all(r["not_after"].endswith("Z") for r in manifest)
    # The entries are dated by the clock passed in, not the machine's.
    assert {i.date_time for i in archive.infolist()} == {FIXED_NOW.timetuple()[:6]}
    everything = io.BytesIO()
    assert export_zip(ra.service.store, everything, now=NOW) == 3  # and the issuing CA


def test_filters_and_bad_filters(ra):
    _enroll(ra)
    buffer = io.BytesIO()
    store = ra.service.store
    assert export_zip(store, buffer, now=NOW, ca="issuing", issued_after=4_000_000_000) == 0
    assert _read(buffer.getvalue())[1] == []
    from ca.errors import BadInputError, NotFoundError

    with pytest.raises(NotFoundError):
        export_zip(store, io.BytesIO(), now=NOW, ca="nope")
    with pytest.raises(BadInputError, match="issuance window is empty"):
        export_zip(store, io.BytesIO(), now=NOW, issued_after=10, issued_before=5)
    with pytest.raises(BadInputError, match="expiry window is empty"):
        export_zip(store, io.BytesIO(), now=NOW, expires_after=10, expires_before=10)
    with pytest.raises(BadInputError, match="status must be one of active, expired"):
        export_zip(store, io.BytesIO(), now=NOW, status="good")


def _exported(ra, **filters) -> list[tuple[str, str]]:
    buffer = io.BytesIO()
    export_zip(ra.service.store, buffer, ca="issuing", **filters)
    archive, manifest = _read(buffer.getvalue())
    assert sorted(archive.namelist()) == sorted([*(r["path"] for r in manifest), "manifest.csv"])
    return [(r["path"], r["status"]) for r in manifest]


def test_folders_follow_the_clock_and_status_and_expiry_filter(ra):
    """A certificate past its notAfter goes under expired/ (not active/); a
    revoked one stays under revoked/ after it expires."""
    short, revoked, long = _enroll(ra, days=10), _enroll(ra, days=10), _enroll(ra, days=90)
    ra.service.revoke("issuing", int(revoked["serial"], 16), "superseded")
    later = NOW + 20 * DAY
    assert _exported(ra, now=later) == [
        (f"issuing/expired/{short['serial']}.pem", "expired"),
        (f"issuing/revoked/{revoked['serial']}.pem", "revoked"),
        (f"issuing/active/{long['serial']}.pem", "active"),
    ]
    assert _exported(ra, now=NOW)[0] == (f"issuing/active/{short['serial']}.pem", "active")
    assert [p for p, _ in _exported(ra, now=later, status="expired")] == [
        f"issuing/expired/{short['serial']}.pem"
    ]
    assert [s for _, s in _exported(ra, now=later, status="active")] == ["active"]
    assert [s for _, s in _exported(ra, now=later, status="revoked")] == ["revoked"]
    # notAfter in [after, before): the two ten-day certificates, then the long one.
    assert [s for _, s in _exported(ra, now=NOW, expires_before=NOW + 30 * DAY)] == [
        "active",
        "revoked",
    ]
    assert [p for p, _ in _exported(ra, now=NOW, expires_after=NOW + 30 * DAY)] == [
        f"issuing/active/{long['serial']}.pem"
    ]


def test_api_download(ra):
    serial = _enroll(ra)["serial"]
    reply = ra.call("GET", "/api/export?issuer=issuing", role="auditor")
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/zip"
    _archive, manifest = _read(reply.raw)
    assert [r["serial"] for r in manifest] == [serial]
    bad = ra.call("GET", "/api/export?issuer=nope", role="auditor")
    assert (bad.status, bad.body["error"]["code"]) == (404, "not_found")
    soon = ra.call(
        "GET",
        "/api/export?issuer=issuing&status=active&expires_before=2027-06-01T00:00:00Z",
        role="auditor",
    )
    assert [r["serial"] for r in _read(soon.raw)[1]] == [serial]  # 90 days: 2027-02
    sooner = ra.call("GET", "/api/export?expires_before=2027-01-01T00:00:00Z", role="auditor")
    assert _read(sooner.raw)[1] == []
    none = ra.call("GET", "/api/export?status=expired", role="auditor")
    assert _read(none.raw)[1] == []
    for query in ("status=good", "expires_after=soon", "colour=red"):
        refused = ra.call("GET", f"/api/export?{query}", role="auditor")
        assert (refused.status, refused.body["error"]["code"]) == (400, "bad_input")


def test_cli_export_leaves_no_partial_file(cli_pki):
    from tests.conftest import run

    tmp = cli_pki
    result = run(tmp, "ra", "export", "--out", "all.zip")
    assert result.returncode == 0, result.stderr
    _archive, manifest = _read((tmp / "all.zip").read_bytes())
    assert len(manifest) == 1  # the issuing CA's certificate, issued by root
    assert manifest[0]["path"].startswith("root/active/")
    for options, expected in (
        (("--status", "active"), 1),
        (("--status", "expired"), 0),
        (("--expires-before", "2000-01-01T00:00:00Z"), 0),
        (("--expires-after", "2000-01-01T00:00:00Z", "--status", "active"), 1),
    ):
        filtered = run(tmp, "ra", "export", "--out", "some.zip", *options)
        assert filtered.returncode == 0, filtered.stderr
        assert len(_read((tmp / "some.zip").read_bytes())[1]) == expected, options
    assert run(tmp, "ra", "export", "--out", "x.zip", "--status", "good").returncode == 2
    missing = run(tmp, "ra", "export", "--out", "none.zip", "--ca", "nope")
    assert missing.returncode == 3
    assert not (tmp / "none.zip").exists() and not (tmp / "none.zip.partial").exists()
