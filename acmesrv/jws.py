"""JWS as RFC 8555 section 6.2 wants it, and nothing looser.

A request body is one JWS in the Flattened JSON Serialization (RFC 7515
7.2.2) with a protected header only: ``alg``, ``nonce``, ``url`` and
exactly one of ``jwk`` (newAccount, revokeCert by the certificate's key) or
``kid`` (everything else). No unprotected header, no ``b64`` (RFC 7797), no
``crit``; ``alg`` is an asymmetric algorithm of the list below (never
``none``, never a MAC); the key is a public key of the type the algorithm
wants. Keys and signatures go through josepy (RSA, EC) and cryptography
(Ed25519, RFC 8037, which josepy does not carry).

External account binding (7.3.4) is a JWS inside the newAccount payload:
MAC algorithms only (HS256/384/512), the ``kid`` an EAB key id, the same
``url``, no nonce, and the account's own JWK as its payload.
"""

import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
from dataclasses import dataclass

import josepy
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from acmesrv.problems import Problem

ACCOUNT_ALGORITHMS = ("RS256", "ES256", "ES384", "EdDSA")
MAC_ALGORITHMS = ("HS256", "HS384", "HS512")
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
_CURVES = {"ES256": ("P-256", ec.SECP256R1), "ES384": ("P-384", ec.SECP384R1)}
_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_ALLOWED_FIELDS = {"protected", "payload", "signature"}
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64decode(text, what: str) -> bytes:
    """base64url without padding (RFC 7515 2), strictly: no other
    characters, no padding, no leftover bits."""
    if not isinstance(text, str) or not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise Problem("malformed", f"{what} is not base64url without padding")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise Problem("malformed", f"{what} is not base64url") from None


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class SignedRequest:
    """A JWS whose form has been checked; its signature not yet."""

    protected: dict
    payload: bytes  # b"" for POST-as-GET (6.3)
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        return self.protected["alg"]

    @property
    def jwk(self) -> dict | None:
        return self.protected.get("jwk")

    @property
    def kid(self) -> str | None:
        return self.protected.get("kid")

    @property
    def nonce(self) -> str | None:
        return self.protected.get("nonce")

    @property
    def url(self) -> str:
        return self.protected["url"]

    def json(self) -> dict | None:
        """The payload as a JSON object; None for POST-as-GET."""
        if self.payload == b"":
            return None
        try:
            value = json.loads(self.payload)
        except (UnicodeDecodeError, ValueError):
            raise Problem("malformed", "the JWS payload is not JSON") from None
        if not isinstance(value, dict):
            raise Problem("malformed", "the JWS payload must be a JSON object")
        return value


def _flattened(obj, what: str) -> tuple[dict, bytes, bytes, bytes]:
    if not isinstance(obj, dict):
        raise Problem("malformed", f"{what} must be a JWS in the flattened JSON serialization")
    if "signatures" in obj:
        raise Problem("malformed", f"{what}: the general JWS serialization is not allowed (6.2)")
    if "header" in obj:
        raise Problem("malformed", f"{what}: an unprotected JWS header is not allowed (6.2)")
    extra = set(obj) - _ALLOWED_FIELDS
    if extra:
        raise Problem("malformed", f"{what} has unknown members: {', '.join(sorted(extra))}")
    for field in ("protected", "payload", "signature"):
        if not isinstance(obj.get(field), str):
            raise Problem("malformed", f"{what} lacks its {field!r} member")
    raw_header = b64decode(obj["protected"], f"{what}'s protected header")
    try:
        protected = json.loads(raw_header)
    except (UnicodeDecodeError, ValueError):
        raise Problem("malformed", f"{what}'s protected header is not JSON") from None
    if not isinstance(protected, dict):
        raise Problem("malformed", f"{what}'s protected header must be a JSON object")
    payload = b64decode(obj["payload"], f"{what}'s payload")
    signature = b64decode(obj["signature"], f"{what}'s signature")
    signing_input = f"{obj['protected']}.{obj['payload']}".encode()
    return protected, payload, signing_input, signature


