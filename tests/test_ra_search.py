"""Certificate search and reports: every filter, their combinations,
stable pages, the trigram index kept in step with the certificates, CSV."""

import copy
import csv
import io
from datetime import timedelta

import pytest

from ra.search import CertificateQuery
from tests.conftest import FIXED_NOW, make_csr
from tests.ra_fixtures import OFFICER_ENTITY, start_ra


@pytest.fixture
def clock():
    return [FIXED_NOW]


@pytest.fixture
def ra(loop, make_service, clock):
    pki = make_service(base_url="http://pki.example.com", clock=lambda: clock[0])
    pki.init_root("root", "CN=Search Root,O=Revoca Tests,C=DE", key_type="ec-p384")
    pki.create_sub("issuing", "root", "CN=Search CA,O=Revoca Tests,C=DE")
    pki.create_sub("other", "root", "CN=Other CA,O=Revoca Tests,C=DE")
    env, runner = start_ra(loop, pki)
    for name, ca, profile, sans, template in [
        (
            "web-1",
            "issuing",
            "tls-server",
            ["dns:web-1.example.com", "dns:*.web.example.com"],
            "CN={name}.example.com",
        ),
        (
            "shop",
            "other",
            "tls-server",
            ["dns:shop.example.org", "dns:*.shop.example.org"],
            "CN=shop.example.org",
        ),
        ("alice", "issuing", "tls-client", ["email:*@example.com"], "CN=Alice Liddell"),
    ]:
        body = {
            **copy.deepcopy(OFFICER_ENTITY),
            "name": name,
            "ca": ca,
            "profile": profile,
            "allowed_sans": sans,
            "subject_template": template,
        }
        assert env.call("POST", "/api/entities", body, role="ra-officer").status == 201
    yield env
    loop.run(runner.cleanup())


def _enroll(ra, entity, sans, days=None):
    body = {"csr": make_csr("x", sans).decode()}
    if days:
        body["days"] = days
    reply = ra.call("POST", f"/api/entities/{entity}/enroll", body, role="ra-officer")
    assert reply.status == 201, reply.body
    return reply.body["certificate"]


@pytest.fixture
def issued(ra, clock):
    out = {
        "web": _enroll(ra, "web-1", ("dns:web-1.example.com",), days=10),
        "wild": _enroll(ra, "web-1", ("dns:web-1.example.com", "dns:*.web.example.com"), 40),
    }
    clock[0] = FIXED_NOW + timedelta(days=2)
    out["shop"] = _enroll(ra, "shop", ("dns:shop.example.org", "dns:*.shop.example.org"), 20)
    out["alice"] = _enroll(ra, "alice", ("email:alice@example.com",), 100)
    ra.call(
        "POST",
        f"/api/certificates/issuing/{out['web']['serial']}/revoke",
        {"reason": "superseded"},
        role="ra-officer",
    )
    return out


def _serials(ra, query: str) -> list[str]:
    reply = ra.call("GET", "/api/certificates?" + query, role="auditor")
    assert reply.status == 200, reply.body
    return [c["serial"] for c in reply.body["items"]]


def test_each_filter(ra, issued):
    s = {k: v["serial"] for k, v in issued.items()}
    assert _serials(ra, "text=LIDDELL") == [s["alice"]]  # case-blind subject substring
    assert _serials(ra, "text=shop.example") == [s["shop"]]  # SAN substring
    assert _serials(ra, "hostname=web-1.example.com") == [s["web"], s["wild"]]
    assert _serials(ra, "hostname=api.web.example.com") == [s["wild"]]  # by the wildcard
    assert _serials(ra, "hostname=a.b.web.example.com") == []  # one label only
    assert _serials(ra, f"serial={s['shop']}") == [s["shop"]]
    assert _serials(ra, "issuer=other") == [s["shop"]]
    assert _serials(ra, "entity=web-1") == [s["web"], s["wild"]]
    assert _serials(ra, "profile=tls-client") == [s["alice"]]
    assert _serials(ra, "status=revoked") == [s["web"]]
    assert _serials(ra, "text=example&issued_after=2026-11-27T00:00:00Z") == [s["shop"], s["alice"]]
    assert _serials(ra, "text=example&issued_before=2026-11-27T00:00:00Z") == [s["web"], s["wild"]]
    assert _serials(ra, "text=example&expires_before=2026-12-20T00:00:00Z") == [s["web"], s["shop"]]
    assert _serials(ra, "text=example&expires_after=2026-12-20T00:00:00Z") == [
        s["wild"],
        s["alice"],
    ]
    assert _serials(ra, "entity=web-1&status=good&hostname=x.web.example.com") == [s["wild"]]


def test_pages_are_stable_while_certificates_are_added(ra, issued):
    first = ra.call("GET", "/api/certificates?text=example&limit=2", role="auditor").body
    assert len(first["items"]) == 2
    _enroll(ra, "alice", ("email:new@example.com",))  # lands after every existing one
    second = ra.call(
        "GET",
        f"/api/certificates?text=example&limit=2&after={first['next_after']}",
        role="auditor",
    ).body
    everything = [c["serial"] for c in first["items"] + second["items"]]
    assert everything == [issued[k]["serial"] for k in ("web", "wild", "shop", "alice")]


