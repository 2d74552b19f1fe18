"""``revoca demo``: the whole CA side on embedded defaults, in one directory."""

import secrets
import shutil
import time
from dataclasses import replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ca.errors import ConflictError
from ca.fsutil import write_secret_file
from ca.reasons import RevocationReason
from ca.records import serial_hex
from common.privatedir import make_private_dir
from revoca.app import build_ca_service
from revoca.config import load_config

MARKER = ".revoca-demo"


def _csr(common_name: str, sans: list[x509.GeneralName], key) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def prepare_directory(directory: Path) -> None:
    """Start from an empty directory; only ever delete one the demo made."""
    if directory.exists():
        if not (directory / MARKER).exists() and any(directory.iterdir()):
            raise ConflictError(
                f"{directory} exists and was not made by `revoca demo`; choose another --dir"
            )
        shutil.rmtree(directory)
    make_private_dir(directory)  # 0700 as each parent made for it: keys and the VA live below
    (directory / MARKER).write_text("made by `revoca demo`; deleted by the next run\n")


def run_demo(
    directory: Path,
    echo=print,
    *,
    port: int = 8080,
    serve_seconds: float | None = None,
    acme_port: int = 8555,
    http01_port: int = 8402,
    est_port: int = 9443,
    scep_port: int = 8089,
) -> dict:
    """Build the demo PKI and VA in ``directory``; then serve the VA on
    127.0.0.1:``port`` and the ACME server on ``acme_port`` until
    interrupted (``serve_seconds``: a time limit; 0: do not serve). Where
    certbot is installed it gets one certificate over ACME while they run
    (http-01 on ``http01_port``). EST (TLS) on ``est_port`` and SCEP on
    ``scep_port`` enroll the device entity 'device-1' with a one-time secret."""
    prepare_directory(directory)
    passphrase_file = directory / "key-passphrase"
    write_secret_file(passphrase_file, secrets.token_urlsafe(24).encode())
    config = load_config(None, data_dir=directory).with_passphrase_file(passphrase_file)
    service = build_ca_service(config, create=True)
    actor = "demo"
    out = {}

    echo(f"Revoca demo in {directory}/ (store: {config.store_url})")
    root = service.init_root("demo-root", "CN=Revoca Demo Root,O=Revoca Demo,C=DE", actor=actor)
    echo(f"  root CA         {root.subject}  [{root.key_type}]")
    from ca.crl_updater import Schedule, run_once

    # A new CA signs its first CRL at once: the root's ARL.
    run_once(service, Schedule.from_settings(config.crl), actor=actor, only="demo-root")
    issuing = service.create_sub(
        "demo-issuing", "demo-root", "CN=Revoca Demo Issuing CA,O=Revoca Demo,C=DE", actor=actor
    )
    echo(f"  issuing CA      {issuing.subject}  [{issuing.key_type}]")
    # Under the Baseline Requirements demo-issuing may hold nothing (BR
    # 4.9.13); client certificates that may be held come from a CA outside them.
    clients = service.create_sub(
        "demo-clients",
        "demo-root",
        "CN=Revoca Demo Client CA,O=Revoca Demo,C=DE",
        profile="client-sub-ca",
        actor=actor,
    )
    echo(f"  client CA       {clients.subject}  [{clients.key_type}]")
    signer, signer_key = service.issue_ocsp_signer("demo-issuing", actor=actor)
    echo(f"  OCSP signer     serial {serial_hex(signer.serial)} (key {signer_key})")
    clients_signer, _ = service.issue_ocsp_signer("demo-clients", actor=actor)

    issued = {}
    for host in ("www.example.com", "api.example.com"):
        key = ec.generate_private_key(ec.SECP256R1())
        csr = _csr(host, [x509.DNSName(host)], key)
        issued[host] = service.issue("demo-issuing", csr, "tls-server", actor=actor)
    alice_key = ec.generate_private_key(ec.SECP256R1())
    alice_csr = _csr("alice", [x509.RFC822Name("alice@example.com")], alice_key)
    issued["alice"] = service.issue("demo-clients", alice_csr, "tls-client", actor=actor)
    issued["bob"] = service.issue_with_new_key(
        "demo-issuing", "tls-client", "CN=bob", ["email:bob@example.com"], actor=actor
    )
    acme_config, acme_eab = _acme_setup(service, config, actor, http01_port)
    echo(
        f"  ACME            entity 'servers' (ip:127.0.0.1, dns:*.demo.example), "
        f"EAB key {acme_eab[0]}"
    )
    config = replace(
        config,
        enroll=replace(config.enroll, ca="demo-clients", est_port=est_port, scep_port=scep_port),
    )
    device_secret = _enroll_setup(service, actor)
    echo("  EST and SCEP    entity 'device-1' (demo-clients, tls-client), one-time secret made")
    for label, record in issued.items():
        echo(
            f"  issued          {serial_hex(record.serial)}  {record.profile:<10}  "
            f"{label} ({record.ca})"
        )

    service.revoke(
        "demo-issuing",
        issued["api.example.com"].serial,
        RevocationReason.keyCompromise,
        actor=actor,
    )
    echo(f"  revoked         {serial_hex(issued['api.example.com'].serial)}  keyCompromise")
    service.revoke(
        "demo-clients", issued["alice"].serial, RevocationReason.certificateHold, actor=actor
    )
    echo(f"  on hold         {serial_hex(issued['alice'].serial)}  certificateHold")

    from ca.crl import issue_crl

    delta_url = config.delta_crl_url("demo-issuing")
    full_crl = issue_crl(service, "demo-issuing", delta_url=delta_url, actor=actor)
    clients_crl = issue_crl(
        service, "demo-clients", delta_url=config.delta_crl_url("demo-clients"), actor=actor
    )
    # A change after the full CRL, so the delta has something to say.
    service.revoke("demo-issuing", issued["bob"].serial, RevocationReason.superseded, actor=actor)
    delta_crl = issue_crl(service, "demo-issuing", delta=True, actor=actor)
    echo(
        f"  CRLs            full #{full_crl.number} ({_entries(full_crl)}), "
        f"delta #{delta_crl.number} ({_entries(delta_crl)}: bob, superseded); "
        f"demo-clients #{clients_crl.number} ({_entries(clients_crl)}: alice, on hold)"
    )

    files = {
        "root.pem": _pem(root.certificate),
        "issuing.pem": _pem(issuing.certificate),
        "chain.pem": _pem(issuing.certificate) + _pem(root.certificate),
        "ocsp-signer.pem": _pem(signer.certificate),
        "www.pem": _pem(issued["www.example.com"].certificate),
        "api.pem": _pem(issued["api.example.com"].certificate),
        "issuing.crl": full_crl.der,
        "issuing-delta.crl": delta_crl.der,
        "clients.pem": _pem(clients.certificate),
        "clients-chain.pem": _pem(clients.certificate) + _pem(root.certificate),
        "clients-ocsp-signer.pem": _pem(clients_signer.certificate),
        "alice.pem": _pem(issued["alice"].certificate),
        "clients.crl": clients_crl.der,
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    bob_p12 = service.export(
        "demo-issuing",
        issued["bob"].serial,
        "p12",
        export_passphrase=passphrase_file.read_bytes(),
        actor=actor,
    )
    write_secret_file(directory / "bob.p12", bob_p12)

    from revoca.cli_va import va_settings
    from revoca.va_import import import_from_ca
    from va.app import open_store
    from va.issuers import load_issuers
    from va.presign import presign_all

    settings = va_settings(config, port=port)
    store = open_store(settings)
    import_from_ca(
        service,
        store,
        settings.key_dir,
        policy=settings.policy,
        publisher=config.publisher,
        ca_names=["demo-issuing", "demo-clients"],
    )
    entries = load_issuers(store, settings.key_dir, config.passphrase.get())
    signed = presign_all(store, entries, settings.algorithm_codes, now=int(time.time()))
    store.close()
    echo(f"  VA loaded       {settings.directory} ({signed} pre-signed responses)")

    echo("")
    echo("Files:")
    for name in [*files, "bob.p12 (passphrase: the key-passphrase file)"]:
        echo(f"  {directory / name}")
    echo("")
    echo("Try:")
    echo(
        f"  openssl verify -CAfile {directory}/root.pem -untrusted {directory}/issuing.pem "
        f"{directory}/www.pem"
    )
    echo(f"  revoca --data-dir {directory} ca certs")
    echo(
        f"  REVOCA_KEY_PASSPHRASE=$(cat {passphrase_file}) revoca --data-dir {directory} "
        f"ca revoke --ca demo-issuing --serial {serial_hex(issued['www.example.com'].serial)} "
        "--reason superseded"
    )
    echo(
        f"  REVOCA_KEY_PASSPHRASE=$(cat {passphrase_file}) revoca --data-dir {directory} "
        "audit verify   # the audit key, beside the CA keys, opens with it"
    )
    echo(
        f"  openssl crl -inform DER -in {directory}/issuing.crl -CAfile {directory}/issuing.pem "
        "-noout -text"
    )
    url = f"http://127.0.0.1:{settings.port}/ocsp"
    d = directory
    echo("")
    echo("OCSP, while the VA runs:")
    for issuer, leaf, chain in (
        ("issuing", "www", "chain"),
        ("issuing", "api", "chain"),
        ("clients", "alice", "clients-chain"),
    ):
        echo(
            f"  openssl ocsp -issuer {d}/{issuer}.pem -cert {d}/{leaf}.pem -url {url} "
            f"-CAfile {d}/{chain}.pem"
        )
    echo(f"  curl -s http://127.0.0.1:{settings.port}/metrics")
    out.update(
        root=root,
        issuing=issuing,
        clients=clients,
        signer=signer,
        issued=issued,
        config=config,
        va=settings,
    )
    if serve_seconds == 0:
        echo("")
        echo("Start the VA on this directory (the demo did not serve: --serve-seconds 0):")
        echo(
            f"  REVOCA_KEY_PASSPHRASE=$(cat {passphrase_file}) revoca --data-dir {directory} "
            f"va serve --port {settings.port} --admin-port 0"
        )
        echo(
            "ACME (revoca acme serve, or revoca serve) issues to the entity 'servers'; "
            f"EAB key id {acme_eab[0]}, MAC key {acme_eab[1]}"
        )
        echo(
            "EST and SCEP (revoca enroll serve, or revoca serve) enroll the entity "
            f"'device-1' with the one-time secret {device_secret}"
        )

    else:
        from va.app import run

        limit = "until Ctrl-C" if serve_seconds is None else f"for {serve_seconds:g} s"
        echo(f"\nServing the VA on http://127.0.0.1:{settings.port}/ {limit}.")
        from common import listen
        from publisher.targets import LocalTarget
        from revoca.cli_acme import serve_acme
        from revoca.cli_enroll import bind_enroll, serve_enroll
        from revoca.cli_publisher import build_publisher

        # Bound now, so that a busy port stops the demo at once, naming it.
        acme_sock = listen.bind_listener("127.0.0.1", acme_port, 64, what=" (ACME)")
        enroll_socks = bind_enroll(config)
        est_at = enroll_socks[0].getsockname()[1]
        scep_at = enroll_socks[1].getsockname()[1]
        acme_url = f"http://127.0.0.1:{acme_sock.getsockname()[1]}/acme/demo-issuing/directory"

        async def publish_locally(serving, wake):
            # The all-in-one node: CA changes flow into this VA's LMDB directly,
            # the CRL updater keeps its CRLs current ([crl] schedule), and the
            # ACME server issues through the RA.
            import asyncio

            from revoca import schedules

            target = LocalTarget(
                "local", store=serving.store, on_applied=serving.worker.after_write(wake)
            )
            await asyncio.gather(
                build_publisher(config, targets=[target]).run(),
                schedules.crl_updater(service, config),
                serve_acme(acme_config, "127.0.0.1", acme_port, None, sock=acme_sock),
                _certbot_once(directory, acme_url, acme_eab, http01_port, settings.port, echo),
                serve_enroll(config, est=True, scep=True, socks=enroll_socks),
            )

        echo(f"EST and SCEP for the entity 'device-1', one-time secret {device_secret}:")
        echo(
            "  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
            f"-keyout {d}/device.key -subj /CN=device-1 -outform DER | base64 | "
            f"curl -s --cacert {d}/root.pem -u device-1:{device_secret} "
            "-H 'Content-Type: application/pkcs10' --data-binary @- "
            f"https://127.0.0.1:{est_at}/.well-known/est/simpleenroll | base64 -d | "
            "openssl pkcs7 -inform DER -print_certs"
        )
        echo(
            f"  scepclient -server-url http://127.0.0.1:{scep_at}/scep -challenge "
            f"{device_secret} -private-key {d}/scep.key -cn device-1   "
            "# needs [enroll] scep_legacy = true: scepclient signs with SHA-1"
        )
        echo("A co-located publisher carries every CA change to it within a second.")
        run(
            replace(settings, admin=replace(settings.admin, port=0)),
            config.passphrase.get(),
            stop_after=serve_seconds,
            companion=publish_locally,
        )
    return out


def _acme_setup(service, config, actor: str, http01_port: int):
    """An end entity for servers that enroll themselves over ACME, one
    directory for demo-issuing (EAB required), and an EAB key for it."""
    from dataclasses import replace

    from acmesrv.service import AcmeService
    from acmesrv.settings import Directory
    from ra.service import RAService

    ra = RAService(service)
    ra.create_entity(
        "servers",
        email="ops@example.com",
        ca="demo-issuing",
        profile="tls-server",
        subject_template="CN={identifier}",
        allowed_sans=["ip:127.0.0.1", "dns:*.demo.example"],
        actor=actor,
    )
    directory = Directory("demo-issuing", "demo-issuing", ("tls-server",))
    settings = replace(config.acme, http_port=http01_port, caa="off", directories=(directory,))
    acme = AcmeService(
        ra, settings, {directory.name: directory}, "", passphrase=config.passphrase.get()
    )
    eab = acme.create_eab_key("servers", directory=directory.name, actor=actor)
    return replace(config, acme=settings), eab


def _enroll_setup(service, actor: str) -> str:
    """The end entity a device enrolls as over EST or SCEP, and a one-time
    secret for it."""
    from ra.service import RAService

    ra = RAService(service)
    ra.create_entity(
        "device-1",
        email="devices@example.com",
        ca="demo-clients",
        profile="tls-client",
        subject_template="CN={name},O=Revoca Demo",
        allowed_sans=["dns:*.devices.demo.example"],
        actor=actor,
    )
    return ra.create_secret("device-1", actor=actor)["secret"]


def certbot_command(directory: Path, url: str, eab, http01_port: int, certbot="certbot") -> list:
    d = directory / "certbot"
    return [
        certbot,
        "certonly",
        "--non-interactive",
        "--agree-tos",
        "--register-unsafely-without-email",
        "--server",
        url,
        "--eab-kid",
        eab[0],
        # One argument: a MAC key may begin with '-' (base64url).
        f"--eab-hmac-key={eab[1]}",
        "--standalone",
        "--http-01-address",
        "127.0.0.1",
        "--http-01-port",
        str(http01_port),
        "--ip-address",
        "127.0.0.1",
        "--config-dir",
        str(d / "config"),
        "--work-dir",
        str(d / "work"),
        "--logs-dir",
        str(d / "logs"),
    ]


async def _certbot_once(directory: Path, url: str, eab, http01_port: int, va_port: int, echo):
    """One certificate from certbot over ACME, if certbot is installed
    ($REVOCA_CERTBOT or on $PATH); otherwise the command to run."""
    import asyncio
    import os
    import shlex

    certbot = os.environ.get("REVOCA_CERTBOT") or shutil.which("certbot")
    command = certbot_command(directory, url, eab, http01_port, certbot or "certbot")
    if certbot is None:
        echo("ACME: with certbot installed (certbot 5 or later), while this runs:")
        echo("  " + shlex.join(command))
        return
    await asyncio.sleep(0.5)  # the ACME listener starts beside this
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(120):
            output, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        echo("ACME: certbot did not finish within 120 s")
        return
    live = directory / "certbot" / "config" / "live"
    found = sorted(live.glob("*/cert.pem")) if live.exists() else []
    if proc.returncode != 0 or not found:
        echo(f"ACME: certbot failed (exit {proc.returncode}):")
        echo("  " + output.decode(errors="replace").strip().replace("\n", "\n  ")[-2000:])
        return
    cert = x509.load_pem_x509_certificate(found[0].read_bytes())
    echo(f"ACME: certbot got {found[0]} (serial {serial_hex(cert.serial_number)}); its status:")
    echo(
        f"  openssl ocsp -issuer {directory}/issuing.pem -cert {found[0]} "
        f"-url http://127.0.0.1:{va_port}/ocsp -CAfile {directory}/chain.pem"
    )


def _entries(crl) -> str:
    from revoca.output import plural

    return plural(crl.entries, "entry", "entries")
