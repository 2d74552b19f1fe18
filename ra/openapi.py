"""The OpenAPI 3.0 document of the RA API, built from its route table
(ra/api.py ROUTES) and the schemas below."""

import re

from ca.catalog import STATUSES as CERT_STATUSES
from ca.keys import KEY_SPECS
from ca.reasons import RevocationReason
from ra.approvals import KINDS
from ra.approvals import STATUSES as REQUEST_STATUSES
from ra.entities import STATUSES
from ra.roles import OPERATIONS, ROLES

_STRING = {"type": "string"}
_STRINGS = {"type": "array", "items": _STRING}
_TIME = {"type": "string", "format": "date-time", "example": "2026-12-03T18:00:00Z"}


def _object(properties: dict, required=(), additional=False, description=None) -> dict:
    out = {"type": "object", "properties": properties, "additionalProperties": additional}
    if description:
        out["description"] = description
    if required:
        out["required"] = list(required)
    return out


_ENTITY_FIELDS = {
    "email": {"type": "string", "format": "email"},
    "ca": {"type": "string", "description": "issuing CA's name"},
    "profile": {"type": "string", "description": "certificate profile"},
    "subject_template": {
        "type": "string",
        "description": "RFC 4514 subject with {name}, {email} and {attribute} placeholders",
        "example": "CN={name},O=Example",
    },
    "allowed_sans": {
        **_STRINGS,
        "description": "patterns: dns:host, dns:*.domain, ip:address or CIDR, "
        "email:address or *@domain, uri:prefix*",
    },
    "attributes": {"type": "object", "additionalProperties": _STRING},
}
_CERTIFICATE = _object(
    {
        "ca": _STRING,
        "serial": {"type": "string", "description": "hexadecimal"},
        "subject": _STRING,
        "sans": _STRINGS,
        "profile": _STRING,
        "key_type": _STRING,
        "not_before": _TIME,
        "not_after": _TIME,
        "status": {
            "type": "string",
            "enum": list(CERT_STATUSES),
            "description": "as of the answer (revoked stays revoked after expiry)",
        },
        "revoked_at": {**_TIME, "nullable": True},
        "reason": {"type": "string", "nullable": True},
        "invalidity_date": {**_TIME, "nullable": True},
        "fingerprint_sha256": _STRING,
    },
    additional=True,
)
_ISO_TIME = {
    "type": "string",
    "format": "date-time",
    "example": "2026-12-03T18:00:00Z",
    "description": "UTC, to the second",
}
_BLOCKED_KEY = _object(
    {
        "spki_sha256": {"type": "string", "description": "SHA-256 of the DER SubjectPublicKeyInfo"},
        "added_at": _ISO_TIME,
        "source": {"type": "string", "enum": ["revocation", "import"]},
        "ca": {"type": "string", "nullable": True},
        "serial": {"type": "string", "nullable": True},
        "reason": {"type": "string", "nullable": True},
        "note": {"type": "string", "nullable": True},
        "actor": _STRING,
    }
)
_BLOCKLIST_TEXT = {
    "type": "string",
    "description": "PEM blocks (PUBLIC KEY, RSA PUBLIC KEY, CERTIFICATE, CERTIFICATE REQUEST) "
    "and lines of 64 hex digits (a SubjectPublicKeyInfo's SHA-256); # comments",
}
_FOUND = _object(
    {
        **_CERTIFICATE["properties"],
        "not_before": _ISO_TIME,
        "not_after": _ISO_TIME,
        "status": {
            "type": "string",
            "enum": list(CERT_STATUSES),
            "description": "at the time of the request: a good certificate is active until "
            "its notAfter, then expired; revoked and hold stay after expiry",
        },
        "revoked_at": {**_ISO_TIME, "nullable": True},
        "invalidity_date": {**_ISO_TIME, "nullable": True},
    },
    additional=True,
)
_SANS = {**_STRINGS, "description": "type:value"}
_EXPIRING = _object(
    {
        "subject": _STRING,
        "sans": _SANS,
        "issuer": {"type": "string", "description": "the issuing CA's name"},
        "serial": {"type": "string", "description": "hexadecimal"},
        "not_after": _ISO_TIME,
        "days_left": {"type": "integer", "description": "whole days from now to notAfter"},
        "entity": {"type": "string", "nullable": True},
        "owner": {"type": "string", "nullable": True, "description": "the entity's contact"},
    }
)
_COUNT = _object(
    {
        "ca": _STRING,
        "profile": _STRING,
        "status": {"type": "string", "enum": list(CERT_STATUSES)},
        "count": {"type": "integer"},
    }
)
_DUPLICATE = _object(
    {
        "kind": {
            "type": "string",
            "enum": ["key", "names"],
            "description": "key: one public key in several valid certificates; names: "
            "several valid certificates for one subject and name set",
        },
        "shared": {
            "type": "string",
            "description": "key: the SHA-256 of the SubjectPublicKeyInfo (hex); names: the "
            "subject and its sorted SANs",
        },
        "certificates": {
            "type": "array",
            "items": _object(
                {
                    "ca": _STRING,
                    "serial": _STRING,
                    "subject": _STRING,
                    "sans": _SANS,
                    "not_after": _ISO_TIME,
                    "profile": _STRING,
                    "entity": {"type": "string", "nullable": True},
                }
            ),
        },
    }
)
_USER = _object(
    {
        "name": _STRING,
        "role": {"type": "string", "enum": list(ROLES)},
        "status": {"type": "string", "enum": ["active", "disabled"]},
        "has_token": {"type": "boolean"},
        "cert_fingerprint_sha256": {"type": "string", "nullable": True},
        "created_at": _TIME,
    }
)
_ENTITY = _object(
    {
        "name": _STRING,
        **_ENTITY_FIELDS,
        "status": {"type": "string", "enum": list(STATUSES)},
        "created_at": _TIME,
        "updated_at": _TIME,
    }
)
_KEY_TYPES = list(KEY_SPECS)
_REQUEST = _object(
    {
        "id": {"type": "integer"},
        "kind": {"type": "string", "enum": list(KINDS)},
        "entity": {"type": "string", "nullable": True},
        "what": {"type": "object", "description": "what the request does"},
        "details": {
            "type": "object",
            "nullable": True,
            "description": "what an approver approves: for a certificate its CA, profile, "
            "subject, every SAN, key type and size (key_bits), validity (validity_days, "
            "not_after as if issued when asked) and the CSR's SHA-256 (csr_sha256); for a "
            "revocation the certificate's subject, SANs, profile and status",
        },
        "has_csr": {"type": "boolean"},
        "required": {"type": "integer"},
        "approvers": _STRINGS,
        "requester": _STRING,
        "status": {"type": "string", "enum": list(REQUEST_STATUSES)},
        "created_at": _TIME,
        "expires_at": _TIME,
        "decided_at": {**_TIME, "nullable": True},
        "decided_by": {"type": "string", "nullable": True},
        "note": {"type": "string", "nullable": True},
        "result": {
            "type": "object",
            "nullable": True,
            "properties": {"ca": _STRING, "serial": _STRING},
        },
    }
)

