"""Opening the store, migrating it, and running transactions."""

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError

from store.errors import ConflictError, NoStoreError, SchemaError, StoreError

MIGRATIONS = Path(__file__).with_name("migrations")
_AFTER_COMMIT = "revoca_after_commit"  # conn.info key: what runs once the transaction commits


def _alembic_config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _sqlite_setup(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and then upgrades
    # read locks to write locks, which can fail under concurrency. Take the
    # write lock up front (BEGIN IMMEDIATE) and wait for it (busy_timeout).
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA busy_timeout = 10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection):
        # Writers take the lock at BEGIN; readers (the publisher's polling,
        # lookups) begin deferred and never block a writer.
        if connection.get_execution_options().get("revoca_write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


class Store:
    """A SQL database holding CAs, certificates, the outbox and the audit log."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, auto_migrate: bool = True, create: bool = True) -> "Store":
        """The store at ``url``, its schema migrated when ``auto_migrate``
        (else refused unless current). ``create=False`` (every command but
        the few that make a store): see ``attach``."""
        store = cls.attach(url, create=create)
        current = store.current_revision()
        if auto_migrate and current != store.head_revision():
            store.upgrade()
        elif current != store.head_revision():
            where = f"is at revision {current}" if current else "has no schema yet"
            raise SchemaError(
                f"the store {where}, this version needs revision {store.head_revision()} "
                "(schema migrations are not applied automatically); nothing was changed"
            )
        return store

    @classmethod
    def attach(cls, url: str, *, create: bool = True) -> "Store":
        """The store at ``url`` as it is, schema not checked. ``create=False``:
        a missing SQLite file, or a database without Revoca's tables (no
        schema revision), raises NoStoreError and nothing is created (no
        file, no directory, no table)."""
        sqlite_path = _sqlite_file(url)
        if sqlite_path is not None and not sqlite_path.exists():
            if not create:
                raise NoStoreError(f"no Revoca store at {sqlite_path}")
            # The store holds encrypted end-entity keys: 0600, like every
            # secret file (SQLite gives its -wal/-shm files the same mode).
            try:
                sqlite_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.close(os.open(sqlite_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except OSError as exc:
                raise StoreError(f"cannot create store {sqlite_path}: {exc.strerror}") from exc
        try:
            engine = create_engine(url)
        except Exception as exc:
            raise StoreError(f"cannot open store {shown_url(url)!r}: {exc}") from exc
        if engine.dialect.name == "sqlite":
            _sqlite_setup(engine)
        store = cls(engine)
        try:
            current = store.current_revision()
        except DBAPIError as exc:
            engine.dispose()
            raise StoreError(f"cannot open store {shown_url(url)!r}: {_reason(exc)}") from exc
        if current is None and not create:
            engine.dispose()
            where = sqlite_path if sqlite_path is not None else shown_url(url)
            raise NoStoreError(f"no Revoca store at {where}: the database has no Revoca tables")
        return store

    def head_revision(self) -> str:
        return ScriptDirectory(str(MIGRATIONS)).get_current_head()

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def upgrade(self, revision: str = "head") -> None:
        with self.transaction() as conn:
            command.upgrade(_alembic_config(conn), revision)

    def downgrade(self, revision: str) -> None:
        """Roll the schema back to ``revision`` ("base": drop everything)."""
        with self.transaction() as conn:
            command.downgrade(_alembic_config(conn), revision)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back on any error.

        Database failures become StoreError (or ConflictError for a unique
        constraint), so callers see a clear message and know nothing changed.
        What the block hands to ``after_commit`` runs once the commit is done.
        """
        hooks: dict[object, Callable[[], None]] = {}
        try:
            with self.engine.connect() as conn:
                conn.execution_options(revoca_write=True)
                # conn.info belongs to the pooled DBAPI connection: set for
                # this transaction only.
                conn.info[_AFTER_COMMIT] = hooks
                try:
                    with conn.begin():
                        yield conn
                finally:
                    conn.info.pop(_AFTER_COMMIT, None)
        except IntegrityError as exc:
            raise ConflictError(f"the change clashes with existing data: {exc.orig}") from exc
        except DBAPIError as exc:
            raise StoreError(f"the store failed, nothing was changed: {_reason(exc)}") from exc
        for hook in hooks.values():
            hook()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction: a consistent snapshot that takes no write lock."""
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except DBAPIError as exc:
            raise StoreError(f"the store failed: {_reason(exc)}") from exc

    def close(self) -> None:
        self.engine.dispose()


def after_commit(conn: Connection, hook: Callable[[], None], name: object = None) -> bool:
    """Run ``hook`` after the ``Store.transaction`` that ``conn`` is in
    commits (never if it rolls back); a later hook of the same ``name``
    replaces an earlier one (only the newest checkpoint matters). False, and
    nothing done, for a connection that is not in one."""
    hooks = conn.info.get(_AFTER_COMMIT)
    if hooks is None:
        return False
    if name is None:
        name = object()
    hooks.pop(name, None)  # a replacement runs in the order of its latest addition
    hooks[name] = hook
    return True


def _sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (None: not SQLite, or an in-memory database)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def shown_url(url: str) -> str:
    """``url`` as it may be printed: any password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unparsable store URL)"


def _reason(exc: DBAPIError) -> str:
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError) and "full" in str(orig):
        return "the disk holding the database is full"
    return str(orig).strip() or type(orig).__name__
