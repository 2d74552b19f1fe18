"""The response encoder: native and pure-Python produce the same bytes, and
cryptography reads what they produce."""

import random

import pytest
from cryptography.x509 import ocsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common import native
from tests.conftest import native_module, needs_native, self_signed
from va import _fastocsp_py as py

EXTENDED_REVOKE = py.EXTENDED_REVOKE_EXTENSION
pytestmark = pytest.mark.codec("va._fastocsp", "va._fastocsp_py")


def _implementations() -> list:
    """The twin, and the native module unless switched off: for the
    property tests, which compare the two on each example."""
    if not native.extensions_allowed():
        return [py]
    return [py, native_module("va._fastocsp")]


def test_generalized_time(impl):
    assert impl.generalized_time(0) == b"\x18\x0f19700101000000Z"
    assert impl.generalized_time(1_800_000_000) == b"\x18\x0f20270115080000Z"
    assert impl.generalized_time(253402300799) == b"\x18\x0f99991231235959Z"
    for bad in (-1, 253402300800):
        with pytest.raises(ValueError, match="time outside"):
            impl.generalized_time(bad)


def test_generalized_time_across_calendar_edges(impl):
    """Leap days, century and 400-year rules, ends of months and years,
    against the standard library's calendar."""
    import datetime

    utc = datetime.UTC
    days = [
        datetime.datetime(year, month, day, tzinfo=utc)
        for year in (1970, 1972, 1999, 2000, 2024, 2038, 2100, 2400, 9999)
        for month, day in ((1, 1), (2, 28), (3, 1), (12, 31))
    ] + [datetime.datetime(year, 2, 29, tzinfo=utc) for year in (1972, 2000, 2024, 2400, 9996)]
    for moment in days:
        for seconds in (0, 1, 3599, 43200, 86399):
            epoch = int(moment.timestamp()) + seconds
            expected = datetime.datetime.fromtimestamp(epoch, utc).strftime("%Y%m%d%H%M%SZ")
            assert impl.generalized_time(epoch) == b"\x18\x0f" + expected.encode(), epoch


@pytest.mark.twin
@settings(max_examples=3000, deadline=None)
@given(epoch=st.integers(0, 253402300799))
def test_generalized_time_agrees_from_1970_to_9999(epoch):
    """Both implementations (the native one through common/_dertime.pxd)
    against the standard library's calendar, on any second of 1970..9999."""
    import datetime

    moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(seconds=epoch)
    expected = b"\x18\x0f" + moment.strftime("%Y%m%d%H%M%SZ").encode()
    for impl in _implementations():
        assert impl.generalized_time(epoch) == expected


def test_single_response_validation(impl):
    certid = impl.encode_certid(1, b"\x01" * 20, b"\x02" * 20, b"\x05")
    with pytest.raises(ValueError, match="invalid certificate status 3"):
        impl.encode_single_response(certid, 3, 0, -1, 0, 1)
    for reason in (7, 11, -2):
        with pytest.raises(ValueError, match="invalid CRLReason"):
            impl.encode_single_response(certid, 1, 0, reason, 0, 1)
    with pytest.raises(ValueError, match="unsupported hash algorithm 9"):
        impl.encode_certid(9, b"", b"", b"\x01")


