"""The tables. Natural keys everywhere, so that replaying a block is an upsert, never a duplicate."""

from __future__ import annotations

from sqlalchemy import (JSON, BigInteger, Boolean, Column, Date, DateTime, Float, Index, Integer, LargeBinary,
                        MetaData, String, Table, Text, UniqueConstraint, func)

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
    Column("implementation", String(42)),  # the current one: proxy upgrades rewrite it (see proxy_upgrades)
    Column("skeleton_hash", String(34), nullable=False, index=True),
    # who stands behind the code: the deployer for a top-level creation, the factory's own origin for its
    # products (so one team's redeployments and one factory's output are one origin, on every chain)
    Column("origin", String(42)),
    Column("block_timestamp", BigInteger),
)

# One row per exact-clone class, with what the similarity index needs, so that the index is rebuilt from here at
# start instead of recomputed from code. `seq` is the admission order, which the family rule replays.
code_classes = Table(
    "code_classes",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("skeleton_hash", String(34), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sketch", LargeBinary),  # NUM_PERM little-endian uint32; None for proxies and stubs
    Column("selectors", JSON, nullable=False),
    Column("topics", JSON, nullable=False),
    Column("first_chain_id", BigInteger),  # where it was first seen: a deployment, or imported known code
    Column("first_address", String(200), nullable=False),
    Column("label", String(100)),  # the import label for known code
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Verified similarity links, stored by the class that found them (a, the newer) to an older one (b).
class_links = Table(
    "class_links",
    metadata,
    Column("a", String(34), primary_key=True),
    Column("b", String(34), primary_key=True, index=True),
    Column("relation", String(16), nullable=False),
    Column("similarity", Float, nullable=False),
    Column("evidence", JSON, nullable=False),
)

# Code imported with `kamiyo index import`: protocols deployed before the daemon started, or on other chains.
known_code = Table(
    "known_code",
    metadata,
    Column("label", String(100), primary_key=True),
    Column("ident", String(200), primary_key=True),
    Column("skeleton_hash", String(34), nullable=False, index=True),
    Column("code_hash", String(66), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Implementation changes of proxies (EIP-1967 Upgraded / BeaconUpgraded), kept per event so a reorg can drop them.
proxy_upgrades = Table(
    "proxy_upgrades",
    metadata,
    Column("chain_id", BigInteger, primary_key=True, autoincrement=False),
    Column("address", String(42), primary_key=True),
    Column("block_number", BigInteger, primary_key=True, autoincrement=False),
    Column("log_index", Integer, primary_key=True, autoincrement=False),
    Column("implementation", String(42), nullable=False),
    Column("previous", String(42)),  # what deployments.implementation held before: restored on rollback
)

# Findings, keyed by their stable fingerprint (the dedup key everywhere). A reorg that drops the block a finding
# came from marks it retracted; seeing it again on the new branch makes it active again.
findings = Table(
    "findings",
    metadata,
    Column("fingerprint", String(66), primary_key=True),
    Column("kind", String(40), nullable=False, index=True),
    Column("severity", String(16), nullable=False),
    Column("type", String(16), nullable=False),
    Column("chain_id", BigInteger, nullable=False),
    Column("subject", String(42), nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("tx_hash", String(66)),
    Column("status", String(16), nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # the API's pages, in (created_at, fingerprint) order, whole or of one kind or one chain: a seek, not a sort
    Index("ix_findings_page", "created_at", "fingerprint"),
    Index("ix_findings_kind_page", "kind", "created_at", "fingerprint"),
    Index("ix_findings_chain_page", "chain_id", "created_at", "fingerprint"),
)


# Every record an off-chain feed published, normalised and kept whole (`raw`): (source, ref) is the source's own
# identity for it, so a repeated pull is an upsert that changes nothing. Merging into incidents reads from here.
feed_records = Table(
    "feed_records",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("ref", String(500), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("protocol", String(300), nullable=False),
    Column("day", Date),
    Column("chains", JSON, nullable=False),  # chain ids, or names the registry does not know
    Column("loss_usd", Float),
    Column("loss_text", Text),
    Column("classification", String(200)),
    Column("technique", String(300)),
    Column("addresses", JSON, nullable=False),  # [{"role", "chain_id", "address"}]
    Column("tx_hashes", JSON, nullable=False),
    Column("references", JSON, nullable=False),
    Column("raw", JSON, nullable=False),
    Column("content_hash", String(66), nullable=False),  # of the normalised record: a change shows here
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
)

# Per feed: what the last answer was (for conditional requests) and how the source is doing.
feed_state = Table(
    "feed_state",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("etag", String(500)),
    Column("last_modified", String(100)),
    Column("body_hash", String(66)),
    Column("items", Integer, nullable=False, server_default="0"),
    Column("last_success", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("last_error_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Feed records merged into incidents (feeds/merge.py). Derived: feeds/incidents.py replaces the whole table from
# feed_records in the transaction that changed them, and nothing else writes it. `sources` lists the records
# ([{"source", "ref"}], earliest first) and `why` every merge that joined them, in words.
incidents = Table(
    "incidents",
    metadata,
    Column("id", String(40), primary_key=True),  # "inc-…": stable while the incident's earliest record stays
    Column("kind", String(16), nullable=False),  # "incident" | "advisory"
    Column("protocol", String(300), nullable=False),
    Column("day", Date, index=True),
    Column("chains", JSON, nullable=False),  # chain ids, then names the registry does not know
    Column("loss_usd", Float),
    Column("loss_text", Text),
    Column("classification", String(200)),
    Column("technique", String(300)),
    Column("addresses", JSON, nullable=False),  # [{"role", "chain_id", "address"}], lowercase, each once
    Column("tx_hashes", JSON, nullable=False),
    Column("references", JSON, nullable=False),
    Column("sources", JSON, nullable=False),
    Column("why", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),  # when its content last changed
    Column("advisories", JSON),  # ids of advisories that name its protocol or one of its addresses
)

# Victims named by incidents whose code the daemon has fingerprinted: their classes mark their families exploited.
exploited_code = Table(
    "exploited_code",
    metadata,
    Column("incident_id", String(40), primary_key=True),
    Column("chain_id", BigInteger, primary_key=True, autoincrement=False),
    Column("address", String(42), primary_key=True),
    Column("role", String(32), nullable=False),
    Column("skeleton_hash", String(34), nullable=False, index=True),
    Column("protocol", String(300), nullable=False),
    Column("day", String(10)),
    Column("sources", JSON, nullable=False),
    Column("marked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The transactional outbox: one row per finding event, written in the transaction that creates or retracts the
# finding, so that an alert can never be lost between a commit and a send. `id` orders events.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", String(66), nullable=False, index=True),
    Column("event", String(32), nullable=False),  # finding.created | finding.retracted
    Column("finding", JSON, nullable=False),  # the finding as it is sent
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One row per (event, channel): what the delivery worker owes each channel, its attempts and its outcome.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("outbox_id", Integer, nullable=False),
    Column("channel", String(100), nullable=False),
    Column("fingerprint", String(66), nullable=False, index=True),
    Column("event", String(32), nullable=False),
    Column("status", String(16), nullable=False, index=True),  # pending | delivered | dead | suppressed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, index=True),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
    UniqueConstraint("outbox_id", "channel"),
)

# Small durable counters of the alert worker: "fanned_out" is the last outbox id turned into deliveries.
alert_state = Table(
    "alert_state",
    metadata,
    Column("key", String(40), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# API keys: only a hash of the secret is kept. `scopes` ⊆ {read, watchlists, admin}; `quotas` is what its tier
# allows (requests per day and minute, watchlists, webhooks, data delay).
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),  # "key_…": public, shown in lists; the secret is not
    Column("name", String(200), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("scopes", JSON, nullable=False),
    Column("tier", String(32), nullable=False),
    Column("quotas", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

# What a team watches: entries (a contract on a chain, or a protocol name), the findings it wants, its channels.
watchlists = Table(
    "watchlists",
    metadata,
    Column("id", String(40), primary_key=True),  # "wl_…"
    Column("owner", String(40), nullable=False, index=True),  # an api_keys id, or "operator" (the CLI's)
    Column("name", String(200), nullable=False),
    Column("kinds", JSON, nullable=False),  # finding kinds wanted; empty: all
    Column("min_severity", String(16), nullable=False),
    Column("channels", JSON, nullable=False),  # names: the owner's webhooks, or configured channels
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("owner", "name"),
)

watchlist_entries = Table(
    "watchlist_entries",
    metadata,
    Column("watchlist_id", String(40), primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("chain_id", BigInteger),  # with address: a contract
    Column("address", String(42)),
    Column("protocol", String(300)),  # else: a protocol name, matched against what findings and incidents name
)

# Webhooks an API key registered for itself (`/v1/webhooks`): its watchlists route findings to them by name. The
# secret signs deliveries, so it is kept as it is (like a configured channel's); it is shown once, when made.
key_webhooks = Table(
    "key_webhooks",
    metadata,
    Column("id", String(40), primary_key=True),  # "wh_…": the channel name its deliveries are recorded under
    Column("key_id", String(40), nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("url", Text, nullable=False),
    Column("secret", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("key_id", "name"),
)

# Known noise silenced at run time (`kamiyo alerts suppress`, or a key's POST /v1/suppressions), beside `[alerts]
# suppress` in the configuration: one finding by fingerprint, or an analyzer's findings about (or naming) one address.
suppressions = Table(
    "suppressions",
    metadata,
    Column("id", String(40), primary_key=True),  # "sup_…"
    Column("fingerprint", String(66)),
    Column("kind", String(40)),
    Column("address", String(42)),
    Column("reason", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("owner", String(40), index=True),  # an API key's: only its own webhooks are silenced; none: every channel
)

# API requests per key and UTC day (day = unix days), summed by every process serving the API on this database,
# so the day quota holds across `kamiyo run`, `kamiyo api` and restarts. Rows older than two days are pruned.
api_usage = Table(
    "api_usage",
    metadata,
    Column("key_id", String(40), primary_key=True),
    Column("day", Integer, primary_key=True, autoincrement=False),
    Column("requests", BigInteger, nullable=False),
)
