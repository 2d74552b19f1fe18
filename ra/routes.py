"""The RA API's route table: method, path, operation, the permission it
needs (ra/roles.py), and the schemas the OpenAPI document names
(ra/openapi.py). The router (ra/api.py) and the document are both built
from it, so they cannot drift apart."""

from dataclasses import dataclass

SEARCH_FIELDS = (
    "text",
    "hostname",
    "serial",
    "issuer",
    "entity",
    "profile",
    "status",
    "issued_after",
    "issued_before",
    "expires_after",
    "expires_before",
)
EXPORT_FIELDS = (
    "issuer",
    "status",
    "issued_after",
    "issued_before",
    "expires_after",
    "expires_before",
)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    operation_id: str
    permission: str | None  # None: public
    summary: str
    request: str | None = None  # schema name in ra/openapi.py
    response: str | None = None
    query: tuple[str, ...] = ()


ROUTES = (
    Route("GET", "/api/openapi.json", "openapi", None, "This document"),
    Route("GET", "/api/health", "health", None, "Liveness", response="Health"),
    Route("GET", "/api/whoami", "whoami", "", "The signed-in operator", response="User"),
    Route(
        "GET",
        "/api/entities",
        "listEntities",
        "entity.read",
        "End entities by name, a page at a time",
        response="EntityPage",
        query=("name", "status", "email", "ca", "profile", "attribute", "after", "limit"),
    ),
    Route(
        "POST",
        "/api/entities",
        "createEntity",
        "entity.write",
        "Create an end entity",
        request="EntityCreate",
        response="Entity",
    ),
    Route(
        "GET",
        "/api/entities/{name}",
        "getEntity",
        "entity.read",
        "One end entity",
        response="Entity",
    ),
    Route(
        "PATCH",
        "/api/entities/{name}",
        "updateEntity",
        "entity.write",
        "Change an end entity (status 'disabled' disables it)",
        request="EntityUpdate",
        response="Entity",
    ),
    Route(
        "GET",
        "/api/entities/{name}/certificates",
        "entityCertificates",
        "certificate.read",
        "Certificates issued to an end entity (status as of now)",
        response="FoundCertificateList",
    ),
    Route(
        "GET",
        "/api/entities/{name}/secrets",
        "listSecrets",
        "entity.read",
        "The end entity's one-time enrollment secrets (EST, SCEP); never the secrets",
        response="SecretList",
    ),
    Route(
        "POST",
        "/api/entities/{name}/secrets",
        "createSecret",
        "entity.write",
        "A one-time enrollment secret for a device of the end entity (shown this once)",
        request="SecretCreate",
        response="NewSecret",
    ),
    Route(
        "DELETE",
        "/api/secrets/{id}",
        "revokeSecret",
        "entity.write",
        "Withdraw an unused enrollment secret",
    ),
    Route(
        "POST",
        "/api/entities/{name}/enroll",
        "enroll",
        "certificate.enroll",
        "Issue to the end entity from a CSR, or with a key made here (PKCS#12)",
        request="Enroll",
        response="Enrollment",
    ),
    Route(
        "GET",
        "/api/certificates",
        "searchCertificates",
        "certificate.read",
        "Search certificates (filters combine; status as of now: active, expired, revoked, "
        "hold); a page at a time in id order",
        response="CertificatePage",
        query=(*SEARCH_FIELDS, "after", "limit"),
    ),
    Route(
        "GET",
        "/api/export",
        "export",
        "certificate.read",
        "Issued certificates as a zip: CA/status/SERIAL.pem (status at the time of the "
        "export: active, expired, revoked, hold) and manifest.csv; filters combine",
        response="Zip",
        query=EXPORT_FIELDS,
    ),
    Route(
        "GET",
        "/api/reports/{report}",
        "report",
        "report.read",
        "counts (by CA, profile and status now), expiring (the certificates expiring in the "
        "next N days, with owner and days left), duplicates (groups of valid certificates "
        "sharing a key, or a subject and name set); JSON or CSV",
        response="Report",
        query=("days", "format"),
    ),
    Route(
        "GET",
        "/api/certificates/{ca}/{serial}",
        "getCertificate",
        "certificate.read",
        "One certificate",
        response="CertificateWithPem",
    ),
    Route(
        "GET",
        "/api/certificates/{ca}/{serial}/chain",
        "getChain",
        "certificate.read",
        "The certificate and its CA chain (PEM)",
        response="PemChain",
    ),
    Route(
        "POST",
        "/api/certificates/{ca}/{serial}/renew",
        "renew",
        "certificate.renew",
        "A new certificate for the same end entity",
        request="Renew",
        response="Enrollment",
    ),
    Route(
        "POST",
        "/api/certificates/{ca}/{serial}/revoke",
        "revoke",
        "certificate.revoke",
        "Revoke with a reason",
        request="Revoke",
        response="Certificate",
    ),
    Route(
        "POST",
        "/api/certificates/{ca}/{serial}/release-hold",
        "releaseHold",
        "certificate.revoke",
        "Take a certificate off hold (certificateHold): good again",
        response="Certificate",
    ),
    Route(
        "POST",
        "/api/inventory",
        "importInventory",
        "inventory.import",
        "Import certificates issued by other PKIs (PEM, DER or zip files) into the "
        "inventory; issuers verified, all or nothing",
        request="InventoryImport",
        response="InventoryResult",
    ),
    Route(
        "GET",
        "/api/blocklist",
        "listBlockedKeys",
        "blocklist.read",
        "The CA's blocklist of compromised keys (BR 6.1.1.3), in digest order",
        response="BlockedKeyPage",
        query=("after", "limit"),
    ),
    Route(
        "POST",
        "/api/blocklist",
        "blockKeys",
        "blocklist.write",
        "List keys as compromised, all or none: no certificate is issued for them",
        request="BlocklistImport",
        response="BlocklistImported",
    ),
    Route(
        "POST",
        "/api/blocklist/check",
        "checkBlockedKeys",
        "blocklist.read",
        "Whether keys are on the blocklist, and why",
        request="BlocklistCheck",
        response="BlocklistChecked",
    ),
    Route(
        "GET",
        "/api/requests",
        "listRequests",
        "request.read",
        "Requests waiting for (or decided by) approvers",
        response="RequestPage",
        query=("status", "after", "limit"),
    ),
    Route(
        "GET",
        "/api/requests/{id}",
        "getRequest",
        "request.read",
        "One request; once done, the certificate it issued",
        response="RequestWithResult",
    ),
    Route(
        "POST",
        "/api/requests/{id}/approve",
        "approveRequest",
        "request.approve",
        "Approve (not your own); the last approval carries the request out",
        response="Request",
    ),
    Route(
        "POST",
        "/api/requests/{id}/reject",
        "rejectRequest",
        "request.approve",
        "Reject with a reason",
        request="Reject",
        response="Request",
    ),
    Route(
        "POST",
        "/api/requests/{id}/pkcs12",
        "requestPkcs12",
        "certificate.enroll",
        "The PKCS#12 of a key made for an approved request (its requester only)",
        request="Pkcs12",
        response="Pkcs12Download",
    ),
    Route("GET", "/api/users", "listUsers", "user.manage", "RA operators", response="UserList"),
    Route(
        "POST",
        "/api/users",
        "createUser",
        "user.manage",
        "Add an operator; the token is shown once (where operator changes need "
        "approvals, it works once the request is carried out)",
        request="UserCreate",
        response="UserCreated",
    ),
    Route(
        "PATCH",
        "/api/users/{name}",
        "updateUser",
        "user.manage",
        "Enable or disable an operator, or change its role (enabling and role changes "
        "wait for approvals where operator changes need them; never the last active "
        "administrator's: 409)",
        request="UserUpdate",
        response="User",
    ),
    Route(
        "DELETE",
        "/api/users/{name}",
        "deleteUser",
        "user.manage",
        "Delete an operator (never the last active administrator: 409)",
        response="UserDeleted",
    ),
    Route(
        "POST",
        "/api/users/{name}/token",
        "rotateToken",
        "user.manage",
        "A new API token for an operator (shown once; the old one stops working); "
        "another's waits for approvals where operator changes need them",
        response="UserToken",
    ),
    Route(
        "POST",
        "/api/whoami/token",
        "rotateOwnToken",
        "",
        "A new API token for the signed-in operator (shown once; the old one stops working)",
        response="UserToken",
    ),
    Route(
        "GET",
        "/api/audit",
        "listAudit",
        "audit.read",
        "The newest audit records",
        response="AuditList",
        query=("limit",),
    ),
)
