"""``revoca ca`` (continued): the keys themselves: rewriting key files in
the current encryption format, and the blocklist of compromised keys. The
commands join the ``ca`` group."""

import click

from revoca.cli_ca import _service, ca
from revoca.cli_util import actor, config_of, echo_json, handle_errors


@ca.command("rekey-files")
@click.option("--json", "as_json", is_flag=True, help="A JSON summary on stdout.")
@click.pass_context
@handle_errors
def rekey_files(ctx, as_json):
    """Encrypt every key again in the current format: PKCS#8 PBES2 with
    scrypt (N=2^14, r=8, p=5) and AES-256-CBC.

    Covers the key directory (CA and OCSP signer keys), the VA's key
    directory if it is on this node, and the keys made here that the store
    keeps for PKCS#12 export. Keys in the older format (PBKDF2, 2048
    iterations) are rewritten, each file atomically with mode 0600; keys
    already current are left alone, so running it again changes nothing.
    Every key is decrypted first: with a wrong passphrase (exit 6) or a
    damaged file (exit 5) nothing is written. Progress goes to stderr.
    """
    from ca.rekey import rekey

    config = config_of(ctx)
    service = _service(ctx)
    directories = [config.key_dir]
    if config.va.key_dir != config.key_dir:
        directories.append(config.va.key_dir)

    def progress(done: int, total: int, where: str) -> None:
        click.echo(f"[{done}/{total}] {where}", err=True)

    items = rekey(
        service.store,
        service.audit,
        directories,
        config.passphrase.get(),
        actor=actor(),
        progress=progress,
    )
    counts = {
        action: sum(i.action == action for i in items)
        for action in ("rewritten", "current", "changed")
    }
    if as_json:
        echo_json({**counts, "keys": [item.summary() for item in items]})
        return
    for item in items:
        note = f" (was {item.was})" if item.action != "current" else ""
        click.echo(f"{item.action:<9} {item.where}{note}")
    click.echo(
        f"{counts['rewritten']} rewritten, {counts['current']} already current"
        + (f", {counts['changed']} changed meanwhile (run again)" if counts["changed"] else ""),
        err=True,
    )
