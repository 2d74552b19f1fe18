"""An RA API on 127.0.0.1 over a test PKI, and a small JSON client."""

import http.client
import json
from dataclasses import dataclass, field

from ra.api import RAApi
from ra.listen import start
from ra.roles import ROLES
from ra.service import RAService

OFFICER_ENTITY = {
    "name": "web-1",
    "email": "ops@example.com",
    "ca": "issuing",
    "profile": "tls-server",
    "subject_template": "CN={name}.example.com",
    "allowed_sans": ["dns:web-1.example.com", "dns:*.web.example.com", "ip:192.0.2.0/24"],
    "attributes": {"team": "web"},
}


@dataclass
class Reply:
    status: int
    body: object
    headers: dict
    raw: bytes = b""


@dataclass
class RAEnv:
    service: RAService
    port: int
    tokens: dict = field(default_factory=dict)  # role -> token

    def call(
        self,
        method: str,
        path: str,
        body=None,
        *,
        role="administrator",
        token=None,
        raw: bytes | None = None,
        headers=None,
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        send = dict(headers or {})
        token = token if token is not None else self.tokens.get(role)
        if token:
            send["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        if data is not None:
            send.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=send)
        response = conn.getresponse()
        payload = response.read()
        conn.close()
        parsed = None
        if response.getheader("Content-Type", "").startswith("application/json"):
            parsed = json.loads(payload)
        return Reply(response.status, parsed, dict(response.getheaders()), payload)


def start_ra(loop, pki, policy=None, extra_users=(), limits=None) -> tuple[RAEnv, object]:
    """The API with one operator per role (token in env.tokens[role]) and
    ``extra_users`` as (name, role) pairs (tokens under their names)."""
    service = RAService(pki, policy)
    env = RAEnv(service, 0)
    for role in ROLES:
        _, env.tokens[role] = service.users.create(f"{role}-user", role)
    for name, role in extra_users:
        _, env.tokens[name] = service.users.create(name, role)
    runner, env.port = loop.run(start(RAApi(service, limits=limits), "127.0.0.1", 0))
    return env, runner
