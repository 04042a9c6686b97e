"""A daemon's database, made the way the daemon makes it, for the read commands' tests.

Real protocol code goes through the real linker (`Linker.observe`, `Linker.write`), deployment rows through the
daemon's `deployment_row` and upserts, findings through `record_finding`, and a reorg through
`roll_back_blocks`. What is stored:

  eth (1)     Uniswap V2 pair A1 (team), an identical pair A2 (team), Uniswap's ERC-20 E1 (team),
              an EIP-1167 clone P1 of A1 (third)
  bsc (56)    the PancakeSwap pair B1 (other), an EIP-1167 clone P3 of B1 (other),
              an EIP-1167 clone P2 naming A1's address, which holds nothing on bsc (unresolved)
  137         the SushiSwap pair C1 (third): a chain the configuration does not name
  imported    BSCswap's pair under the label "bscswap"
  rolled back a Uniswap pair R1 on bsc (fourth; its finding is retracted) and an OpenZeppelin ERC-20 on bsc
              (its class stays, with no deployment)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest
from eth_hash.auto import keccak

from kamiyo.analyzers.bytecode.classify import PROXY_KINDS
from kamiyo.analyzers.bytecode.lineage import Lineage
from kamiyo.chains.deployments import NewContract
from kamiyo.config import StorageSettings
from kamiyo.daemon.deployments import deployment_row, roll_back_blocks
from kamiyo.daemon.linking import FORK_DETECTED, Linker
from kamiyo.findings import Finding, FindingType, Severity, fingerprint
from kamiyo.storage.engine import create_engine
from kamiyo.storage.findings import record_finding
from kamiyo.storage.migrations import upgrade
from kamiyo.storage.schema import deployments, known_code
from kamiyo.storage.upsert import insert_new, upsert
from tests.support import npm_artifacts

ETH, BSC, UNCONFIGURED = 1, 56, 137
TEAM, OTHER, THIRD, FOURTH = ("0x" + c * 40 for c in "abcd")
BSCSWAP_LABEL, BSCSWAP_ID = "bscswap", "BSCswapPair"


def address(n: int) -> str:
    return "0x" + f"{n:040x}"


def eip1167(target: str) -> bytes:
    return bytes.fromhex(f"363d3d373d3d3d363d73{target[2:]}5af43d82803e903d91602b57fd5bf3")


A1, A2, E1, P1 = address(0xA1), address(0xA2), address(0xE1), address(0x1A1)
B1, P2, P3 = address(0xB1), address(0x2A1), address(0x3B1)
C1, R1, Z1 = address(0xC1), address(0xF1), address(0xF2)


@dataclass
class World:
    db: Path
    config: Path
    keys: dict[str, str] = field(default_factory=dict)  # "A1" / "P1" / "bscswap" … -> skeleton hash
    lineage: Lineage | None = None
    findings: dict[str, str] = field(default_factory=dict)  # subject name -> fingerprint


def codes() -> dict[str, bytes]:
    """The real code, or a skip when this machine cannot fetch or compile it."""
    try:
        named = {name: npm_artifacts.artifact(artifact) for name, artifact in (
            ("uniswap", "uniswap-v2-pair"), ("pancake", "pancake-v2-pair"), ("bscswap", "bscswap-pair"),
            ("erc20", "uniswap-v2-erc20"), ("oz-erc20", "oz-erc20"))}
        return {**named, "sushi": npm_artifacts.sushiswap_pair_runtime()}
    except npm_artifacts.ArtifactUnavailable as exc:
        pytest.skip(f"npm artifacts unavailable: {exc}")


def write_config(path: Path, db: Path) -> Path:
    chains = "".join(f'\n[[chains]]\nname = "{name}"\nchain_id = {cid}\nrpc = ["http://127.0.0.1:9"]\n'
                     for name, cid in (("eth", ETH), ("bsc", BSC)))
    path.write_text(f'[storage]\nurl = "sqlite:///{db}"\n{chains}')
    return path


def when(day: int, hour: int = 0) -> datetime:
    return datetime(2024, 1, day, hour, tzinfo=timezone.utc)


async def build(folder: Path) -> World:
    code = codes()
    world = World(db=folder / "kamiyo.db", config=write_config(folder / "kamiyo.toml", folder / "kamiyo.db"))
    engine = create_engine(StorageSettings(url=f"sqlite:///{world.db}"))
    try:
        await upgrade(engine)
        linker = Linker(Lineage())
        stored: dict[tuple[int, str], str] = {}  # (chain, address) -> class, as the deployments table says
        # (name, chain, address, code, origin, block, block time, finding's created_at)
        plan = [
            ("A1", ETH, A1, code["uniswap"], TEAM, 100, 1_600_000_000, None),
            ("A2", ETH, A2, code["uniswap"], TEAM, 105, 1_600_000_100, None),
            ("E1", ETH, E1, code["erc20"], TEAM, 106, 1_600_000_200, None),
            ("B1", BSC, B1, code["pancake"], OTHER, 200, 1_610_000_000, when(1)),
            ("C1", UNCONFIGURED, C1, code["sushi"], THIRD, 300, 1_620_000_000, when(2, 12)),
            ("P1", ETH, P1, eip1167(A1), THIRD, 110, 1_600_000_500, when(3)),
            ("P2", BSC, P2, eip1167(A1), OTHER, 210, 1_610_000_100, None),
            ("P3", BSC, P3, eip1167(B1), OTHER, 220, 1_610_000_200, None),
            ("R1", BSC, R1, code["uniswap"], FOURTH, 900, 1_619_000_000, when(4)),
            ("Z1", BSC, Z1, code["oz-erc20"], FOURTH, 901, 1_619_000_100, None),
        ]
        for name, chain_id, where, runtime, origin, block, timestamp, created_at in plan:
            if name == "C1":  # imported between two deployments: the lineage sees it in that order
                await _import(engine, linker, world, code["bscswap"])
            seen = linker.observe(runtime, chain_id, where)
            world.keys[name] = seen.key
            contract = NewContract(chain_id, where, block, "0x" + f"{block:064x}", origin, origin, False)
            row = deployment_row(contract, runtime, seen, origin, timestamp)
            async with engine.begin() as conn:
                await linker.write(conn, {seen.key})
                await upsert(conn, deployments, row, keys=("chain_id", "address"))
                stored[(chain_id, where)] = seen.key
                if (finding := _finding(row, stored, created_at)) is not None:
                    assert await record_finding(conn, finding)
                    world.findings[name] = finding.fingerprint
            linker.committed({seen.key})
        async with engine.begin() as conn:  # a reorg on bsc takes blocks 900 and up back
            await roll_back_blocks(conn, linker, BSC, 900)
    finally:
        await engine.dispose()
    world.lineage = linker.lineage
    return world


async def _import(engine, linker: Linker, world: World, runtime: bytes) -> None:
    seen = linker.observe(runtime, None, BSCSWAP_ID, BSCSWAP_LABEL)
    world.keys[BSCSWAP_LABEL] = seen.key
    async with engine.begin() as conn:
        await linker.write(conn, {seen.key})
        row = {"label": BSCSWAP_LABEL, "ident": BSCSWAP_ID, "skeleton_hash": seen.key,
               "code_hash": "0x" + keccak(runtime).hex(), "kind": seen.kind}
        await insert_new(conn, known_code, row, keys=("label", "ident"))
    linker.committed({seen.key})


def _finding(row: dict, stored: dict[tuple[int, str], str], created_at: datetime | None) -> Finding | None:
    """A fork-detected finding as the daemon stores one, for the deployments the plan gives a time to.

    Made here rather than by `Linker.fork_finding`: whether a deployment is a fork is the linker's business and
    its own tests'; these tests read back what is stored."""
    if created_at is None:
        return None
    family_key = row["skeleton_hash"]
    if row["kind"] in PROXY_KINDS:
        family_key = stored[(row["chain_id"], row["implementation"])]
    return Finding(kind=FORK_DETECTED, severity=Severity.INFO, type=FindingType.INFO, chain_id=row["chain_id"],
                   subject=row["address"], block=row["block_number"], tx_hash=row["tx_hash"],
                   fingerprint=fingerprint(FORK_DETECTED, row["chain_id"], row["origin"], row["skeleton_hash"]),
                   evidence={"code_class": family_key, "origin": row["origin"]}, created_at=created_at)
