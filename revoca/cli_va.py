"""``revoca va``: load, pre-sign and serve the validation authority."""

import os
import time
from pathlib import Path

import click

from ca.errors import BadInputError, CAError, NotFoundError
from revoca.cli_util import ConfiguredGroup, config_of, examples, handle_errors
from revoca.output import emit_object, output_options, plural
from store.errors import NoStoreError


def va_settings(config, *, host=None, port=None, workers=None, admin_port=None):
    """The configuration's VA settings with the command line's overrides."""
    from dataclasses import replace

    settings = config.va
    changes = {
        name: value
        for name, value in (("host", host), ("port", port), ("workers", workers))
        if value is not None
    }
    if admin_port is not None:
        changes["admin"] = replace(settings.admin, port=admin_port)
    return replace(settings, **changes) if changes else settings


class NoVAStoreError(NoStoreError):
    """No VA store (LMDB) where the configuration points."""

    code = "no_va_store"


def existing_store(settings):
    """The VA's LMDB, which only `va import` and `va import-index` make: a
    missing one is NoStoreError (exit 3), and nothing is created."""
    from va.app import open_store

    if not (settings.lmdb_dir / "data.mdb").is_file():
        raise NoVAStoreError(
            f"no Revoca store at {settings.lmdb_dir} (the VA's LMDB): load it with "
            "`revoca va import` (or `revoca va import-index`)"
        )
    return open_store(settings)


def _passphrase(config) -> bytes:
    return config.passphrase.get()


@click.group(
    cls=ConfiguredGroup,
    epilog=examples("revoca va import && revoca va presign && revoca va serve", "revoca va status"),
)
def va():
    """Validation authority: OCSP responder and CRL/CA certificate server."""


@va.command(
    "import",
    epilog=examples("revoca va import", "revoca va import --ca issuing --ca clients"),
)
@click.option("--ca", "ca_names", multiple=True, help="Only these CAs (default: all).")
@click.option(
    "--sign-with-ca-key",
    is_flag=True,
    help="Let a CA without a delegated OCSP signer sign with its own key (copies that key).",
)
@click.pass_context
@handle_errors
def import_(ctx, ca_names, sign_with_ca_key):
    """Load issuers, responder keys and every certificate status from the CA store."""
    from revoca.app import build_ca_service
    from revoca.va_import import import_from_ca
    from va.app import open_store

    config = config_of(ctx)
    settings = va_settings(config)
    service = build_ca_service(config)
    store = open_store(settings)
    try:
        counts = import_from_ca(
            service,
            store,
            settings.key_dir,
            policy=settings.policy,
            publisher=config.publisher,
            ca_names=list(ca_names) or None,
            sign_with_ca_key=sign_with_ca_key,
        )
    finally:
        store.close()
    for name, count in counts.items():
        if count < 0:
            click.echo(f"{name}: skipped, no OCSP signer (`revoca ca ocsp-signer --ca {name}`)")
        else:
            click.echo(f"{name}: {plural(count, 'certificate status', 'certificate statuses')}")


@va.command(
    "import-index",
    epilog=examples(
        "revoca va import-index --name legacy --issuer ca.pem --index index.txt \\",
        "    --responder-cert ocsp.pem --responder-key ocsp.key",
    ),
)
@click.option("--name", required=True, help="Name for this issuer (used in /ca/NAME.crt).")
@click.option("--issuer", "issuer_path", required=True, help="The CA certificate (PEM or DER).")
@click.option("--index", "index_path", required=True, help="OpenSSL CA database (index.txt).")
@click.option("--responder-cert", required=True, help="OCSP signer certificate (or the CA's).")
@click.option(
    "--responder-key",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Its private key (PEM); stored re-encrypted with the VA passphrase, mode 0600.",
)
@click.option(
    "--key-passphrase-env",
    default="REVOCA_IMPORT_PASSPHRASE",
    show_default=True,
    help="Environment variable holding the responder key's passphrase, if any.",
)
@click.option(
    "--key-passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the responder key's passphrase from this file.",
)
@click.pass_context
@handle_errors
def import_index(
    ctx,
    name,
    issuer_path,
    index_path,
    responder_cert,
    responder_key,
    key_passphrase_env,
    key_passphrase_file,
):
    """Load an existing `openssl ocsp -index` setup: issuer, responder, statuses."""
    from ca.errors import KeyAccessError
    from ca.keys import PassphraseSource
    from ca.service import load_certificate
    from revoca.cli_util import read_input
    from va.app import open_store
    from va.openssl_index import IndexError_
    from va.openssl_index import import_index as load

    config = config_of(ctx)
    settings = va_settings(config)
    try:
        passphrase = PassphraseSource(env=key_passphrase_env, file=key_passphrase_file).get()
    except KeyAccessError:
        passphrase = None
    issuer = load_certificate(read_input(issuer_path, "issuer certificate"), "--issuer")
    responder = load_certificate(
        read_input(responder_cert, "responder certificate"), "--responder-cert"
    )
    text = read_input(index_path, "index").decode("utf-8", errors="strict")
    store = open_store(settings)
    try:
        with click.progressbar(
            length=text.count("\n"), label="importing", file=click.get_text_stream("stderr")
        ) as bar:
            count = load(
                store,
                settings.key_dir,
                name=name,
                issuer=issuer,
                responder=responder,
                responder_key=responder_key,
                key_passphrase=passphrase,
                va_passphrase=_passphrase(config),
                index_text=text,
                policy=settings.policy,
                progress=bar.update,
            )
    except IndexError_ as exc:
        raise BadInputError(str(exc)) from None
    finally:
        store.close()
    statuses = plural(count, "certificate status", "certificate statuses")
    click.echo(f"{name}: {statuses} from {index_path}")


