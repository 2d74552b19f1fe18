"""What every table module shares: one MetaData (with the naming convention
the migrations use) and the id column type.

Times are integers: seconds since the epoch (UTC) for certificate fields,
milliseconds for event and audit timestamps. Serials are 40-digit zero-padded
lowercase hex, so text order is numeric order (CRLs stream in serial order).
"""

from sqlalchemy import BigInteger, Integer, MetaData

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets 64 bits.
Id = BigInteger().with_variant(Integer(), "sqlite")
