"""Helpers shared by the ``revoca`` command groups."""

import functools
import logging
import os
import pwd
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from ca.errors import BadInputError, CAError, ConfigError
from ca.fsutil import write_secret_file
from common.secretfile import SecretFileError, read_secret_file
from va.errors import PortInUseError

log = logging.getLogger("revoca.cli")


def now() -> int:
    """The time a command judges statuses at (epoch seconds): the command
    line is where the clock is read (docs/ARCHITECTURE.md)."""
    return int(time.time())


def actor() -> str:
    """Who the audit log names for a local command-line operation that acts
    as no RA operator (the CA's commands; the RA's only where no approvals
    are configured, and the RA's bootstrap): the Unix user."""
    try:
        return f"cli:{pwd.getpwuid(os.getuid()).pw_name}"
    except KeyError:
        return f"cli:uid{os.getuid()}"


OPERATOR_TOKEN_ENV = "REVOCA_OPERATOR_TOKEN"


def operator_token(path: Path | None) -> str | None:
    """An RA operator's API token: from ``path`` (a 0600 file) or the
    environment variable REVOCA_OPERATOR_TOKEN; None without either."""
    if path is not None:
        try:
            text = read_secret_file(path, "operator token file").decode().strip()
        except SecretFileError as exc:
            raise BadInputError(exc.message) from None
        except UnicodeDecodeError:
            raise BadInputError(f"the operator token file {path} is not text") from None
        if not text:
            raise BadInputError(f"the operator token file {path} is empty")
        return text
    value = os.environ.get(OPERATOR_TOKEN_ENV, "").strip()
    return value or None


# Exit codes by error code (README "Exit codes"): scripts tell a refusal from
# a missing object or a broken store. 9 is `revoca audit verify` finding a
# tampered record; anything not listed exits 1.
EXIT_CODES = {
    "config_error": 2,
    "not_found": 3,
    "policy_violation": 4,
    "key_compromised": 4,
    "bad_input": 5,
    "key_access": 6,
    "no_store": 3,
    "no_va_store": 3,
    "conflict": 7,
    "store_error": 8,
    "schema_outdated": 8,
    "unauthenticated": 10,
    "forbidden": 11,
    "smtp_error": 12,
}
AUDIT_TAMPERED = 9
# What to type next, for errors the command line can help with.
HINTS = {
    "schema_outdated": "run `revoca db upgrade` (or set [store] auto_migrate = true)",
    "no_store": "check --data-dir, $REVOCA_CONFIG and [store] url; a new node starts with "
    "`revoca ca init-root` (or `revoca ca import`, `revoca db upgrade`)",
}


def exit_code(exc: CAError) -> int:
    return EXIT_CODES.get(exc.code, 1)


def report(exc: CAError) -> None:
    """One line on stderr (and a hint line where there is one), then exit
    with the error's code."""
    click.echo(f"error: {exc.message}", err=True)
    if exc.code in HINTS:
        click.echo(f"hint: {HINTS[exc.code]}", err=True)
    sys.exit(exit_code(exc))


def handle_errors(func):
    """Turn errors into one line on stderr and a documented exit code;
    anything unexpected is logged with its traceback and exits 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except CAError as exc:
            report(exc)
        except PortInUseError as exc:  # a configuration problem: pick another port
            report(ConfigError(exc.strerror))
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception:
            log.exception("internal error")
            click.echo("error: internal error (details in the log)", err=True)
            sys.exit(1)

    return wrapper


class ConfiguredGroup(click.Group):
    """A command group whose commands need the configuration: it is loaded
    (and checked) when a command runs, not for --help."""

    def invoke(self, ctx):
        ensure_config(ctx)
        return super().invoke(ctx)


def ensure_config(ctx: click.Context) -> None:
    """Load (and check) the configuration once per command line."""
    from revoca.config import load_config

    root = ctx.find_root().obj
    if "config" not in root:
        try:
            root["config"] = load_config(root["config_path"], data_dir=root["data_dir"])
        except CAError as exc:
            report(exc)


def config_of(ctx: click.Context):
    return ctx.find_root().obj["config"]


def read_input(path: str, what: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        return Path(path).read_bytes()
    except OSError as exc:
        raise BadInputError(f"cannot read {what} {path}: {exc.strerror}") from None


def write_output(out: str | None, data: bytes, *, secret: bool = False) -> None:
    """Write to ``out`` (stdout for None or '-'); secrets go to 0600 files only."""
    if out is None or out == "-":
        if secret:
            raise BadInputError("a file holding a private key needs --out FILE")
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    elif secret:
        write_secret_file(Path(out), data, overwrite=True)
    else:
        try:
            Path(out).write_bytes(data)
        except OSError as exc:
            raise BadInputError(f"cannot write {out}: {exc.strerror}") from None


def parse_time(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadInputError(f"{what} {value!r} is not an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def echo_json(data) -> None:
    """JSON on stdout, times in ISO 8601 (revoca/output.py)."""
    from revoca.output import to_json, with_iso_times

    click.echo(to_json(with_iso_times(data)))


def examples(*lines: str) -> str:
    """A command's epilog: example command lines, which --help shows as
    written (the \\b keeps click from joining them)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)