def _build(impl, rng_seed: int, certs: bytes | None = None) -> bytes:
    rng = random.Random(rng_seed)
    singles = []
    for _ in range(rng.randint(1, 4)):
        alg = rng.choice([1, 2, 3, 4])
        size = {1: 20, 2: 32, 3: 48, 4: 64}[alg]
        serial = rng.randbytes(rng.randint(1, 20)).lstrip(b"\x00") or b"\x01"
        if serial[0] >= 0x80:
            serial = b"\x00" + serial[:19]
        certid = impl.encode_certid(alg, rng.randbytes(size), rng.randbytes(size), serial)
        status = rng.choice([0, 1, 2])
        reason = rng.choice([-1, 0, 1, 3, 4, 5, 6, 8, 9, 10])
        this = rng.randint(0, 4_000_000_000)
        next_ = rng.choice([-1, this + rng.randint(1, 10 * 86400)])
        singles.append(
            impl.encode_single_response(certid, status, rng.randint(0, this), reason, this, next_)
        )
    extensions = b""
    if rng.random() < 0.5:
        extensions += impl.encode_nonce_extension(b"\x04\x10" + rng.randbytes(16))
    if rng.random() < 0.3:
        extensions += impl.EXTENDED_REVOKE_EXTENSION
    responder_id = b"\xa2\x16\x04\x14" + rng.randbytes(20)
    tbs = impl.encode_response_data(
        responder_id, rng.randint(0, 4_000_000_000), singles, extensions
    )
    if certs is None:
        certs = rng.randbytes(rng.choice([0, 300, 70000]))
    return impl.encode_ocsp_response(
        tbs, bytes.fromhex("300a06082a8648ce3d040302"), rng.randbytes(72), certs
    )


@needs_native
def test_native_and_python_build_identical_bytes():
    _native = native_module("va._fastocsp")
    for seed in range(300):
        assert _build(_native, seed) == _build(py, seed), seed


@needs_native
def test_response_wrapping_at_every_length_boundary():
    """The native encoder computes every nested length up front and writes
    once: each element crossing a length-octet boundary (short form, 0x81,
    0x82, 0x83) must still give the twin's bytes, and an element past 2**24
    octets the same error."""
    _native = native_module("va._fastocsp")
    algorithm = bytes.fromhex("300a06082a8648ce3d040302")
    sizes = (0, 1, 100, 0x7F - 40, 0x80, 0xF0, 0xFF, 0x100, 0x1F0, 0xFFFF - 400, 0x10000, 70000)
    for data_n in sizes:
        for certs_n in (0, 1, 0x7D, 0xFD, 0xFFFB, 0x10000):
            for sig_n in (64, 71, 72, 0x7F, 0x80, 512):
                args = (b"\x30" * data_n, algorithm, b"\x01" * sig_n, b"\x02" * certs_n)
                assert _native.encode_ocsp_response(*args) == py.encode_ocsp_response(*args), (
                    data_n,
                    certs_n,
                    sig_n,
                )
    huge = (b"\x30" * (1 << 24), algorithm, b"\x01" * 72, b"")
    for impl in (_native, py):
        with pytest.raises(ValueError, match="too large"):
            impl.encode_ocsp_response(*huge)


def test_cryptography_reads_what_we_build(impl):
    """Structure check by a parser we did not write (signature is random here)."""

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    cert = self_signed(ec.generate_private_key(ec.SECP256R1()), "responder", days=1)
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    for seed in range(40):
        data = _build(impl, seed, certs=cert_der if seed % 2 else b"")
        response = ocsp.load_der_ocsp_response(data)
        assert response.certificates == ([cert] if seed % 2 else [])
        assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert len(list(response.responses)) >= 1


def test_error_constants(impl):
    for name, status in (
        ("MALFORMED_REQUEST", 1),
        ("INTERNAL_ERROR", 2),
        ("TRY_LATER", 3),
        ("SIG_REQUIRED", 5),
        ("UNAUTHORIZED", 6),
    ):
        response = ocsp.load_der_ocsp_response(getattr(impl, name))
        assert response.response_status.value == status


def _one_by_one(impl, args):
    """What encode_response_data_many must equal, from the single-item encoders."""
    (
        responder_id,
        produced_at,
        algorithm,
        name_hash,
        key_hash,
        serials,
        statuses,
        this,
        next_,
        extensions,
    ) = args
    out = []
    for serial, status, extension in zip(serials, statuses, extensions, strict=True):
        certid = impl.encode_certid(algorithm, name_hash, key_hash, serial)
        validity = impl.generalized_time(this)
        if next_ != -1:
            validity += b"\xa0\x11" + impl.generalized_time(next_)
        single = certid + status + validity
        head = (
            bytes((0x30, len(single)))
            if len(single) < 0x80
            else b"\x30\x81" + bytes((len(single),))
        )
        out.append(impl.encode_response_data(responder_id, produced_at, [head + single], extension))
    return out