def parse(body: bytes) -> SignedRequest:
    """Check a request body's form (6.2); raise a ``malformed`` Problem
    naming what is wrong."""
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise Problem("malformed", "the request body is not JSON (a JWS is expected)") from None
    protected, payload, signing_input, signature = _flattened(obj, "the request")
    alg = protected.get("alg")
    if not isinstance(alg, str):
        raise Problem("malformed", "the protected header has no 'alg'")
    if alg not in ACCOUNT_ALGORITHMS:
        raise Problem(
            "badSignatureAlgorithm",
            f"algorithm {alg!r} is not accepted for ACME requests",
            algorithms=ACCOUNT_ALGORITHMS,
        )
    for field in ("b64", "crit"):
        if field in protected:
            raise Problem("malformed", f"the protected header may not carry {field!r}")
    if not isinstance(protected.get("url"), str):
        raise Problem("malformed", "the protected header has no 'url' (6.4)")
    if "nonce" in protected and not isinstance(protected["nonce"], str):
        raise Problem("badNonce", "the protected header's 'nonce' must be a string")
    has_jwk, has_kid = "jwk" in protected, "kid" in protected
    if has_jwk == has_kid:
        raise Problem("malformed", "the protected header must have exactly one of 'jwk' and 'kid'")
    if has_jwk and not isinstance(protected["jwk"], dict):
        raise Problem("malformed", "the protected header's 'jwk' must be a JSON object")
    if has_kid and not isinstance(protected["kid"], str):
        raise Problem("malformed", "the protected header's 'kid' must be a string (an account URL)")
    return SignedRequest(protected, payload, signing_input, signature)


# -- keys ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountKey:
    """An account's public key: what it is, how it signs, its thumbprint."""

    jwk: dict  # the public members only, as stored
    key: object  # the cryptography public key

    @property
    def algorithms(self) -> tuple[str, ...]:
        if isinstance(self.key, rsa.RSAPublicKey):
            return ("RS256",)
        if isinstance(self.key, ed25519.Ed25519PublicKey):
            return ("EdDSA",)
        for alg, (_, curve) in _CURVES.items():
            if isinstance(self.key.curve, curve):
                return (alg,)
        return ()

    def thumbprint(self) -> str:
        """RFC 7638 (and RFC 8037 2 for OKP): SHA-256 of the required
        members, sorted, without whitespace."""
        members = {
            "RSA": ("e", "kty", "n"),
            "EC": ("crv", "kty", "x", "y"),
            "OKP": ("crv", "kty", "x"),
        }
        fields = members[self.jwk["kty"]]
        text = json.dumps({k: self.jwk[k] for k in fields}, sort_keys=True, separators=(",", ":"))
        return b64encode(hashlib.sha256(text.encode()).digest())

    def verify(self, request: SignedRequest) -> None:
        if request.alg not in self.algorithms:
            raise Problem(
                "badSignatureAlgorithm",
                f"algorithm {request.alg} does not go with this {self.jwk['kty']} key; "
                f"use {', '.join(self.algorithms)}",
                algorithms=self.algorithms,
            )
        if request.alg == "EdDSA":
            try:
                self.key.verify(request.signature, request.signing_input)
                return
            except InvalidSignature:
                raise Problem("malformed", "JWS signature verification failed") from None
        signer = josepy.JWASignature.from_json(request.alg)
        if not signer.verify(self.key, request.signing_input, request.signature):
            raise Problem("malformed", "JWS signature verification failed")


