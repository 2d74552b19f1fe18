"""Search and reports: indexes for certificate search by serial, issuance
time, CA/profile/status and end entity; a trigram index over subjects and
SANs for substring search (SQLite: an FTS5 table kept by triggers;
PostgreSQL: pg_trgm GIN indexes); every DNS/IP SAN as a row of
certificate_names and the counts per CA/profile/status in
certificate_counts, both kept by triggers and filled from what exists.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_certificates_serial": ["serial"],
    "ix_certificates_issued_at": ["issued_at"],
    "ix_certificates_ca_id_profile_status": ["ca_id", "profile", "status"],
    "ix_certificates_status_not_after": ["status", "not_after"],
    "ix_certificates_end_entity_id_profile_status_not_after": [
        "end_entity_id",
        "profile",
        "status",
        "not_after",
    ],
}

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# One SAN "type:value" -> its lowercased value, for DNS and IP SANs.
_SQLITE_NAMES = (
    "SELECT {id}, lower(substr(value, instr(value, ':') + 1)) FROM json_each({sans}) "
    "WHERE value LIKE 'dns:%' OR value LIKE 'ip:%'"
)
_SQLITE_COUNT_UP = (
    "INSERT INTO certificate_counts (ca_id, profile, status, n) "
    "VALUES ({r}.ca_id, {r}.profile, {r}.status, 1) "
    "ON CONFLICT (ca_id, profile, status) DO UPDATE SET n = n + 1"
)
_SQLITE_COUNT_DOWN = (
    "UPDATE certificate_counts SET n = n - 1 WHERE ca_id = {r}.ca_id "
    "AND profile = {r}.profile AND status = {r}.status"
)
SQLITE_UP = [
    "INSERT INTO certificate_names (certificate_id, name) SELECT certificates.id, "
    "lower(substr(j.value, instr(j.value, ':') + 1)) "
    "FROM certificates, json_each(certificates.sans) j "
    "WHERE j.value LIKE 'dns:%' OR j.value LIKE 'ip:%'",
    "INSERT INTO certificate_counts (ca_id, profile, status, n) "
    "SELECT ca_id, profile, status, count(*) FROM certificates GROUP BY ca_id, profile, status",
    "CREATE TRIGGER certificate_names_insert AFTER INSERT ON certificates BEGIN "
    "INSERT INTO certificate_names (certificate_id, name) "
    + _SQLITE_NAMES.format(id="new.id", sans="new.sans")
    + "; "
    + _SQLITE_COUNT_UP.format(r="new")
    + "; END",
    "CREATE TRIGGER certificate_names_update AFTER UPDATE OF sans ON certificates BEGIN "
    "DELETE FROM certificate_names WHERE certificate_id = old.id; "
    "INSERT INTO certificate_names (certificate_id, name) "
    + _SQLITE_NAMES.format(id="new.id", sans="new.sans")
    + "; END",
    "CREATE TRIGGER certificate_counts_update AFTER UPDATE OF ca_id, profile, status "
    "ON certificates BEGIN "
    + _SQLITE_COUNT_DOWN.format(r="old")
    + "; "
    + _SQLITE_COUNT_UP.format(r="new")
    + "; END",
    "CREATE TRIGGER certificate_counts_delete AFTER DELETE ON certificates BEGIN "
    + _SQLITE_COUNT_DOWN.format(r="old")
    + "; END",
    "CREATE VIRTUAL TABLE certificates_fts USING fts5("
    "subject, sans, content='certificates', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER certificates_fts_insert AFTER INSERT ON certificates BEGIN "
    "INSERT INTO certificates_fts(rowid, subject, sans) VALUES (new.id, new.subject, new.sans); "
    "END",
    "CREATE TRIGGER certificates_fts_delete AFTER DELETE ON certificates BEGIN "
    "INSERT INTO certificates_fts(certificates_fts, rowid, subject, sans) "
    "VALUES ('delete', old.id, old.subject, old.sans); END",
    "CREATE TRIGGER certificates_fts_update AFTER UPDATE OF subject, sans ON certificates BEGIN "
    "INSERT INTO certificates_fts(certificates_fts, rowid, subject, sans) "
    "VALUES ('delete', old.id, old.subject, old.sans); "
    "INSERT INTO certificates_fts(rowid, subject, sans) VALUES (new.id, new.subject, new.sans); "
    "END",
    "INSERT INTO certificates_fts(certificates_fts) VALUES ('rebuild')",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS certificate_counts_delete",
    "DROP TRIGGER IF EXISTS certificate_counts_update",
    "DROP TRIGGER IF EXISTS certificate_names_update",
    "DROP TRIGGER IF EXISTS certificate_names_insert",
    "DROP TRIGGER IF EXISTS certificates_fts_update",
    "DROP TRIGGER IF EXISTS certificates_fts_delete",
    "DROP TRIGGER IF EXISTS certificates_fts_insert",
    "DROP TABLE IF EXISTS certificates_fts",
]
POSTGRES_UP = [
    "INSERT INTO certificate_names (certificate_id, name) SELECT c.id, "
    "lower(substr(v, strpos(v, ':') + 1)) FROM certificates c, "
    "json_array_elements_text(c.sans::json) AS v WHERE v LIKE 'dns:%' OR v LIKE 'ip:%'",
    "INSERT INTO certificate_counts (ca_id, profile, status, n) "
    "SELECT ca_id, profile, status, count(*) FROM certificates GROUP BY ca_id, profile, status",
    """CREATE FUNCTION revoca_certificates_search() RETURNS trigger AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    UPDATE certificate_counts SET n = n - 1
      WHERE ca_id = OLD.ca_id AND profile = OLD.profile AND status = OLD.status;
  END IF;
  IF TG_OP = 'UPDATE' AND NEW.sans IS DISTINCT FROM OLD.sans THEN
    DELETE FROM certificate_names WHERE certificate_id = OLD.id;
  END IF;
  IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.sans IS DISTINCT FROM OLD.sans) THEN
    INSERT INTO certificate_names (certificate_id, name)
      SELECT NEW.id, lower(substr(v, strpos(v, ':') + 1))
      FROM json_array_elements_text(NEW.sans::json) AS v
      WHERE v LIKE 'dns:%' OR v LIKE 'ip:%';
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    INSERT INTO certificate_counts (ca_id, profile, status, n)
      VALUES (NEW.ca_id, NEW.profile, NEW.status, 1)
      ON CONFLICT (ca_id, profile, status) DO UPDATE SET n = certificate_counts.n + 1;
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql""",
    "CREATE TRIGGER revoca_certificates_search AFTER INSERT OR UPDATE OR DELETE "
    "ON certificates FOR EACH ROW EXECUTE FUNCTION revoca_certificates_search()",
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX ix_certificates_subject_trgm ON certificates USING gin (subject gin_trgm_ops)",
    "CREATE INDEX ix_certificates_sans_trgm ON certificates USING gin (sans gin_trgm_ops)",
]
POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS revoca_certificates_search ON certificates",
    "DROP FUNCTION IF EXISTS revoca_certificates_search()",
    "DROP INDEX IF EXISTS ix_certificates_sans_trgm",
    "DROP INDEX IF EXISTS ix_certificates_subject_trgm",
]


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "certificates", columns)
    op.create_table(
        "certificate_names",
        sa.Column("certificate_id", Id, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name="fk_certificate_names_certificate_id_certificates",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_certificate_names_name", "certificate_names", ["name"])
    op.create_index("ix_certificate_names_certificate_id", "certificate_names", ["certificate_id"])
    op.create_table(
        "certificate_counts",
        sa.Column("ca_id", Id, nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["ca_id"], ["cas.id"], name="fk_certificate_counts_ca_id_cas"),
        sa.PrimaryKeyConstraint("ca_id", "profile", "status", name="pk_certificate_counts"),
    )
    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": SQLITE_UP, "postgresql": POSTGRES_UP}.get(dialect, []):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": SQLITE_DOWN, "postgresql": POSTGRES_DOWN}.get(dialect, []):
        op.execute(statement)
    op.drop_table("certificate_counts")
    op.drop_index("ix_certificate_names_certificate_id", "certificate_names")
    op.drop_index("ix_certificate_names_name", "certificate_names")
    op.drop_table("certificate_names")
    for name in INDEXES:
        op.drop_index(name, "certificates")