_statuses = st.one_of(
    st.just((0, 0, -1)),
    st.just((2, 0, -1)),
    st.tuples(
        st.just(1),
        st.integers(0, 253402300799),
        st.sampled_from([-1, 0, 1, 2, 3, 4, 5, 6, 8, 9, 10]),
    ),
)


@pytest.mark.twin
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    algorithm=st.sampled_from([1, 2, 3, 4]),
    items=st.lists(
        st.tuples(
            st.binary(min_size=1, max_size=21),
            _statuses,
            st.sampled_from([b"", EXTENDED_REVOKE, b"\x30\x03\x06\x01\x00" * 30]),
        ),
        max_size=6,
    ),
    produced_at=st.integers(0, 253402300799),
    this=st.integers(0, 253402300799),
    next_=st.one_of(st.just(-1), st.integers(0, 253402300799)),
    responder_id=st.binary(max_size=200),
)
def test_response_data_many_is_the_single_encoders_per_serial(
    algorithm, items, produced_at, this, next_, responder_id
):
    """Pre-signing's batch encoder gives, for every serial, exactly the bytes
    of encode_certid + encode_cert_status + encode_response_data, in both
    implementations (every length crosses its short/long form boundary in
    some example: serials, extensions and responder ids vary in size)."""
    size = {1: 20, 2: 32, 3: 48, 4: 64}[algorithm]
    name_hash, key_hash = b"\x01" * size, b"\x02" * size
    results = []
    for impl in _implementations():
        statuses = [impl.encode_cert_status(*status) for _, status, _ in items]
        args = (
            responder_id,
            produced_at,
            algorithm,
            name_hash,
            key_hash,
            [serial for serial, _, _ in items],
            statuses,
            this,
            next_,
            [extension for _, _, extension in items],
        )
        many = impl.encode_response_data_many(*args)
        assert many == _one_by_one(impl, args)
        results.append(many)
    assert all(result == results[0] for result in results)


@pytest.mark.twin
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    certid=st.binary(max_size=300),
    status=_statuses,
    produced_at=st.integers(0, 253402300799),
    next_=st.integers(0, 253402300799),
    nonce=st.one_of(st.none(), st.binary(max_size=300)),
    extensions=st.sampled_from([b"", EXTENDED_REVOKE, b"\x30\x03\x06\x01\x00" * 30]),
    responder_id=st.binary(max_size=200),
)
def test_fresh_response_data_is_the_single_encoders(
    certid, status, produced_at, next_, nonce, extensions, responder_id
):
    """A fresh answer's fused encoder gives exactly the bytes of
    encode_single_response + encode_nonce_extension + encode_response_data,
    in both implementations, across every short/long length boundary."""
    results = []
    for impl in _implementations():
        cert_status = impl.encode_cert_status(*status)
        fused = impl.encode_fresh_response_data(
            responder_id, produced_at, certid, cert_status, next_, nonce, extensions
        )
        single = impl.encode_single_response(certid, *status, produced_at, next_)
        all_extensions = extensions
        if nonce is not None:
            all_extensions = impl.encode_nonce_extension(nonce) + extensions
        assert fused == impl.encode_response_data(
            responder_id, produced_at, [single], all_extensions
        )
        results.append(fused)
    assert all(result == results[0] for result in results)


def test_fresh_response_data_refuses_what_it_cannot_encode(impl):
    args = [b"\xa2\x02\x04\x00", 0, b"\x30\x00", b"\x80\x00", 1, None, b""]
    for index, bad in ((5, "nonce"), (5, 1), (2, None), (3, None), (6, None), (0, None)):
        wrong = list(args)
        wrong[index] = bad
        with pytest.raises(TypeError):
            impl.encode_fresh_response_data(*wrong)
    for index in (0, 2, 3, 5, 6):
        large = list(args)
        large[index] = b"\x00" * 0x10000
        with pytest.raises(ValueError, match="element too large"):
            impl.encode_fresh_response_data(*large)
    for index in (1, 4):
        late = list(args)
        late[index] = 253402300800
        with pytest.raises(ValueError, match="time outside"):
            impl.encode_fresh_response_data(*late)