def account_key(jwk) -> AccountKey:
    """The public key of a ``jwk`` header member, refused unless it is an
    RSA (2048 to 8192 bits), P-256, P-384 or Ed25519 public key."""
    if not isinstance(jwk, dict) or not isinstance(jwk.get("kty"), str):
        raise Problem("malformed", "the JWK is not a JSON object with 'kty'")
    kty = jwk["kty"]
    if "d" in jwk or "k" in jwk:
        raise Problem("badPublicKey", "the JWK holds private or symmetric key material")
    if kty == "OKP":
        if jwk.get("crv") != "Ed25519":
            raise Problem("badPublicKey", "of OKP keys only Ed25519 is accepted")
        raw = b64decode(jwk.get("x"), "the JWK's 'x'")
        if len(raw) != 32:
            raise Problem("badPublicKey", "an Ed25519 key is 32 bytes")
        key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
        return AccountKey({"kty": "OKP", "crv": "Ed25519", "x": jwk["x"]}, key)
    if kty not in ("RSA", "EC"):
        raise Problem("badPublicKey", f"key type {kty!r} is not accepted (RSA, EC, OKP)")
    fields = ("n", "e") if kty == "RSA" else ("crv", "x", "y")
    for field in fields:
        if not isinstance(jwk.get(field), str):
            raise Problem("malformed", f"the {kty} JWK lacks {field!r}")
    if kty == "EC" and jwk["crv"] not in ("P-256", "P-384"):
        raise Problem("badPublicKey", f"curve {jwk['crv']!r} is not accepted (P-256, P-384)")
    try:
        key = josepy.JWK.from_json({"kty": kty, **{f: jwk[f] for f in fields}}).key
        # josepy wraps the key (ComparableKey); the checks below want the key itself.
        key = getattr(key, "_wrapped", key)
    except (josepy.errors.DeserializationError, ValueError, TypeError):
        raise Problem("badPublicKey", f"the {kty} JWK is not a valid public key") from None
    if isinstance(key, rsa.RSAPublicKey) and not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
        raise Problem(
            "badPublicKey",
            f"an RSA key of {key.key_size} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} are accepted",
        )
    return AccountKey({"kty": kty, **{f: jwk[f] for f in fields}}, key)


@functools.lru_cache(maxsize=4096)
def stored_key(text: str) -> AccountKey:
    """An account's stored JWK, parsed once per process (a pure function
    of the text: a key change stores another text)."""
    return account_key(json.loads(text))


# -- external account binding ---------------------------------------------------------


@dataclass(frozen=True)
class Binding:
    """An externalAccountBinding whose form is checked: which EAB key it
    names, and how to check its MAC once that key is known."""

    key_id: str
    alg: str
    signing_input: bytes
    mac: bytes

    def check(self, mac_key: bytes) -> None:
        expected = hmac.new(mac_key, self.signing_input, _HASHES[self.alg]).digest()
        if not hmac.compare_digest(expected, self.mac):
            raise Problem("unauthorized", "the external account binding's MAC does not verify")


def binding(obj, account_jwk: dict, url: str) -> Binding:
    """Check an ``externalAccountBinding`` (7.3.4): a MAC-signed JWS naming
    an EAB key id, for this URL, whose payload is the account's key."""
    protected, payload, signing_input, mac = _flattened(obj, "externalAccountBinding")
    alg = protected.get("alg")
    if alg not in MAC_ALGORITHMS:
        raise Problem(
            "badSignatureAlgorithm",
            f"the external account binding must use a MAC algorithm, not {alg!r}",
            algorithms=MAC_ALGORITHMS,
        )
    if "nonce" in protected:
        raise Problem("malformed", "the external account binding may not carry a nonce (7.3.4)")
    if protected.get("url") != url:
        raise Problem("malformed", "the external account binding's 'url' is not this URL")
    key_id = protected.get("kid")
    if not isinstance(key_id, str) or not key_id:
        raise Problem("malformed", "the external account binding names no key ('kid')")
    try:
        bound = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise Problem("malformed", "the external account binding's payload is not a JWK") from None
    if bound != account_jwk:
        raise Problem("unauthorized", "the external account binding is for another account key")
    return Binding(key_id, alg, signing_input, mac)
