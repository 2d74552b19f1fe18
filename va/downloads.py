"""What the VA serves besides OCSP: CA certificates (RFC 5280 4.2.2.1
caIssuers) and CRLs (4.2.1.13 CRL distribution points), by the names the
URLs in certificates carry."""

import base64

from va import headers
from va.store import StoreReader, VAStore

PKIX_CERT = b"application/pkix-cert"
PEM = b"application/x-pem-file"
PKCS7 = b"application/pkcs7-mime"
PKIX_CRL = b"application/pkix-crl"


class Download:
    """One file: its bytes, content type and ETag."""

    __slots__ = ("body", "content_type", "etag")

    def __init__(self, body: bytes, content_type: bytes):
        self.body = body
        self.content_type = content_type
        self.etag = headers.etag(body)


def ca_chains(store: VAStore) -> dict[str, list[bytes]]:
    """Each issuer and each of its parents by name, with the parents after it."""
    chains: dict[str, list[bytes]] = {}
    for record in store.issuers().values():
        links = [(record["name"], record["certificate"])]
        links += [(p["name"], p["certificate"]) for p in record.get("parents", [])]
        ders = [base64.b64decode(der) for _, der in links]
        for i, (name, _) in enumerate(links):
            chains.setdefault(name, ders[i:])
    return chains


def ca_downloads(chains: dict[str, list[bytes]]) -> dict[str, Download]:
    """Every CA certificate download, keyed by the name after /ca/:
    NAME.crt / NAME.der (DER, RFC 5280 4.2.2.1 caIssuers), NAME.pem,
    NAME-chain.pem (the certificate and its parents), NAME.p7c (PKCS#7
    certs-only, RFC 5280 4.2.2.1)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

    out = {}
    for name, chain in chains.items():
        certs = [x509.load_der_x509_certificate(der) for der in chain]
        pem = [c.public_bytes(Encoding.PEM) for c in certs]
        out[f"{name}.crt"] = Download(chain[0], PKIX_CERT)
        out[f"{name}.der"] = out[f"{name}.crt"]
        out[f"{name}.pem"] = Download(pem[0], PEM)
        out[f"{name}-chain.pem"] = Download(b"".join(pem), PEM)
        out[f"{name}.p7c"] = Download(pkcs7.serialize_certificates(certs, Encoding.DER), PKCS7)
    return out


class CRLs:
    """The latest CRL per name, read from the store on each request (a
    publisher may replace it at any time); its ETag is computed once per CRL
    number, not per request (a CRL may run to megabytes)."""

    def __init__(self, reader: StoreReader):
        self.reader = reader
        # name -> ((CRL number, thisUpdate), ETag)
        self.tags: dict[str, tuple[tuple[int, int], bytes]] = {}

    def get(self, name: str) -> tuple[bytes, bytes, tuple[int, int]] | None:
        """(DER, ETag, (thisUpdate, nextUpdate)) of the CRL ``name``, or None."""
        crl = self.reader.crl(name)
        if crl is None:
            return None
        version = (crl.number, crl.this_update)
        known = self.tags.get(name)
        if known is None or known[0] != version:
            if len(self.tags) >= 4096:
                self.tags.clear()
            known = self.tags[name] = (version, headers.etag(crl.der))
        return crl.der, known[1], (crl.this_update, crl.next_update)
