"""The deployment stage of a chain's pipeline: find a block's new contracts, fetch and link their code, follow
proxy upgrades, decide findings, and hand the follower what to write in the block's transaction.

Everything that waits on the network happens before the transaction; a rolled-back block takes its deployments,
upgrades and findings (retracted, not deleted) with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from eth_hash.auto import keccak
from sqlalchemy import and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .. import log, metrics
from ..analyzers.bytecode.classify import PROXY_KINDS
from ..analyzers.tx.base import BlockActivity
from ..chains.blocks import BlockRef
from ..chains.deployments import DeploymentFinder, NewContract
from ..chains.proxies import ProxyReader, Upgrade
from ..feeds.incidents import rebuild_incidents
from ..findings import Finding, FindingType
from ..signals import OUTBOX_WRITTEN
from ..storage.findings import record_finding, retract_findings
from ..storage.schema import deployments, proxy_upgrades
from ..storage.upsert import insert_new, upsert
from .follower import Write
from .exploits import exploit_findings
from .linking import Linker, Observed

ORIGIN_CACHE = 50_000  # factories' origins remembered between blocks (a factory makes many contracts)
PREFETCH = 8  # blocks whose RPC work (traces, logs, code) runs ahead of the block being linked


def deployment_row(contract: NewContract, code: bytes, seen: Observed, origin: str, timestamp: int) -> dict:
    return {
        "chain_id": contract.chain_id, "address": contract.address, "block_number": contract.block,
        "tx_hash": contract.tx_hash, "creator": contract.creator, "deployer": contract.deployer,
        "internal": contract.internal, "code_hash": "0x" + keccak(code).hex(), "size": len(code),
        "kind": seen.kind, "implementation": seen.implementation, "skeleton_hash": seen.key,
        "origin": origin, "block_timestamp": timestamp,
    }


@dataclass(frozen=True, slots=True)
class _Fetched:
    """A block's network half: what it deployed (with code) and the upgrade events it emitted."""

    found: list[NewContract]
    codes: list[bytes]
    upgrades: list[Upgrade]
    activity: BlockActivity | None = None  # for the transaction analyzers, which run in block order


@dataclass
class _BlockOutput:
    """What one block produced, kept until its transaction commits (then logged and confirmed)."""

    block: BlockRef
    keys: set[str] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)
    created: list[Finding] = field(default_factory=list)  # those that were news, known inside the transaction
    upgrades: list[dict] = field(default_factory=list)
    rows: list[str] = field(default_factory=list)  # addresses deployed

    @property
    def deployments(self) -> int:
        return len(self.rows)


async def _nothing() -> None:
    return None


