"""Certificate search and reports: every filter, their combinations,
stable pages, the trigram index kept in step with the certificates, CSV."""

import copy
import csv
import io
from datetime import datetime, timedelta

import pytest

from ca.records import serial_hex
from common.clock import iso8601
from ra.search import CertificateQuery
from tests.conftest import FIXED_NOW, make_csr, new_key
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
    assert _serials(ra, "entity=web-1&status=active&hostname=x.web.example.com") == [s["wild"]]


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
        "status=good",  # the stored word: search speaks of active and expired
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


def _report(ra, name: str, query: str = ""):
    reply = ra.call("GET", f"/api/reports/{name}{query}", role="auditor")
    assert reply.status == 200, reply.body
    return reply


def test_status_follows_the_clock(ra, issued, clock):
    """At +25 days shop (20 days from +2) has expired, web (revoked, 10 days)
    stays revoked after expiring, wild (40 days) and alice (100) are active."""
    s = {k: v["serial"] for k, v in issued.items()}
    clock[0] = FIXED_NOW + timedelta(days=25)
    assert _serials(ra, "status=expired") == [s["shop"]]
    assert _serials(ra, "status=active&text=example") == [s["wild"], s["alice"]]
    assert _serials(ra, "status=revoked") == [s["web"]]
    assert _serials(ra, "status=hold") == []
    found = ra.call("GET", "/api/certificates?text=example", role="auditor").body["items"]
    assert [c["status"] for c in found] == ["revoked", "active", "expired", "active"]
    shop = found[2]
    assert shop["not_after"].endswith("Z") and "+" not in shop["not_after"]
    assert ra.service.search_summaries(CertificateQuery(serial=s["shop"]))[0][1]["status"] == (
        "expired"
    )
    listed = ra.call("GET", "/api/entities/shop/certificates", role="auditor").body["items"]
    assert [c["status"] for c in listed] == ["expired"]
    one = ra.call("GET", f"/api/certificates/{shop['ca']}/{s['shop']}", role="auditor").body
    assert (one.get("status"), one.get("not_after")) == ("expired", shop["not_after"]), one
    counts = _report(ra, "counts").body["items"]
    assert {(r["ca"], r["profile"], r["status"]): r["count"] for r in counts} == {
        ("issuing", "tls-server", "active"): 1,
        ("issuing", "tls-server", "revoked"): 1,
        ("issuing", "tls-client", "active"): 1,
        ("other", "tls-server", "expired"): 1,
        ("root", "sub-ca", "active"): 2,
    }
    # The last second of notAfter is still valid (RFC 5280 4.1.2.5).
    not_after = datetime.fromisoformat(shop["not_after"])
    clock[0] = not_after
    assert _serials(ra, "status=active&issuer=other") == [s["shop"]]
    clock[0] = not_after + timedelta(seconds=1)
    assert _serials(ra, "status=expired") == [s["shop"]]