@va.command("presign", epilog=examples("revoca va presign", "revoca va presign --stale-only"))
@click.option("--stale-only", is_flag=True, help="Only responses past half their validity.")
@click.pass_context
@handle_errors
def presign(ctx, stale_only):
    """Sign a response for every known serial (SHA-1 and SHA-256 CertIDs)."""
    from va.presign import presign_all

    config = config_of(ctx)
    settings = va_settings(config)
    store = existing_store(settings)
    try:
        entries = _load(store, settings, config)
        total = store.count_status() * len(settings.presign_algorithms)
        with click.progressbar(
            length=total, label="pre-signing", file=click.get_text_stream("stderr")
        ) as bar:
            signed = presign_all(
                store,
                entries,
                settings.algorithm_codes,
                now=int(time.time()),
                only_stale=stale_only,
                progress=bar.update,
                workers=settings.presign_workers or os.cpu_count() or 1,
            )

    finally:
        store.close()
    click.echo(f"signed {plural(signed, 'response')}")


def _load(store, settings, config):
    from va.issuers import load_issuers

    return load_issuers(store, settings.key_dir, _passphrase(config))


@va.command(
    "admin-token", epilog=examples("revoca va admin-token", "revoca va admin-token --rotate")
)
@click.option("--rotate", is_flag=True, help="Replace an existing token.")
@click.pass_context
@handle_errors
def admin_token(ctx, rotate):
    """Create the admin listener's bearer token file (0600). Publishers read
    the same file (copy it to remote publishers); the token is never printed."""
    import secrets

    from common.privatedir import make_private_dir
    from va.admin import write_token

    path = config_of(ctx).va.admin.token_file
    if path.exists() and not rotate:
        click.echo(f"{path} exists (use --rotate to replace it)")
        return
    make_private_dir(path.parent)  # the VA's directory, when this is its first file
    write_token(path, secrets.token_urlsafe(32))
    click.echo(f"wrote {path}")


@va.command(
    "serve",
    epilog=examples(
        "revoca va serve",
        "revoca va serve --host 0.0.0.0 --port 80 --workers 4 --admin-port 0",
    ),
)
@click.option("--host", help="Listen address (default from the configuration).")
@click.option("--port", type=click.IntRange(0, 65535), help="Listen port.")
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    help="Worker processes sharing the port (one per core).",
)
@click.option(
    "--admin-port",
    type=click.IntRange(0, 65535),
    help="Admin (publish) listener port; 0 turns it off.",
)
@click.pass_context
@handle_errors
def serve(ctx, host, port, workers, admin_port):
    """Serve OCSP, CA certificates, /healthz and /metrics."""
    from va.app import run

    config = config_of(ctx)
    settings = va_settings(config, host=host, port=port, workers=workers, admin_port=admin_port)
    from va.admin import TokenError

    store = existing_store(settings)
    try:
        served = {record["name"] for record in store.issuers().values()}
    finally:
        store.close()
    missing = _not_served(config, served)
    if not served:
        raise NotFoundError(
            "; ".join(missing)
            if missing
            else f"no issuers in {settings.lmdb_dir}, so nothing to answer for: load them "
            "with `revoca va import` on the CA node (or `revoca va import-index`)"
        )
    for line in missing:
        click.echo(f"warning: not served: {line}", err=True)
    try:
        run(settings, _passphrase(config), announce=lambda line: click.echo(line, err=True))
    except CAError:
        raise  # carries its code: a responder key 6, the LMDB store 8
    except (RuntimeError, ValueError, TokenError) as exc:
        raise CAError(str(exc)) from None


def _not_served(config, served: set[str]) -> list[str]:
    """What each CA of this node's CA store that the VA does not serve lacks
    (nothing on a VA-only node, which has no CA store, nor when that store
    cannot be read as it is)."""
    from revoca.app import build_ca_service
    from revoca.va_import import not_served
    from store import Store, StoreError

    # Only read: a CA store that is missing, unreachable or at another schema
    # revision (never migrated from here) leaves the VA serving without hints.
    try:
        probe = Store.attach(config.store_url, create=False)
        try:
            if probe.current_revision() != probe.head_revision():
                return []
        finally:
            probe.close()
        service = build_ca_service(config)
    except StoreError:
        return []
    try:
        return not_served(service, served)
    except StoreError:
        return []
    finally:
        service.store.close()


@va.command("status", epilog=examples("revoca va status", "revoca va status --json"))
@output_options()
@click.pass_context
@handle_errors
def status(ctx):
    """Issuers (by key hash) and record counts of the VA store."""
    settings = va_settings(config_of(ctx))
    store = existing_store(settings)
    try:
        emit_object(
            {
                "directory": str(settings.directory),
                "issuers": {str(k): v["name"] for k, v in store.issuers().items()},
                "statuses": store.count_status(),
                "map_size": store.env.info()["map_size"],
            }
        )
    finally:
        store.close()