class DeploymentStage:
    def __init__(self, finder: DeploymentFinder, linker: Linker, engine: AsyncEngine,
                 proxies: ProxyReader | None = None, analysis=None,
                 source_types: Mapping[str, str] | None = None) -> None:
        self.finder = finder
        self.source_types = dict(source_types or {})  # feed name -> type, to rank sources when incidents rebuild
        self.analysis = analysis  # an AnalysisStage: the block's activity through the transaction analyzers
        self.linker = linker
        self.engine = engine
        self.proxies = proxies or ProxyReader(finder.client)
        self.chain_id = finder.chain_id
        self._origins: dict[str, str] = {}
        self._pending: dict[str, _BlockOutput] = {}  # block hash -> output, until its transaction commits
        self._uncommitted: dict[str, dict] = {}  # address -> row of a block not committed yet (a group is open)
        self._upgraded: dict[str, str] = {}  # proxy -> implementation set by an upgrade not committed yet
        self._upcoming: list[BlockRef] = []
        self._position: dict[str, int] = {}
        self._fetches: dict[str, asyncio.Task] = {}
        self.log = finder.log

    def ahead(self, blocks: list[BlockRef]) -> None:
        """The blocks the follower will hand over next, in order: their network half is fetched ahead."""
        self._upcoming = blocks
        self._position = {b.hash: i for i, b in enumerate(blocks)}

    async def close(self) -> None:
        tasks, self._fetches = list(self._fetches.values()), {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _fetch(self, block: BlockRef) -> _Fetched:
        """Two waves of concurrent requests: traces, upgrade logs and the analyzers' block and receipts; then the
        new contracts' code and the balances the analyzers need (both depend on the first wave)."""
        traced, upgrades, downloaded = await asyncio.gather(
            self.finder.fetch(block.number), self.proxies.upgrades(block.hash, block.number),
            self.analysis.download(block, self.finder.method) if self.analysis is not None else _nothing())
        found = self.finder.found_in(block.number, traced)
        codes, activity = await asyncio.gather(
            self.finder.code(found),
            self.analysis.assemble(block, downloaded, traced, found) if self.analysis is not None else _nothing())
        return _Fetched(found, codes, upgrades, activity)

    async def _fetched(self, block: BlockRef) -> _Fetched:
        at = self._position.get(block.hash)
        if at is not None:  # keep PREFETCH blocks in flight beyond this one
            for upcoming in self._upcoming[at + 1 : at + 1 + PREFETCH]:
                if upcoming.hash not in self._fetches:
                    self._fetches[upcoming.hash] = asyncio.create_task(self._fetch(upcoming))
        task = self._fetches.pop(block.hash, None)
        return await task if task is not None else await self._fetch(block)

    async def __call__(self, block: BlockRef) -> Write | None:
        fetched = await self._fetched(block)
        # here, not in the fetch: analyzers keep state across blocks, and blocks are fetched ahead out of order
        analyzed = self.analysis.run(fetched.activity) if fetched.activity is not None else []
        if not fetched.found and not fetched.upgrades and not analyzed:
            return None
        rows, standards = {}, {}
        for contract, code in zip(fetched.found, fetched.codes):
            seen = self.linker.observe(code, contract.chain_id, contract.address)
            origin = await self._origin(contract, rows)
            rows[contract.address] = deployment_row(contract, code, seen, origin, block.timestamp)
            standards[contract.address] = seen.standard
        await self._read_implementations(rows, standards, block.number)
        output = _BlockOutput(block, keys={r["skeleton_hash"] for r in rows.values()}, rows=list(rows),
                              findings=list(analyzed))
        output.upgrades = upgrade_rows = await self._upgrades(fetched.upgrades, rows)
        families = {}
        for row in rows.values():
            family_key = await self._code_class(row, rows)
            if family_key is not None and self.linker.lineage.classes[family_key].sketch is not None:
                families[row["address"]] = family_key  # else empty code, a stub, a proxy to code we have not seen
                output.findings.extend(self.linker.fork_findings(row, family_key))
        self._pending[block.hash] = output
        self._uncommitted.update(rows)

        async def write(conn: AsyncConnection) -> None:
            await self.linker.write(conn, output.keys)
            # upserts on (chain, address): replaying a block is harmless
            await upsert(conn, deployments, list(rows.values()), keys=("chain_id", "address"))
            await insert_new(conn, proxy_upgrades, upgrade_rows, keys=("chain_id", "address", "block_number",
                                                                      "log_index"))
            for row in upgrade_rows:
                await conn.execute(update(deployments).where(and_(
                    deployments.c.chain_id == row["chain_id"], deployments.c.address == row["address"]
                )).values(implementation=row["implementation"]))
            # decided here, inside the transaction, so that a family marked exploited a moment ago counts
            output.findings += [f for address, key in families.items()
                                for f in exploit_findings(self.linker, rows[address], key)]
            output.created = [f for f in output.findings if await record_finding(conn, f)]
            if any(f.type is FindingType.EXPLOIT for f in output.created):
                # an attack seen on chain is an incident of its own, merged with the feeds' reports of it
                await rebuild_incidents(conn, self.source_types)

        return write

    def committed(self, block: BlockRef) -> _BlockOutput | None:
        """Called once the block's transaction committed: confirm classes, announce findings; returns what the
        block produced (None when it produced nothing)."""
        output = self._pending.pop(block.hash, None)
        if output is None:
            return None
        for address in output.rows:
            self._uncommitted.pop(address, None)
        for row in output.upgrades:
            if self._upgraded.get(row["address"]) == row["implementation"]:
                del self._upgraded[row["address"]]
        self.linker.committed(output.keys)
        metrics.DEPLOYMENTS.labels(self.finder.chain_name).inc(output.deployments)
        for row in output.upgrades:
            self.log.info("proxy.upgraded", proxy=row["address"], implementation=row["implementation"],
                          previous=row["previous"], block=row["block_number"])
        if output.created:
            OUTBOX_WRITTEN.notify()  # their outbox events are committed: the worker and the stream need not poll
        for finding in output.created:
            metrics.FINDINGS.labels(self.finder.chain_name, finding.kind).inc()
            self.log.info("finding.created", kind=finding.kind, severity=str(finding.severity),
                          fingerprint=finding.fingerprint, chain_id=finding.chain_id, subject=finding.subject,
                          block=finding.block, family=finding.evidence.get("family"))
        return output

    async def _origin(self, contract: NewContract, rows: dict[str, dict]) -> str:
        """Who stands behind a contract: its deployer, or for a factory's product the factory's own origin."""
        if not contract.internal:
            return contract.deployer
        factory = contract.creator
        if (known := rows.get(factory) or self._uncommitted.get(factory)) is not None:
            return known["origin"]
        if factory not in self._origins:
            async with self.engine.connect() as conn:
                stored = (await conn.execute(select(deployments.c.origin).where(and_(
                    deployments.c.chain_id == self.chain_id, deployments.c.address == factory)))).scalar()
            if len(self._origins) >= ORIGIN_CACHE:
                self._origins.clear()
            self._origins[factory] = stored or factory  # a factory older than our records stands for itself
        return self._origins[factory]

    async def _read_implementations(self, rows: dict[str, dict], standards: dict[str, str | None],
                                    number: int) -> None:
        """Proxies that keep their implementation in storage: read it at the deployment's block."""
        unnamed = [(a, standards[a]) for a, r in rows.items() if r["kind"] in PROXY_KINDS and r["implementation"] is None]
        for address, impl in (await self.proxies.implementations(unnamed, number)).items():
            rows[address]["implementation"] = impl

    async def _upgrades(self, upgrades: list[Upgrade], rows: dict[str, dict]) -> list[dict]:
        """Upgrade rows for the proxies we know (deployed in this block, in an uncommitted one, or stored); an
        `Upgraded` event from anything else is not a proxy of ours. Each row records what it replaced, counting
        upgrades of blocks not committed yet, so that a rollback restores exactly."""
        if not upgrades:
            return []
        wanted = {u.address for u in upgrades}
        current = {a: impl for a, impl in self._upgraded.items() if a in wanted}
        for address in wanted - set(current):
            row = rows.get(address) or self._uncommitted.get(address)
            if row is not None and row["kind"] in PROXY_KINDS:
                current[address] = row["implementation"]
        stored = sorted(wanted - set(current) - set(rows) - set(self._uncommitted))
        if stored:
            async with self.engine.connect() as conn:
                current |= {a: impl for a, impl in await conn.execute(
                    select(deployments.c.address, deployments.c.implementation).where(and_(
                        deployments.c.chain_id == self.chain_id, deployments.c.address.in_(stored),
                        deployments.c.kind.in_(sorted(PROXY_KINDS)))))}
        out = []
        for upgrade in sorted(upgrades, key=lambda u: u.log_index):
            if upgrade.address not in current:
                continue
            previous, current[upgrade.address] = current[upgrade.address], upgrade.implementation
            if upgrade.address in rows:
                rows[upgrade.address]["implementation"] = upgrade.implementation
            self._upgraded[upgrade.address] = upgrade.implementation
            out.append({"chain_id": self.chain_id, "address": upgrade.address, "block_number": upgrade.block,
                        "log_index": upgrade.log_index, "implementation": upgrade.implementation,
                        "previous": previous})
        return out

    async def _code_class(self, row: dict, rows: dict[str, dict]) -> str | None:
        """The class whose family a deployment counts in: its own, or for a proxy the class of the code it runs."""
        if row["kind"] not in PROXY_KINDS:
            return row["skeleton_hash"]
        impl = row["implementation"]
        if impl is None:
            return None
        if (known := rows.get(impl) or self._uncommitted.get(impl)) is not None:
            return known["skeleton_hash"]
        async with self.engine.connect() as conn:
            return (await conn.execute(select(deployments.c.skeleton_hash).where(and_(
                deployments.c.chain_id == self.chain_id, deployments.c.address == impl)))).scalar()

    async def rollback(self, conn: AsyncConnection, chain_id: int, first_dropped: int) -> None:
        """Inside the rollback's transaction: what storage holds of the dropped blocks goes, and so does what
        they taught this stage and the lineage (a dropped factory's origin, a dropped deployment's sighting)."""
        self._pending.clear()
        self._uncommitted.clear()
        self._upgraded.clear()
        self._origins.clear()
        await roll_back_blocks(conn, self.linker, chain_id, first_dropped)


async def roll_back_blocks(conn: AsyncConnection, linker: Linker, chain_id: int, first_dropped: int) -> None:
    """Restore proxies to what they ran before the dropped blocks, delete the blocks' deployments, retract their
    findings."""
    dropped_upgrades = await conn.execute(
        select(proxy_upgrades).where(and_(proxy_upgrades.c.chain_id == chain_id,
                                          proxy_upgrades.c.block_number >= first_dropped))
        .order_by(proxy_upgrades.c.block_number.desc(), proxy_upgrades.c.log_index.desc()))
    for upgrade in dropped_upgrades.all():  # newest first: each restores what it replaced
        await conn.execute(update(deployments).where(and_(
            deployments.c.chain_id == chain_id, deployments.c.address == upgrade.address
        )).values(implementation=upgrade.previous))
    await conn.execute(delete(proxy_upgrades).where(and_(proxy_upgrades.c.chain_id == chain_id,
                                                         proxy_upgrades.c.block_number >= first_dropped)))
    await conn.execute(delete(deployments).where(
        and_(deployments.c.chain_id == chain_id, deployments.c.block_number >= first_dropped)
    ))
    await linker.forget_sightings(conn, chain_id, first_dropped)
    for fp in await retract_findings(conn, chain_id, first_dropped):
        log.get("kamiyo.findings").warning("finding.retracted", fingerprint=fp, chain_id=chain_id,
                                           reason="reorg", first_dropped=first_dropped)