def test_response_data_many_refuses_what_it_cannot_encode(impl):
    ok = (b"\xa2\x02\x04\x00", 0, 1, b"\x01" * 20, b"\x02" * 20)
    good = impl.encode_cert_status(0, 0, -1)
    with pytest.raises(ValueError, match="differ in length"):
        impl.encode_response_data_many(*ok, [b"\x01"], [], 0, 1, [b""])
    with pytest.raises(TypeError, match="must be lists"):
        impl.encode_response_data_many(*ok, (b"\x01",), [good], 0, 1, [b""])
    with pytest.raises(TypeError, match="must be bytes"):
        impl.encode_response_data_many(*ok, [1], [good], 0, 1, [b""])
    with pytest.raises(TypeError, match="must be bytes"):
        impl.encode_response_data_many(*ok, [b"\x01"], [good], 0, 1, [None])
    with pytest.raises(ValueError, match="unsupported hash algorithm 9"):
        impl.encode_response_data_many(b"", 0, 9, b"", b"", [], [], 0, 1, [])
    with pytest.raises(ValueError, match="time outside"):
        impl.encode_response_data_many(*ok, [b"\x01"], [good], -5, 1, [b""])
    assert impl.encode_response_data_many(*ok, [], [], 0, 1, []) == []


def test_ocsp_responses_is_ocsp_response_per_item(impl):
    """The batch wrapper gives encode_ocsp_response's bytes for each item
    (certificates or none, every length form), and refuses what it cannot
    encode."""
    rng = random.Random(5)
    algorithm = bytes.fromhex("300a06082a8648ce3d040302")
    for certs in (b"", rng.randbytes(300), rng.randbytes(70000)):
        tbs = [rng.randbytes(rng.choice([10, 200, 300, 70000])) for _ in range(5)]
        signatures = [rng.randbytes(rng.choice([64, 72, 512])) for _ in tbs]
        assert impl.encode_ocsp_responses(tbs, algorithm, signatures, certs) == [
            impl.encode_ocsp_response(data, algorithm, signature, certs)
            for data, signature in zip(tbs, signatures, strict=True)
        ]
    assert impl.encode_ocsp_responses([], algorithm, [], b"") == []
    with pytest.raises(ValueError, match="differ in length"):
        impl.encode_ocsp_responses([b"\x30\x00"], algorithm, [], b"")
    with pytest.raises(TypeError, match="must be lists"):
        impl.encode_ocsp_responses((b"\x30\x00",), algorithm, [b"\x01"], b"")
    with pytest.raises(TypeError, match="must be bytes"):
        impl.encode_ocsp_responses([b"\x30\x00"], algorithm, [None], b"")
    with pytest.raises(TypeError):
        impl.encode_ocsp_responses([b"\x30\x00"], None, [b"\x01"], b"")
    with pytest.raises(TypeError):
        impl.encode_ocsp_responses([b"\x30\x00"], algorithm, [b"\x01"], None)


def test_encoders_refuse_none_for_bytes(impl):
    """None where bytes belong is a TypeError in both implementations (the
    native module must never read it as a bytes object)."""
    calls = [
        (impl.encode_certid, (1, None, b"", b"\x01")),
        (impl.encode_certid, (1, b"", b"", None)),
        (impl.encode_single_response, (None, 0, 0, -1, 0, 1)),
        (impl.encode_nonce_extension, (None,)),
        (impl.encode_response_data, (None, 0, [], b"")),
        (impl.encode_response_data, (b"", 0, [], None)),
        (impl.encode_ocsp_response, (b"", None, b"", b"")),
        (impl.encode_ocsp_response, (b"", b"", b"", None)),
        (impl.encode_response_data_many, (None, 0, 1, b"", b"", [], [], 0, 1, [])),
    ]
    for function, args in calls:
        with pytest.raises(TypeError):
            function(*args)