def test_expiring_lists_the_certificates_with_owner_and_days_left(ra, issued, clock):
    now = FIXED_NOW + timedelta(days=2)
    rows = _report(ra, "expiring").body["items"]  # 30 days by default
    shop = issued["shop"]
    not_after = datetime.fromisoformat(shop["not_after"])
    assert rows == [
        {
            "subject": "CN=shop.example.org",
            "sans": ["dns:shop.example.org", "dns:*.shop.example.org"],
            "issuer": "other",
            "serial": shop["serial"],
            "not_after": iso8601(not_after),
            "days_left": (not_after - now).days,
            "entity": "shop",
            "owner": "ops@example.com",
        }
    ]
    assert rows[0]["not_after"].endswith("Z")
    wider = _report(ra, "expiring", "?days=40").body["items"]
    # The revoked web certificate is out; wild (40 days from +0) is in.
    assert [r["serial"] for r in wider] == [shop["serial"], issued["wild"]["serial"]]
    assert wider[1]["days_left"] == 37
    text = _report(ra, "expiring", "?days=40&format=csv")
    assert text.headers["Content-Type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(text.raw.decode())))
    assert lines[0]["sans"] == "dns:shop.example.org dns:*.shop.example.org"
    assert lines[0]["owner"] == "ops@example.com" and lines[1]["days_left"] == "37"
    empty = _report(ra, "expiring", "?days=1&format=csv").raw.decode()
    assert empty.startswith("subject,sans,issuer,serial,not_after,days_left,entity,owner")
    for bad in ("?days=0", "?days=4000", "?days=x", "?weeks=2"):
        assert ra.call("GET", f"/api/reports/expiring{bad}", role="auditor").status == 400
    assert ra.call("GET", "/api/reports/nothing", role="auditor").status == 404


def test_duplicates_are_valid_certificates_sharing_a_key_or_a_name_set(ra, issued, clock):
    """Three www.example.com certificates with one key under three entities
    are two findings (a key, a name set); an entity holding two different
    names is none."""
    assert _report(ra, "duplicates").body["items"] == []
    key = new_key()
    serials = []
    for name in ("www-a", "www-b", "www-c"):
        body = {
            **copy.deepcopy(OFFICER_ENTITY),
            "name": name,
            "allowed_sans": ["dns:www.example.com"],
            "subject_template": "CN=www.example.com",
        }
        assert ra.call("POST", "/api/entities", body, role="ra-officer").status == 201
        csr = make_csr("x", ("dns:www.example.com",), key=key).decode()
        reply = ra.call("POST", f"/api/entities/{name}/enroll", {"csr": csr}, role="ra-officer")
        serials.append(reply.body["certificate"]["serial"])
    # web-1 now holds wild and a certificate for another name: intended.
    _enroll(ra, "web-1", ("dns:web-1.example.com", "dns:api.web.example.com"))
    groups = _report(ra, "duplicates").body["items"]
    assert [(g["kind"], [c["serial"] for c in g["certificates"]]) for g in groups] == [
        ("key", serials),
        ("names", serials),
    ]
    assert groups[1]["shared"] == "CN=www.example.com dns:www.example.com"
    assert len(groups[0]["shared"]) == 64  # the SHA-256 of the SubjectPublicKeyInfo
    first = groups[0]["certificates"][0]
    assert (first["ca"], first["subject"], first["entity"]) == (
        "issuing",
        "CN=www.example.com",
        "www-a",
    )
    assert first["not_after"].endswith("Z")
    text = _report(ra, "duplicates", "?format=csv").raw.decode()
    lines = list(csv.DictReader(io.StringIO(text)))
    assert [(r["group"], r["kind"], r["entity"]) for r in lines] == [
        ("1", "key", "www-a"),
        ("1", "key", "www-b"),
        ("1", "key", "www-c"),
        ("2", "names", "www-a"),
        ("2", "names", "www-b"),
        ("2", "names", "www-c"),
    ]
    # Revoked or expired certificates are no longer "valid": one left is no group.
    for serial in serials[:2]:
        ra.service.revoke("issuing", int(serial, 16), "superseded")
    assert _report(ra, "duplicates").body["items"] == []


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
    assert counts[("issuing", "active")] == 2
    assert len(service.report("expiring", days=100)) == 2
    assert found(status="active", entity="web-1") == serials
    assert found(status="expired") == []
    key = new_key()
    twins = [
        service.enroll("web-1", csr=make_csr("x", ("dns:web-1.example.com",), key=key))
        for _ in range(2)
    ]
    assert [
        (g["kind"], [c["serial"] for c in g["certificates"]]) for g in service.report("duplicates")
    ] == [
        ("key", [serial_hex(t.certificate.serial) for t in twins]),
        ("names", [serial_hex(serials[0]), *(serial_hex(t.certificate.serial) for t in twins)]),
    ]