@pytest.mark.parametrize(
    "query",
    [
        "text=ab",
        "hostname=bad%20host",
        "serial=xyz",
        "issuer=nope",
        "entity=nope",
        "status=odd",
        "issued_after=yesterday",
        "limit=0",
        "limit=5000",
        "after=x",
        "after=%C2%B2",  # a Unicode digit ('²'): isdigit() alone would take it
        "after=" + "9" * 30,  # past the store's 64-bit integers
        "issued_after=" + "9" * 30,
        "limit=" + "9" * 5000,
        "colour=red",
    ],
)
def test_bad_queries_are_refused_clearly(ra, query):
    reply = ra.call("GET", "/api/certificates?" + query, role="auditor")
    assert reply.status in (400, 404), reply.body
    assert reply.body["error"]["code"] in ("bad_input", "not_found")


def test_substring_index_follows_updates_and_deletes(ra, issued):
    from sqlalchemy import delete, update

    from store.tables.ca import certificates

    service = ra.service
    with service.store.transaction() as conn:
        conn.execute(
            update(certificates)
            .where(certificates.c.subject == "CN=Alice Liddell")
            .values(subject="CN=Alice Pleasance")
        )
    assert service.search(CertificateQuery(text="Liddell")) == []
    assert len(service.search(CertificateQuery(text="Pleasance"))) == 1
    with service.store.transaction() as conn:
        conn.execute(delete(certificates).where(certificates.c.subject == "CN=Alice Pleasance"))
    assert service.search(CertificateQuery(text="Pleasance")) == []


def test_reports(ra, issued, clock):
    counts = ra.call("GET", "/api/reports/counts", role="auditor").body["items"]
    assert {(r["ca"], r["profile"], r["status"]): r["count"] for r in counts} == {
        ("issuing", "tls-server", "good"): 1,
        ("issuing", "tls-server", "revoked"): 1,
        ("issuing", "tls-client", "good"): 1,
        ("other", "tls-server", "good"): 1,
        ("root", "sub-ca", "good"): 2,
    }
    weeks = ra.call("GET", "/api/reports/expiring?weeks=16", role="auditor").body["items"]
    assert len(weeks) == 16 and sum(w["count"] for w in weeks) == 3  # the revoked one is out
    # Issued at +0 (40 days), +2 days (20 and 100 days); now is +2 days.
    assert [w["week"] for w in weeks if w["count"]] == [2, 5, 14]
    dup = ra.call("GET", "/api/reports/duplicates", role="auditor").body["items"]
    assert dup == []
    _enroll(ra, "alice", ("email:alice@example.com",))
    dup = ra.call("GET", "/api/reports/duplicates", role="auditor").body["items"]
    assert dup == [{"entity": "alice", "profile": "tls-client", "valid_certificates": 2}]
    text = ra.call("GET", "/api/reports/duplicates?format=csv", role="auditor")
    assert text.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text.raw.decode())))
    assert rows == [{"entity": "alice", "profile": "tls-client", "valid_certificates": "2"}]
    assert ra.call("GET", "/api/reports/nothing", role="auditor").status == 404
    assert ra.call("GET", "/api/reports/expiring?weeks=0", role="auditor").status == 400


def test_search_and_reports_on_postgresql(make_service, postgres_url):
    """The same queries through pg_trgm (ILIKE) instead of FTS5."""
    from ra.service import RAService

    pki = make_service(url=postgres_url)
    pki.init_root("root", "CN=PG Root,O=Revoca Tests,C=DE", key_type="ec-p384")
    pki.create_sub("issuing", "root", "CN=PG CA,O=Revoca Tests,C=DE")
    service = RAService(pki)
    service.create_entity(
        "web-1",
        email="ops@example.com",
        ca="issuing",
        profile="tls-server",
        subject_template="CN={name}.example.com",
        allowed_sans=["dns:web-1.example.com", "dns:*.web.example.com"],
    )
    plain = service.enroll("web-1", csr=make_csr("x", ("dns:web-1.example.com",)))
    wild = service.enroll(
        "web-1", csr=make_csr("x", ("dns:web-1.example.com", "dns:*.web.example.com"))
    )
    serials = [plain.certificate.serial, wild.certificate.serial]

    def found(**query):
        return [r.serial for _, r in service.search(CertificateQuery(**query))]

    assert found(text="WEB-1.example") == serials
    assert found(hostname="x.web.example.com") == serials[1:]
    assert found(hostname="web-1.example.com", entity="web-1") == serials
    assert found(text="100%_") == []  # LIKE wildcards are literal
    with service.store.read() as conn:
        indexes = (
            conn.exec_driver_sql(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'certificates'"
            )
            .scalars()
            .all()
        )
    assert {"ix_certificates_subject_trgm", "ix_certificates_sans_trgm"} <= set(indexes)
    counts = {(r["ca"], r["status"]): r["count"] for r in service.report("counts")}
    assert counts[("issuing", "good")] == 2
    assert sum(w["count"] for w in service.report("expiring", weeks=20)) == 2
    assert service.report("duplicates") == [
        {"entity": "web-1", "profile": "tls-server", "valid_certificates": 2}
    ]
