"""The tables. Natural keys everywhere, so that replaying a block is an upsert, never a duplicate."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Integer, MetaData, String, Table, func

metadata = MetaData(
    naming_convention={"pk": "pk_%(table_name)s", "ix": "ix_%(table_name)s_%(column_0_name)s",
                       "uq": "uq_%(table_name)s_%(column_0_name)s"}
)

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(200), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The last processed block of each chain. Written in the same transaction as what that block produced.
checkpoints = Table(
    "checkpoints",
    metadata,
    Column("chain_id", BigInteger, primary_key=True, autoincrement=False),
    Column("number", BigInteger, nullable=False),
    Column("hash", String(66), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Recently processed canonical blocks, kept to max_reorg_depth per chain: a reorg walks back through them.
blocks = Table(
    "blocks",
    metadata,
    Column("chain_id", BigInteger, primary_key=True, autoincrement=False),
    Column("number", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(66), nullable=False),
    Column("parent_hash", String(66), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
)


# Every contract seen deployed: where, by whom, and what its code is (its class links it to its family).
deployments = Table(
    "deployments",
    metadata,
    Column("chain_id", BigInteger, primary_key=True, autoincrement=False),
    Column("address", String(42), primary_key=True),
    Column("block_number", BigInteger, nullable=False, index=True),
    Column("tx_hash", String(66), nullable=False),
    Column("creator", String(42), nullable=False),
    Column("deployer", String(42), nullable=False),
    Column("internal", Boolean, nullable=False),
    Column("code_hash", String(66), nullable=False),
    Column("size", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("implementation", String(42)),
    Column("skeleton_hash", String(34), nullable=False, index=True),
)