SCHEMAS = {
    "Error": _object(
        {"error": _object({"code": _STRING, "message": _STRING}, required=("code", "message"))},
        required=("error",),
    ),
    "Health": _object({"status": _STRING}),
    "User": _USER,
    "UserList": _object({"items": {"type": "array", "items": _USER}}),
    "UserCreate": _object(
        {
            "name": _STRING,
            "role": {"type": "string", "enum": list(ROLES)},
            "token": {"type": "boolean", "default": True},
            "certificate": {"type": "string", "description": "client certificate, PEM"},
        },
        required=("name", "role"),
    ),
    "UserCreated": {
        "allOf": [
            {"$ref": "#/components/schemas/User"},
            _object({"token": {"type": "string", "nullable": True}}, additional=True),
        ]
    },
    "UserUpdate": _object(
        {
            "status": {"type": "string", "enum": ["active", "disabled"]},
            "role": {"type": "string", "enum": list(ROLES)},
        },
        description="exactly one of status and role",
    ),
    "UserToken": {
        "allOf": [
            {"$ref": "#/components/schemas/User"},
            _object({"token": _STRING}, additional=True),
        ]
    },
    "UserDeleted": _object({"name": _STRING, "deleted": {"type": "boolean"}}),
    "QueuedWithToken": _object(
        {
            "request": _REQUEST,
            "token": {
                "type": "string",
                "nullable": True,
                "description": "shown this once; it signs in once the request is carried out",
            },
        },
        required=("request",),
    ),
    "Entity": _ENTITY,
    "EntityPage": _object(
        {
            "items": {"type": "array", "items": _ENTITY},
            "next_after": {"type": "string", "nullable": True},
        }
    ),
    "EntityCreate": _object(
        {"name": _STRING, **_ENTITY_FIELDS},
        required=("name", "email", "ca", "profile", "subject_template"),
    ),
    "EntityUpdate": _object(
        {**_ENTITY_FIELDS, "status": {"type": "string", "enum": list(STATUSES)}}
    ),
    "Enroll": _object(
        {
            "csr": {"type": "string", "description": "PKCS#10, PEM"},
            "key_type": {"type": "string", "enum": _KEY_TYPES},
            "passphrase": {"type": "string", "minLength": 8, "description": "for the PKCS#12"},
            "sans": {**_STRINGS, "description": "type:value; default: the CSR's"},
            "days": {"type": "integer", "minimum": 1},
        }
    ),
    "Renew": _object(
        {
            "csr": _STRING,
            "key_type": {"type": "string", "enum": _KEY_TYPES},
            "passphrase": {"type": "string", "minLength": 8},
            "days": {"type": "integer", "minimum": 1},
        }
    ),
    "Revoke": _object(
        {
            "reason": {
                "type": "string",
                "enum": [r.name for r in RevocationReason if r.name != "removeFromCRL"],
            }
        },
        required=("reason",),
    ),
    "Certificate": _CERTIFICATE,
    "InventoryImport": _object(
        {
            "pem": {"type": "string", "description": "PEM text: any number of certificates"},
            "files": {
                "type": "array",
                "items": _object(
                    {
                        "name": {"type": "string", "description": "named in messages"},
                        "content": {
                            "type": "string",
                            "format": "byte",
                            "description": "base64 of a PEM, DER or zip file",
                        },
                    },
                    required=("name", "content"),
                ),
            },
            "entity": {
                "type": "string",
                "description": "tie the certificates to this end entity (its expiry notices)",
            },
        }
    ),
    "InventoryResult": _object(
        {
            "imported": {"type": "integer"},
            "already_present": {"type": "integer"},
            "issuers_added": _STRINGS,
        }
    ),
    "SecretCreate": _object(
        {
            "protocols": {
                "type": "array",
                "items": {"type": "string", "enum": ["est", "scep"]},
                "default": ["est", "scep"],
            },
            "days": {"type": "integer", "minimum": 1, "maximum": 90, "default": 7},
        }
    ),
    "NewSecret": _object(
        {
            "id": _STRING,
            "entity": _STRING,
            "protocols": _STRINGS,
            "secret": {
                "type": "string",
                "description": "EST's HTTP Basic password (the user: the entity's name), "
                "SCEP's challenge password; shown this once",
            },
            "expires_at": _TIME,
        }
    ),
    "SecretList": _object(
        {
            "items": {
                "type": "array",
                "items": _object(
                    {
                        "id": _STRING,
                        "entity": _STRING,
                        "protocols": _STRINGS,
                        "status": {
                            "type": "string",
                            "enum": ["unused", "used", "revoked", "expired"],
                        },
                        "created_by": _STRING,
                        "created_at": _TIME,
                        "expires_at": _TIME,
                        "used_at": {**_TIME, "nullable": True},
                        "used_by": {"type": "string", "nullable": True},
                    }
                ),
            }
        }
    ),
    "BlockedKeyPage": _object(
        {
            "items": {"type": "array", "items": _BLOCKED_KEY},
            "next_after": {
                "type": "string",
                "nullable": True,
                "description": "pass as after for the next page; null on the last",
            },
        }
    ),
    "BlocklistImport": _object(
        {"keys": _BLOCKLIST_TEXT, "note": {"type": "string", "minLength": 1}},
        required=("keys", "note"),
    ),
    "BlocklistImported": _object(
        {
            "keys": {"type": "integer"},
            "added": {"type": "integer"},
            "already_listed": {"type": "integer"},
        }
    ),
    "BlocklistCheck": _object({"keys": _BLOCKLIST_TEXT}, required=("keys",)),
    "BlocklistChecked": _object(
        {
            "items": {
                "type": "array",
                "items": _object(
                    {
                        "line": {"type": "integer"},
                        "kind": _STRING,
                        "spki_sha256": _STRING,
                        "listed": {"type": "boolean"},
                        "entry": {**_BLOCKED_KEY, "nullable": True},
                    }
                ),
            },
            "listed": {"type": "integer", "description": "how many of the keys are listed"},
        }
    ),
    "CertificateWithPem": {
        "allOf": [
            {"$ref": "#/components/schemas/Certificate"},
            _object({"pem": _STRING}, additional=True),
        ]
    },
    "CertificateList": _object(
        {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Certificate"}}}
    ),
    "Enrollment": _object(
        {
            "certificate": {"$ref": "#/components/schemas/Certificate"},
            "pem": _STRING,
            "chain_pem": _STRING,
            "pkcs12": {"type": "string", "format": "byte", "description": "base64"},
        },
        required=("certificate", "pem", "chain_pem"),
    ),
    "PemChain": _STRING,
    "Zip": {"type": "string", "format": "binary"},
    "FoundCertificate": _FOUND,
    "FoundCertificateList": _object(
        {"items": {"type": "array", "items": {"$ref": "#/components/schemas/FoundCertificate"}}}
    ),
    "CertificatePage": _object(
        {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/FoundCertificate"}},
            "next_after": {"type": "string", "nullable": True},
        }
    ),
    "Report": _object(
        {
            "items": {
                "type": "array",
                "description": "counts: Count rows; expiring: Expiring rows, soonest first; "
                "duplicates: Duplicate groups",
                "items": {"oneOf": [_COUNT, _EXPIRING, _DUPLICATE]},
            }
        }
    ),
    "Request": _REQUEST,
    "RequestPage": _object(
        {
            "items": {"type": "array", "items": _REQUEST},
            "next_after": {"type": "string", "nullable": True},
        }
    ),
    "RequestWithResult": {
        "allOf": [
            {"$ref": "#/components/schemas/Request"},
            _object(
                {"certificate": {"$ref": "#/components/schemas/Certificate"}, "pem": _STRING},
                additional=True,
            ),
        ]
    },
    "Queued": _object({"request": _REQUEST}, required=("request",)),
    "Reject": _object({"reason": {"type": "string", "minLength": 1}}, required=("reason",)),
    "Pkcs12": _object({"passphrase": {"type": "string", "minLength": 8}}, required=("passphrase",)),
    "Pkcs12Download": _object({"pkcs12": {"type": "string", "format": "byte"}}),
    "AuditList": _object(
        {
            "items": {
                "type": "array",
                "items": _object(
                    {
                        "seq": {"type": "integer"},
                        "at_ms": {"type": "integer"},
                        "actor": _STRING,
                        "action": _STRING,
                        "target": _STRING,
                        "result": _STRING,
                        "detail": {"type": "object"},
                    }
                ),
            }
        }
    ),
}

_ERRORS = {
    "400": "bad_input: the request could not be read",
    "401": "unauthenticated",
    "403": "forbidden: the operator's role does not allow this",
    "404": "not_found",
    "409": "conflict: clashes with the current state",
    "422": "policy_violation: well formed, but the profile or end entity forbids it; "
    "key_compromised: the public key is on the CA's blocklist of compromised keys",
    "503": "store_error (or schema_outdated): the store failed or needs a schema upgrade; "
    "nothing was changed",
}
_CREATES = {"createEntity", "enroll", "renew", "createUser"}
_QUEUED = {"enroll", "renew", "revoke", "updateUser"}
# Operator changes that wait for approvals show their token at once.
_QUEUED_WITH_TOKEN = {"createUser", "rotateToken"}
_QUERY = {
    "name": ("substring of the end entity's name", _STRING),
    "status": (
        "status to filter by; certificates: active, expired, revoked or hold, as of now",
        _STRING,
    ),
    "email": ("contact email, exact and case-blind", _STRING),
    "ca": ("issuing CA's name", _STRING),
    "attribute": ("key=value; repeat to require several", _STRING),
    "text": ("substring of the subject or a SAN (at least 3 characters)", _STRING),
    "hostname": ("a host name the certificate covers (exactly or by a wildcard)", _STRING),
    "serial": ("serial, hexadecimal", _STRING),
    "issuer": ("issuing CA's name", _STRING),
    "entity": ("end entity's name", _STRING),
    "profile": ("certificate profile", _STRING),
    "issued_after": ("ISO 8601 time or epoch seconds", _STRING),
    "issued_before": ("ISO 8601 time or epoch seconds", _STRING),
    "expires_after": ("ISO 8601 time or epoch seconds", _STRING),
    "expires_before": ("ISO 8601 time or epoch seconds", _STRING),
    "days": (
        "expiring report: the window, days from now (1-3650; default 30)",
        {"type": "integer", "minimum": 1, "maximum": 3650},
    ),
    "format": ("json or csv", {"type": "string", "enum": ["json", "csv"]}),
    "after": ("the next_after of the previous page", _STRING),
    "limit": ("page size, 1 to 1000", {"type": "integer", "minimum": 1, "maximum": 1000}),
}


def document(routes) -> dict:
    paths: dict = {}
    for route in routes:
        operation: dict = {"operationId": route.operation_id, "summary": route.summary}
        params = [
            {"name": name, "in": "path", "required": True, "schema": _STRING}
            for name in re.findall(r"\{(\w+)\}", route.path)
        ]
        params += [
            {"name": q, "in": "query", "required": False, "description": d, "schema": s}
            for q in route.query
            for d, s in [_QUERY[q]]
        ]
        if params:
            operation["parameters"] = params
        if route.request:
            operation["requestBody"] = {
                "required": route.method != "POST" or route.operation_id != "renew",
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{route.request}"}
                    }
                },
            }
        ok = "201" if route.operation_id in _CREATES else "200"
        content_type = {
            "PemChain": "application/pem-certificate-chain",
            "Zip": "application/zip",
        }.get(route.response, "application/json")
        schema = (
            {"$ref": f"#/components/schemas/{route.response}"}
            if route.response
            else {"type": "object"}
        )
        responses = {ok: {"description": "success", "content": {content_type: {"schema": schema}}}}
        if route.operation_id == "report":
            responses[ok]["content"]["text/csv"] = {"schema": _STRING}
        if route.operation_id in _QUEUED | _QUEUED_WITH_TOKEN:
            queued = {
                "$ref": "#/components/schemas/"
                + ("QueuedWithToken" if route.operation_id in _QUEUED_WITH_TOKEN else "Queued")
            }
            responses["202"] = {
                "description": "waiting for approvals (see /api/requests)",
                "content": {"application/json": {"schema": queued}},
            }
        error = {
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        }
        if route.permission is None:
            operation["security"] = []
        else:
            for status, text in _ERRORS.items():
                responses[status] = {"description": text, **error}
            if route.permission:
                roles = ", ".join(sorted(OPERATIONS[route.permission]))
                operation["description"] = f"Operation {route.permission}; roles: {roles}."
        operation["responses"] = responses
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Revoca RA API",
            "version": "1",
            "description": "End entities, enrollment, renewal, revocation and operators. "
            "Errors are JSON objects with a stable code.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer"},
                "clientCertificate": {
                    "type": "http",
                    "scheme": "mutual-tls",
                    "description": "a TLS client certificate registered to an operator "
                    "(OpenAPI 3.0 has no mutualTLS type; 3.1 does)",
                },
            },
        },
        "security": [{"token": []}, {"clientCertificate": []}],
    }
