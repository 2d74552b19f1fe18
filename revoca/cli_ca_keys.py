"""``revoca ca`` (continued): the keys themselves: rewriting key files in
the current encryption format, and the blocklist of compromised keys
(ca/blocklist.py, its file format ca/blocklist_file.py). The commands join
the ``ca`` group."""

import inspect
import sys

import click

from ca.errors import KeyCompromisedError
from revoca.cli_ca import _service, ca
from revoca.cli_util import (
    EXIT_CODES,
    actor,
    config_of,
    echo_json,
    examples,
    handle_errors,
    read_input,
)
from revoca.output import Column, emit_rows, output_options, plural

REKEY_COLUMNS = [Column("action"), Column("was", "WAS ENCRYPTED AS"), Column("where", "FILE")]


@ca.command("rekey-files", epilog=examples("revoca ca rekey-files", "revoca ca rekey-files --json"))
@output_options(csv=True, json_help="A JSON summary on stdout: the counts and every key.")
@click.pass_context
@handle_errors
def rekey_files(ctx):
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
    keys = [item.summary() for item in items]
    emit_rows(keys, REKEY_COLUMNS, data={**counts, "keys": keys})
    click.echo(
        f"{counts['rewritten']} rewritten, {counts['current']} already current"
        + (f", {counts['changed']} changed meanwhile (run again)" if counts["changed"] else ""),
        err=True,
    )


# -- the blocklist of compromised keys -----------------------------------------------------

FORMATS_HELP = """
\b
FILE ('-' for stdin) is ASCII text holding, in any mix:
  PEM blocks: PUBLIC KEY, RSA PUBLIC KEY, CERTIFICATE, CERTIFICATE REQUEST
    (a certificate or request stands for its public key);
  lines of 64 hex digits (or 32 colon-separated pairs): the SHA-256 of a
    DER SubjectPublicKeyInfo, EC points uncompressed;
  blank lines, and comments from # to the end of the line.
A line that is none of these is an error naming its line number.
"""


@ca.group(
    "blocklist",
    epilog=examples(
        'revoca ca blocklist import leaked.pem --note "key posted publicly"',
        "revoca ca blocklist list",
        "revoca ca blocklist check request.pem",
    ),
)
def blocklist():
    """Compromised keys: no certificate is issued for a key on this list.

    CA/B Forum BR 6.1.1.3: a revocation for keyCompromise (or cACompromise of
    a CA certificate) adds the certificate's key; keys learnt of elsewhere are
    imported. Every issuance refuses a listed key (exit 4, code key_compromised).
    """


def _entries(path: str):
    from ca.blocklist_file import parse_blocklist_file

    return parse_blocklist_file(read_input(path, "blocklist file"))


@blocklist.command("import")
@click.argument("file")
@click.option("--note", required=True, help="Where these keys come from (kept with each one).")
@click.option("--json", "as_json", is_flag=True, help="A JSON summary on stdout.")
@click.pass_context
@handle_errors
def blocklist_import(ctx, file, note, as_json):
    """List the keys in FILE as compromised, all or none.

    \b
    Examples:
      revoca ca blocklist import leaked.pem --note "key posted publicly, ticket 4711"
      openssl x509 -in cert.pem -noout -pubkey \\
        | openssl pkey -pubin -outform DER | sha256sum | cut -c1-64 >> hashes.txt
      revoca ca blocklist import hashes.txt --note "vendor advisory 2026-12"
    """
    entries = _entries(file)
    added, already = _service(ctx).import_blocked_keys(
        [e.spki_sha256 for e in entries], note, actor=actor()
    )
    if as_json:
        echo_json({"keys": len(entries), "added": added, "already_listed": already})
        return
    click.echo(f"{plural(added, 'key')} added to the blocklist, {already} already on it")


blocklist_import.help = inspect.cleandoc(blocklist_import.help) + FORMATS_HELP


BLOCKED_COLUMNS = [
    Column("spki_sha256", "SPKI SHA-256"),
    Column("added_at"),
    Column("actor"),
    Column("why", shrink=True),
]


@blocklist.command(
    "list",
    epilog=examples(
        "revoca ca blocklist list",
        "revoca ca blocklist list --after 9f86d0... --limit 100",
        "revoca ca blocklist list --csv > blocklist.csv",
    ),
)
@click.option(
    "--limit",
    default=1000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="At most this many keys.",
)
@click.option("--after", help="Continue after this hash (the last line's).")
@output_options(csv=True)
@click.pass_context
@handle_errors
def blocklist_list(ctx, limit, after):
    """The listed keys, by hash: when and why each was added."""
    records = _service(ctx).list_blocked_keys(limit=limit, after=after)
    emit_rows([{**r.summary(), "why": r.why()} for r in records], BLOCKED_COLUMNS)


CHECK_COLUMNS = [
    Column("line", align=">"),
    Column("kind"),
    Column("spki_sha256", "SPKI SHA-256"),
    Column("state", "LISTED", shrink=True),
]


@blocklist.command("check")
@click.argument("file")
@output_options(csv=True)
@click.pass_context
@handle_errors
def blocklist_check(ctx, file):
    """Whether the keys in FILE are listed; exit 4 if any is.

    \b
    Example:
      revoca ca blocklist check request.pem && revoca ca issue --csr request.pem ...
    """
    entries = _entries(file)
    found = _service(ctx).blocked_keys(e.spki_sha256 for e in entries)
    checked = [
        {
            "line": e.line,
            "kind": e.kind,
            "spki_sha256": e.spki_sha256,
            "listed": e.spki_sha256 in found,
            "entry": found[e.spki_sha256].summary() if e.spki_sha256 in found else None,
        }
        for e in entries
    ]
    rows = [
        {
            "line": e.line,
            "kind": e.kind,
            "spki_sha256": e.spki_sha256,
            "state": f"listed ({found[e.spki_sha256].why()})"
            if e.spki_sha256 in found
            else "not listed",
        }
        for e in entries
    ]
    emit_rows(rows, CHECK_COLUMNS, data=checked)
    if found:
        sys.exit(EXIT_CODES[KeyCompromisedError.code])


blocklist_check.help = inspect.cleandoc(blocklist_check.help) + FORMATS_HELP
