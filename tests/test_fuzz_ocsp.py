"""Bounded differential fuzzing in CI: the native parser and its twin agree,
and their reading fits cryptography's (tests/fuzz_reference.py).

The long campaign (``python -m tests.fuzz_ocsp``) and its AddressSanitizer
run are recorded in SECURITY.md.
"""

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common import native
from tests import fuzz_ocsp
from tests.conftest import needs_native

pytestmark = needs_native
# Loaded here for the property tests (a fixture cannot serve @given);
# needs_native skips every test when the native modules are switched off.
_native = native.load("va._fastocsp")
_lane = native.load("va._fastlane")
SEEDS = fuzz_ocsp.seeds()


def test_the_native_modules_are_built():
    assert _native is not None and _lane is not None, "run `make compile`"


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_agree_on_arbitrary_bytes(data):
    assert fuzz_ocsp.check(_native, data) is None


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**64))
def test_agree_on_mutated_real_requests(seed):
    rng = random.Random(seed)
    data = fuzz_ocsp.mutate(rng, SEEDS)
    http = fuzz_ocsp.http_envelope(rng, data)
    assert fuzz_ocsp.check(_native, data, http=http, lane=_lane) is None


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_agree_on_length_and_tag_edits(seed, edits):
    data = bytearray(seed)
    for position, value in edits:
        data[position % len(data)] = value
    assert fuzz_ocsp.check(_native, bytes(data)) is None


def test_a_bounded_campaign_finds_no_disagreement(tmp_path):
    executed, failures = fuzz_ocsp.campaign(20261127, 50_000, 120.0, tmp_path / "crashes")
    assert failures == 0, sorted(p.read_text() for p in (tmp_path / "crashes").glob("*.txt"))
    assert executed == 50_000


def test_a_disagreement_is_reported_with_its_input(tmp_path, monkeypatch):
    """The fuzzer can fail: a twin that answers differently is caught and saved."""

    class Broken:
        def __getattr__(self, name):
            return getattr(_native, name)

        @staticmethod
        def read_tlv(data, *args):
            if len(data) > 40:
                return (0x30, 0, 0)
            return _native.read_tlv(data, *args)

    monkeypatch.setattr(fuzz_ocsp, "native_core", Broken)
    _executed, failures = fuzz_ocsp.campaign(1, 200, 30.0, tmp_path / "crashes")
    assert failures > 0
    saved = sorted((tmp_path / "crashes").glob("*.der"))
    assert saved and fuzz_ocsp.check(Broken(), saved[0].read_bytes()).startswith("read_tlv")


def test_a_fast_lane_disagreement_is_reported(tmp_path, monkeypatch):
    """A recognizer that takes HTTP/1.0 too: caught on the wrapped inputs."""

    class Broken:
        @staticmethod
        def simple_request(data, prefix):
            return _lane.simple_request(data.replace(b"HTTP/1.0", b"HTTP/1.1"), prefix)

    monkeypatch.setattr(fuzz_ocsp, "native_lane", Broken)
    monkeypatch.setattr(
        fuzz_ocsp,
        "http_envelope",
        lambda rng, der: (
            b"POST /ocsp HTTP/1.0\r\nHost: a\r\nContent-Type: "
            b"application/ocsp-request\r\nContent-Length: %d\r\n\r\n" % len(der) + der
        ),
    )
    _executed, failures = fuzz_ocsp.campaign(1, 300, 30.0, tmp_path / "crashes")
    assert failures > 0
    saved = sorted((tmp_path / "crashes").glob("*.http"))
    assert saved and b"HTTP/1.0" in saved[0].read_bytes()


def test_a_finding_against_cryptography_is_reported(tmp_path, monkeypatch):
    """Without the allowlist entry for several CertIDs, the mutated two-CertID
    requests both implementations accept are findings, saved with the reason."""
    monkeypatch.setattr(
        fuzz_ocsp.fuzz_reference,
        "STRICTER",
        [case for case in fuzz_ocsp.fuzz_reference.STRICTER if case[0] != "several CertIDs"],
    )
    _executed, failures = fuzz_ocsp.campaign(1, 400, 30.0, tmp_path / "crashes")
    assert failures > 0
    reasons = [p.read_text() for p in (tmp_path / "crashes").glob("*.txt")]
    assert any("more than one request" in reason for reason in reasons)
