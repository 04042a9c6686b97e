"""Real on-chain scenarios for the transaction analyzers: attacks, hard negatives and ordinary activity on anvil.

Each `run_<name>(node)` deploys its own contracts from fresh, freshly funded accounts (so it works on a new anvil
or after other scenarios) and returns a `ScenarioRun`: every transaction it sent, the ones a detector should
flag (or, for a negative, the ones that look most like an attack), and the addresses by role. The contracts are
Uniswap V2 and OpenZeppelin 3.4.2 from their npm builds, and the small Solidity sources in
tests/scenarios/contracts, compiled here with solc-js and cached like npm_artifacts' compiles. This module
only acts; it does not judge: tests/support/test_scenarios.py checks each effect on chain.

Roles (lowercase addresses): attacks fill "victim", "attacker" (a new EOA, nonce 0 before the scenario) and
"attack_contract"; negatives fill "actor" (the EOA sending the attack-looking transaction) and what it used.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import rlp
from eth_hash.auto import keccak

from tests.support import contracts, npm_artifacts
from tests.support.anvil import AnvilNode

SOURCES = Path(__file__).resolve().parents[1] / "scenarios" / "contracts"
SOLC_PACKAGE, SOLC_VERSION = "solc-0.8.26", "0.8.26"  # the npm alias in package.json
SOLC_SETTINGS: dict[str, Any] = {"optimizer": {"enabled": True, "runs": 200}, "evmVersion": "cancun"}
OZ = "@openzeppelin/contracts"
E = 10**18
DAY = 86_400
SEND_GAS = 8_000_000
IMPLEMENTATION_SLOT = "0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc"  # EIP-1967


@dataclass(frozen=True, slots=True)
class ScenarioRun:
    name: str
    attack: bool  # True: funds of others were taken; False: benign activity, however it looks
    txs: tuple[str, ...]  # every transaction sent, in order, set-up included
    key_txs: tuple[str, ...]  # attacks: where funds are taken; negatives: what looks most like an attack
    roles: dict[str, str]
    first_block: int
    last_block: int


# ------------------------------------------------------------------------------------------------ compiling


def compile_units(units: dict[str, str], label: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Solidity units (name -> source) compiled together with SOLC_SETTINGS: {unit: {contract: {"abi",
    "bytecode", "runtime"}}} (hex without 0x). Cached under npm_artifacts' cache folder, keyed by the full
    standard-JSON input and the compiler, so a warm run starts no node and an edited source is never served a
    stale build."""
    solc_input = {
        "language": "Solidity",
        "sources": {unit: {"content": text} for unit, text in units.items()},
        "settings": {**SOLC_SETTINGS, "outputSelection": {"*": {"*": [
            "abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}}},
    }
    blob = json.dumps(solc_input, sort_keys=True, separators=(",", ":"))
    key = hashlib.sha256(f"{SOLC_PACKAGE}\n{SOLC_VERSION}\n{blob}".encode()).hexdigest()
    cached = npm_artifacts.cache_dir() / "solc" / f"{label}-units-{key}.json"
    try:
        return json.loads(cached.read_text())
    except (OSError, ValueError):
        pass
    # npm_artifacts' runner: it installs the npm tools if missing and tells "unavailable" from "broken".
    output = npm_artifacts._run_solc(blob, SOLC_PACKAGE, SOLC_VERSION)
    errors = [e.get("formattedMessage", e.get("message")) for e in output.get("errors", []) if e["severity"] == "error"]
    if errors:
        raise npm_artifacts.ArtifactError(f"{label} contracts do not compile:\n" + "\n".join(errors))
    built = {unit: {name: {"abi": out["abi"], "bytecode": out["evm"]["bytecode"]["object"],
                           "runtime": out["evm"]["deployedBytecode"]["object"]} for name, out in members.items()}
             for unit, members in output.get("contracts", {}).items()}
    npm_artifacts._atomic_write(cached, json.dumps(built) + "\n")
    return built


@cache
def compiled() -> dict[str, dict[str, Any]]:
    """Every contract under SOURCES by name: {"abi", "bytecode", "runtime"} (hex without 0x)."""
    built: dict[str, dict[str, Any]] = {}
    units = compile_units({p.name: p.read_text() for p in sorted(SOURCES.glob("*.sol"))}, "scenarios")
    for unit, members in units.items():
        for name, out in members.items():
            if name in built:
                raise npm_artifacts.ArtifactError(f"contract {name} is defined twice ({unit})")
            built[name] = out
    return built


def oz_creation(name: str) -> str:
    """Creation code of an OpenZeppelin 3.4.2 build (`TransparentUpgradeableProxy`, `ProxyAdmin`, ...)."""
    folder = npm_artifacts.npm_pack(f"{OZ}@{npm_artifacts.PINNED[OZ]}") / "build" / "contracts"
    return json.loads((folder / f"{name}.json").read_text())["bytecode"].removeprefix("0x")


# -------------------------------------------------------------------------------------------- ABI encoding


def _word(value: int) -> str:
    return f"{value % 2**256:064x}"


def _encode_one(kind: str, value: Any) -> tuple[bool, str]:
    """(is dynamic, encoding) of one argument; enough ABI for the scenarios' calls."""
    if kind.endswith("[]"):
        return True, _word(len(value)) + encode([kind[:-2]] * len(value), value)
    if kind in ("bytes", "string"):
        raw = value.encode() if kind == "string" else bytes.fromhex(value.removeprefix("0x"))
        return True, _word(len(raw)) + raw.hex().ljust(-(-len(raw) // 32) * 64, "0")
    if kind == "address":
        return False, value.removeprefix("0x").lower().rjust(64, "0")
    if kind == "bytes32":
        return False, value.removeprefix("0x").ljust(64, "0")
    return False, _word(int(value))  # uintN, bool


def encode(types: list[str], values: list[Any] | tuple[Any, ...]) -> str:
    parts = [_encode_one(kind, value) for kind, value in zip(types, values, strict=True)]
    head, tail = [], ""
    for dynamic, data in parts:
        head.append(_word(32 * len(parts) + len(tail) // 2) if dynamic else data)
        tail += data if dynamic else ""
    return "".join(head) + tail


def calldata(signature: str, *args: Any) -> str:
    """`calldata("transfer(address,uint256)", to, amount)` as hex without 0x (flat signatures only)."""
    inside = signature[signature.index("(") + 1 : -1]
    return keccak(signature.encode())[:4].hex() + encode(inside.split(",") if inside else [], args)


def _address(word_hex: str) -> str:
    return "0x" + word_hex.removeprefix("0x")[-40:].lower()


# ----------------------------------------------------------------------------------------------- sending


def derived_account(scenario: str, role: str, salt: int, n: int = 0) -> str:
    """The address Session.account tries `n`-th for a role; salt is the chain's height when the session began.
    A test that must name a scenario's contract before it runs (a watchlist) predicts it from this."""
    return "0x" + keccak(f"kamiyo-scenario/{scenario}/{role}/{salt}/{n}".encode())[-20:].hex()


def created_address(sender: str, nonce: int) -> str:
    """The address CREATE gives the contract `sender` deploys with `nonce`: keccak(rlp([sender, nonce]))[12:]."""
    return "0x" + keccak(rlp.encode([bytes.fromhex(sender[2:]), nonce]))[-20:].hex()


class Session:
    """One scenario's transactions: fresh accounts, sends that wait for success, and the record of it all."""

    def __init__(self, node: AnvilNode, name: str) -> None:
        self.node, self.name = node, name
        self.receipts: list[dict] = []
        self._salt = int(node.rpc("eth_blockNumber"), 16)  # a rerun on the same node gets other accounts

    def account(self, role: str, ether: int = 10) -> str:
        """A new impersonated EOA with `ether` ETH: no nonce, code or balance before (its address derives from
        the scenario, the role and the chain's height, so runs are deterministic)."""
        for n in range(100):
            address = derived_account(self.name, role, self._salt, n)
            if (self.node.rpc("eth_getTransactionCount", [address, "latest"]) == "0x0"
                    and self.node.rpc("eth_getBalance", [address, "latest"]) == "0x0"
                    and self.node.rpc("eth_getCode", [address, "latest"]) == "0x"):
                break
        else:
            raise RuntimeError(f"{self.name}: no unused address for {role}")
        self.node.rpc("anvil_impersonateAccount", [address])
        self.node.rpc("anvil_setBalance", [address, hex(ether * E)])
        return address

    def send(self, sender: str, to: str | None, data: str, value: int = 0) -> dict:
        tx = {"from": sender, "data": "0x" + data, "gas": hex(SEND_GAS), "value": hex(value)}
        if to:
            tx["to"] = to
        tx_hash = self.node.rpc("eth_sendTransaction", [tx])
        deadline = time.monotonic() + 10
        while (receipt := self.node.rpc("eth_getTransactionReceipt", [tx_hash])) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: {tx_hash} was not mined (is automine off?)")
            time.sleep(0.01)
        if receipt["status"] != "0x1":
            raise RuntimeError(f"{self.name}: {tx_hash} reverted: {self._revert_reason(tx)}")
        self.receipts.append(receipt)
        return receipt

    def _revert_reason(self, tx: dict) -> str:
        try:
            self.node.rpc("eth_call", [tx, "latest"])
        except RuntimeError as exc:
            return str(exc)
        return "(not reproducible by eth_call)"

    def transact(self, sender: str, to: str, signature: str, *args: Any, value: int = 0) -> str:
        return self.send(sender, to, calldata(signature, *args), value)["transactionHash"]

    def deploy(self, sender: str, contract: str, *args: Any) -> str:
        """Deploy a scenario contract; constructor argument types come from its ABI."""
        built = compiled()[contract]
        inputs = next((e["inputs"] for e in built["abi"] if e["type"] == "constructor"), [])
        return self.deploy_code(sender, built["bytecode"] + encode([i["type"] for i in inputs], args))

    def deploy_code(self, sender: str, code: str) -> str:
        return self.send(sender, None, code)["contractAddress"].lower()

    def call(self, to: str, signature: str, *args: Any, block: str | int = "latest") -> int:
        tag = hex(block) if isinstance(block, int) else block
        return int(self.node.rpc("eth_call", [{"to": to, "data": "0x" + calldata(signature, *args)}, tag]), 16)

    def token(self, minter: str, name: str, symbol: str) -> str:
        return self.deploy(minter, "ScenarioToken", name, symbol)

    def factory(self, deployer: str) -> str:
        return self.deploy_code(deployer, contracts.creation_code("uniswap-v2-factory") + contracts.word(deployer))

    def pair(self, provider: str, factory: str, token_a: str, amount_a: int, token_b: str, amount_b: int) -> str:
        """A new V2 pair of two ScenarioTokens minted by `provider`, seeded with its liquidity."""
        receipt = self.send(provider, factory, calldata("createPair(address,address)", token_a, token_b))
        pair = _address(receipt["logs"][0]["data"][:66])
        for token, amount in ((token_a, amount_a), (token_b, amount_b)):
            self.transact(provider, token, "mint(address,uint256)", pair, amount)
        self.transact(provider, pair, "mint(address)", provider)
        return pair

    def finish(self, attack: bool, key_txs: tuple[str, ...], roles: dict[str, str]) -> ScenarioRun:
        blocks = [int(r["blockNumber"], 16) for r in self.receipts]
        txs = tuple(r["transactionHash"] for r in self.receipts)
        assert set(key_txs) <= set(txs), "a key transaction must be one the scenario sent"
        return ScenarioRun(self.name, attack, txs, key_txs, {k: v.lower() for k, v in roles.items()},
                           min(blocks), max(blocks))


# ------------------------------------------------------------------------------------------------ attacks


def run_reentrancy_drain(node: AnvilNode) -> ScenarioRun:
    """Three people save 21.5 ETH in ReentrantVault; a new attacker's contract stakes 1 ETH and re-enters
    withdraw() until less than its stake is left (block n+1 after its creation), then he collects (n+2)."""
    s = Session(node, "reentrancy-drain")
    team = s.account("deployer")
    vault = s.deploy(team, "ReentrantVault")
    roles = {"victim": vault, "deployer": team}
    for i, amount in enumerate((10 * E, 7 * E, 9 * E // 2), start=1):
        roles[f"depositor_{i}"] = saver = s.account(f"depositor_{i}", 20)
        s.transact(saver, vault, "deposit()", value=amount)
    attacker = s.account("attacker", 2)
    contract = s.deploy(attacker, "ReentrancyAttacker", vault)
    attack = s.transact(attacker, contract, "attack()", value=E)
    s.transact(attacker, contract, "collect()")
    return s.finish(True, (attack,), {**roles, "attacker": attacker, "attack_contract": contract})


def run_flash_swap_oracle_manipulation(node: AnvilNode) -> ScenarioRun:
    """Lenders supply 500k USD to SpotPriceLending, which prices KGOV by a thin KGOV/USD pair (1k/1k). A new
    attacker deploys SpotOracleAttacker (block n) and in block n+1, in one transaction, flash-swaps 50k USD from
    the deep WETH/USD pair, pumps KGOV, borrows all 500k, dumps the rest of the KGOV, repays with the fee."""
    s = Session(node, "flash-swap-oracle-manipulation")
    team = s.account("deployer", 1_100)
    usd, kgov = s.token(team, "Scenario Dollar", "USD"), s.token(team, "Kamiyo Governance", "KGOV")
    weth = s.deploy(team, "WrappedEther")
    s.transact(team, weth, "deposit()", value=1_000 * E)
    factory = s.factory(team)
    receipt = s.send(team, factory, calldata("createPair(address,address)", weth, usd))
    deep = _address(receipt["logs"][0]["data"][:66])
    s.transact(team, weth, "transfer(address,uint256)", deep, 1_000 * E)
    s.transact(team, usd, "mint(address,uint256)", deep, 3_000_000 * E)
    s.transact(team, deep, "mint(address)", team)
    oracle = s.pair(team, factory, kgov, 1_000 * E, usd, 1_000 * E)
    lending = s.deploy(team, "SpotPriceLending", kgov, usd, oracle)
    roles = {"victim": lending, "lending": lending, "pool": deep, "oracle_pair": oracle, "factory": factory,
             "debt_token": usd, "collateral_token": kgov, "weth": weth, "deployer": team}
    for i, amount in enumerate((200_000 * E, 200_000 * E, 100_000 * E), start=1):
        roles[f"lender_{i}"] = lender = s.account(f"lender_{i}")
        s.transact(team, usd, "mint(address,uint256)", lender, amount)
        s.transact(lender, usd, "approve(address,uint256)", lending, amount)
        s.transact(lender, lending, "supply(uint256)", amount)
    attacker = s.account("attacker", 1)
    contract = s.deploy(attacker, "SpotOracleAttacker", deep, oracle, lending)
    attack = s.transact(attacker, contract, "attack(uint256)", 50_000 * E)
    return s.finish(True, (attack,), {**roles, "attacker": attacker, "attack_contract": contract})


def run_initializer_takeover(node: AnvilNode) -> ScenarioRun:
    """Members put 28 ETH and 60k DAO tokens in a CommunityTreasury whose initialize() was never called; a new
    attacker calls initialize(himself), then withdrawAll and sweep, one transaction each."""
    s = Session(node, "initializer-takeover")
    team = s.account("deployer")
    treasury = s.deploy(team, "CommunityTreasury")
    dao = s.token(team, "Scenario DAO", "SDAO")
    roles = {"victim": treasury, "token": dao, "deployer": team}
    for i, (ether, tokens) in enumerate(((15, 30_000), (8, 20_000), (5, 10_000)), start=1):
        roles[f"depositor_{i}"] = member = s.account(f"depositor_{i}", 20)
        s.transact(team, dao, "mint(address,uint256)", member, tokens * E)
        s.transact(member, treasury, "deposit()", value=ether * E)
        s.transact(member, dao, "approve(address,uint256)", treasury, tokens * E)
        s.transact(member, treasury, "depositToken(address,uint256)", dao, tokens * E)
    attacker = s.account("attacker", 1)
    s.transact(attacker, treasury, "initialize(address)", attacker)
    ether = s.transact(attacker, treasury, "withdrawAll(address)", attacker)
    tokens = s.transact(attacker, treasury, "sweep(address,address)", dao, attacker)
    return s.finish(True, (ether, tokens), {**roles, "attacker": attacker})


def _proxied_vault(s: Session, team: str, token: str) -> tuple[str, str, str]:
    """VaultV1 behind OpenZeppelin 3.4.2's TransparentUpgradeableProxy administered by a ProxyAdmin owned by
    `team`: (proxy, proxy admin, implementation)."""
    implementation = s.deploy(team, "VaultV1")
    admin = s.deploy_code(team, oz_creation("ProxyAdmin"))
    init = calldata("initialize(address,address)", team, token)
    proxy = s.deploy_code(team, oz_creation("TransparentUpgradeableProxy")
                          + encode(["address", "address", "bytes"], [implementation, admin, init]))
    return proxy, admin, implementation


def _vault_deposits(s: Session, team: str, proxy: str, token: str, roles: dict[str, str]) -> None:
    for i, (ether, tokens) in enumerate(((12, 40_000), (6, 25_000), (3, 5_000)), start=1):
        roles[f"depositor_{i}"] = user = s.account(f"depositor_{i}", 20)
        s.transact(team, token, "mint(address,uint256)", user, tokens * E)
        s.transact(user, proxy, "deposit()", value=ether * E)
        s.transact(user, token, "approve(address,uint256)", proxy, tokens * E)
        s.transact(user, proxy, "depositToken(uint256)", tokens * E)


def run_malicious_upgrade(node: AnvilNode) -> ScenarioRun:
    """Users keep 21 ETH and 70k tokens in a proxied VaultV1. The ProxyAdmin owner's key is stolen: a new
    attacker deploys VaultDrainer, sends ProxyAdmin.upgrade(proxy, drainer) with the stolen key ("admin_owner")
    and, in the next block, drain(token) from his own EOA."""
    s = Session(node, "malicious-upgrade")
    team = s.account("deployer")
    token = s.token(team, "Scenario Stable", "SSTB")
    proxy, admin, implementation = _proxied_vault(s, team, token)
    roles = {"victim": proxy, "proxy": proxy, "proxy_admin": admin, "admin_owner": team,
             "implementation": implementation, "token": token, "deployer": team}
    _vault_deposits(s, team, proxy, token, roles)
    attacker = s.account("attacker", 1)
    drainer = s.deploy(attacker, "VaultDrainer", attacker)
    s.transact(team, admin, "upgrade(address,address)", proxy, drainer)  # signed with the stolen key
    drain = s.transact(attacker, proxy, "drain(address)", token)
    return s.finish(True, (drain,), {**roles, "attacker": attacker, "attack_contract": drainer})


ATTACKS: dict[str, Callable[[AnvilNode], ScenarioRun]] = {
    "reentrancy-drain": run_reentrancy_drain,
    "flash-swap-oracle-manipulation": run_flash_swap_oracle_manipulation,
    "initializer-takeover": run_initializer_takeover,
    "malicious-upgrade": run_malicious_upgrade,
}


# ---------------------------------------------------------------------------------------------- negatives


def _amount_out(amount: int, reserve_in: int, reserve_out: int) -> int:
    return amount * 997 * reserve_out // (reserve_in * 1000 + amount * 997)


def _amount_in(wanted: int, reserve_in: int, reserve_out: int) -> int:
    return reserve_in * wanted * 1000 // ((reserve_out - wanted) * 997) + 1


def best_arbitrage(cheap: tuple[int, int], dear: tuple[int, int]) -> tuple[int, int]:
    """(amount of the token to borrow from `cheap`, profit in the other token) maximising FlashArbitrage's profit,
    for reserves given as (token, other) in each pair; exact integer V2 arithmetic, ternary search."""
    def profit(amount: int) -> int:
        return _amount_out(amount, dear[0], dear[1]) - _amount_in(amount, cheap[1], cheap[0])

    low, high = 1, cheap[0] // 2
    while high - low > 2:
        a, b = low + (high - low) // 3, high - (high - low) // 3
        low, high = (low, b) if profit(a) > profit(b) else (a, high)
    best = max(range(low, high + 1), key=profit)
    return best, profit(best)


def _reserves(s: Session, pair: str, token: str) -> tuple[int, int]:
    raw = s.node.rpc("eth_call", [{"to": pair, "data": "0x" + calldata("getReserves()")}, "latest"])[2:]
    r0, r1 = int(raw[:64], 16), int(raw[64:128], 16)
    return (r0, r1) if _address(hex(s.call(pair, "token0()"))) == token else (r1, r0)


def run_flash_arbitrage(node: AnvilNode) -> ScenarioRun:
    """Two V2 factories each hold a SUSD/SGLD pair at 1,000 SUSD per SGLD. A trader buys SGLD for 60k SUSD on
    pool A; a bot flash-swaps SGLD out of pool B, sells it in A, repays B in SUSD and keeps a small profit."""
    s = Session(node, "flash-arbitrage")
    team = s.account("deployer")
    susd, sgld = s.token(team, "Scenario Dollar", "SUSD"), s.token(team, "Scenario Gold", "SGLD")
    pool_a = s.pair(team, s.factory(team), susd, 1_000_000 * E, sgld, 1_000 * E)
    pool_b = s.pair(team, s.factory(team), susd, 1_000_000 * E, sgld, 1_000 * E)
    router = s.deploy(team, "MiniRouter")
    trader = s.account("trader")
    s.transact(team, susd, "mint(address,uint256)", trader, 60_000 * E)
    s.transact(trader, susd, "approve(address,uint256)", router, 60_000 * E)
    s.transact(trader, router, "swapExactIn(address,address,uint256,uint256)", pool_a, susd, 60_000 * E, 1)
    actor = s.account("actor", 1)
    bot = s.deploy(actor, "FlashArbitrage")
    amount, _ = best_arbitrage(_reserves(s, pool_b, sgld), _reserves(s, pool_a, sgld))
    arbitrage = s.transact(actor, bot, "run(address,address,address,uint256)", pool_b, pool_a, sgld, amount)
    return s.finish(False, (arbitrage,), {"actor": actor, "arbitrage_contract": bot, "pool_a": pool_a,
                                          "pool_b": pool_b, "trader": trader, "router": router, "token": sgld,
                                          "quote_token": susd, "deployer": team})


def run_sole_depositor_withdraw(node: AnvilNode) -> ScenarioRun:
    """One person is the only depositor of a SafeEtherVault (20 ETH) and of a ShareVault (5k tokens); a day
    later they take everything out of both: each vault's whole balance leaves in one transaction."""
    s = Session(node, "sole-depositor-withdraw")
    team = s.account("deployer")
    ether_vault = s.deploy(team, "SafeEtherVault")
    token = s.token(team, "Scenario Yield", "SYLD")
    share_vault = s.deploy(team, "ShareVault", token)
    depositor = s.account("depositor", 25)
    s.transact(team, token, "mint(address,uint256)", depositor, 5_000 * E)
    s.transact(depositor, ether_vault, "deposit()", value=20 * E)
    s.transact(depositor, token, "approve(address,uint256)", share_vault, 5_000 * E)
    s.transact(depositor, share_vault, "deposit(uint256,address)", 5_000 * E, depositor)
    node.rpc("evm_increaseTime", [DAY])
    node.rpc("evm_mine")
    ether_out = s.transact(depositor, ether_vault, "withdrawAll()")
    shares = s.call(share_vault, "balanceOf(address)", depositor)
    tokens_out = s.transact(depositor, share_vault, "redeem(uint256,address,address)", shares, depositor, depositor)
    return s.finish(False, (ether_out, tokens_out), {"actor": depositor, "depositor": depositor,
                                                    "vault": ether_vault, "share_vault": share_vault,
                                                    "token": token, "deployer": team})


def run_timelock_upgrade(node: AnvilNode) -> ScenarioRun:
    """A proxied VaultV1 with users' funds, its ProxyAdmin owned by OpenZeppelin 3.4.2's TimelockController
    (2-day delay): the team schedules upgrade(proxy, VaultV2), two days pass, the team executes it."""
    s = Session(node, "timelock-upgrade")
    team = s.account("deployer")
    token = s.token(team, "Scenario Stable", "SSTB")
    proxy, admin, implementation = _proxied_vault(s, team, token)
    delay = 2 * DAY
    timelock = s.deploy_code(team, oz_creation("TimelockController")
                             + encode(["uint256", "address[]", "address[]"], [delay, [team], [team]]))
    s.transact(team, admin, "transferOwnership(address)", timelock)
    roles = {"proxy": proxy, "proxy_admin": admin, "timelock": timelock, "implementation": implementation,
             "token": token, "actor": team, "deployer": team}
    _vault_deposits(s, team, proxy, token, roles)
    roles["new_implementation"] = v2 = s.deploy(team, "VaultV2")
    upgrade, zero, salt = calldata("upgrade(address,address)", proxy, v2), "00" * 32, keccak(b"vault-v2").hex()
    s.transact(team, timelock, "schedule(address,uint256,bytes,bytes32,bytes32,uint256)", admin, 0, upgrade,
               zero, salt, delay)
    node.rpc("evm_increaseTime", [delay + 60])
    node.rpc("evm_mine")
    execute = s.transact(team, timelock, "execute(address,uint256,bytes,bytes32,bytes32)", admin, 0, upgrade,
                         zero, salt)
    return s.finish(False, (execute,), roles)


NEGATIVES: dict[str, Callable[[AnvilNode], ScenarioRun]] = {
    "flash-arbitrage": run_flash_arbitrage,
    "sole-depositor-withdraw": run_sole_depositor_withdraw,
    "timelock-upgrade": run_timelock_upgrade,
}


# ------------------------------------------------------------------------------------- ordinary activity


@contextmanager
def _manual_mining(node: AnvilNode) -> Iterator[None]:
    """Automine off for the duration, so many transactions share a block; put back as it was however it ends."""
    automine = node.rpc("anvil_getAutomine")
    node.rpc("evm_setAutomine", [False])
    try:
        yield
    finally:
        node.rpc("evm_setAutomine", [automine])


class Batch:
    """Transactions queued, then sent `per_block` at a time and mined together; all must succeed.

    Each transaction carries an explicit nonce and a gas limit fitted to its kind (a block holds the sum of
    the limits, not of the gas used). Transactions of one sender stay in nonce order within a block; across
    senders anvil may order them otherwise, so no queued call depends on another sender's call in its block."""

    def __init__(self, session: Session, per_block: int) -> None:
        self.session, self.per_block = session, per_block
        self.queued: list[dict] = []
        self.nonces: dict[str, int] = {}

    def add(self, sender: str, to: str, signature: str, *args: Any, value: int = 0, gas: int = 120_000) -> None:
        if sender not in self.nonces:
            self.nonces[sender] = int(self.session.node.rpc("eth_getTransactionCount", [sender, "latest"]), 16)
        self.queued.append({"from": sender, "to": to, "data": "0x" + calldata(signature, *args), "value": hex(value),
                            "gas": hex(gas), "nonce": hex(self.nonces[sender])})
        self.nonces[sender] += 1

    def flush(self) -> None:
        node = self.session.node
        with _manual_mining(node):
            for start in range(0, len(self.queued), self.per_block):
                chunk = self.queued[start : start + self.per_block]
                hashes = [node.rpc("eth_sendTransaction", [tx]) for tx in chunk]
                self._mine(hashes)
        self.queued = []

    def send(self) -> list[str]:
        """Send what is queued without mining (for a node that mines on an interval); the hashes, in order."""
        hashes = [self.session.node.rpc("eth_sendTransaction", [tx]) for tx in self.queued]
        self.queued = []
        return hashes

    def _mine(self, hashes: list[str]) -> None:
        node, wanted, mined = self.session.node, set(hashes), {}
        for _ in range(10):  # more than one block only when the limits overflow the block gas limit
            node.rpc("evm_mine")
            for receipt in node.rpc("eth_getBlockReceipts", ["latest"]) or []:
                mined[receipt["transactionHash"]] = receipt
            if wanted <= mined.keys():
                break
        failed = [h for h in hashes if h not in mined or mined[h]["status"] != "0x1"]
        if failed:
            raise RuntimeError(f"{self.session.name}: {len(failed)} batched transactions failed, first {failed[0]}")
        self.session.receipts.extend(mined[h] for h in hashes)


class OrdinaryTraffic:
    """Benign transactions on a world of their own: ERC-20 transfers among `users` accounts, swaps both ways on
    three V2 pairs, liquidity added and removed, deposits and partial and full withdrawals in a SafeEtherVault,
    WETH wraps and unwraps. Deterministic for a seed. The set-up is mined when the object is made; `queue` adds
    transactions to a batch, to be mined by `Batch.flush` or sent for interval mining by `Batch.send`."""

    KINDS = ["transfer"] * 35 + ["swap"] * 25 + ["add"] * 7 + ["remove"] * 5 + ["deposit"] * 10 \
        + ["withdraw"] * 5 + ["withdraw_all"] * 3 + ["wrap"] * 6 + ["unwrap"] * 4

    def __init__(self, node: AnvilNode, seed: int = 0, users: int = 30, per_block: int = 100) -> None:
        self.rng = random.Random(seed)
        s = self.session = Session(node, "ordinary-activity")
        team = s.account("deployer", 10_000)
        self.tokens = tokens = [s.token(team, f"Ordinary {sym}", sym) for sym in ("ORDA", "ORDB", "ORDC")]
        self.weth, self.router, self.vault = (s.deploy(team, name)
                                              for name in ("WrappedEther", "MiniRouter", "SafeEtherVault"))
        factory = s.factory(team)
        self.pairs = [s.pair(team, factory, tokens[a], 200_000 * E, tokens[b], (a + b + 1) * 100_000 * E)
                      for a, b in ((0, 1), (0, 2), (1, 2))]
        self.pair_tokens = {p: sorted((tokens[a], tokens[b]))
                            for p, (a, b) in zip(self.pairs, ((0, 1), (0, 2), (1, 2)))}
        self.people = [s.account(f"user_{i}", 1_000) for i in range(users)]
        self.batch = Batch(s, per_block)
        for user in self.people:
            for token in tokens:
                self.batch.add(team, token, "mint(address,uint256)", user, 1_000_000 * E, gas=80_000)
            for spender_of in (*tokens, *self.pairs):
                self.batch.add(user, spender_of, "approve(address,uint256)", self.router, 2**256 - 1, gas=60_000)
        self.batch.flush()
        self.saved = dict.fromkeys(self.people, 0)
        self.wrapped = dict.fromkeys(self.people, 0)
        self.providing: set[tuple[str, str]] = set()
        self.roles = {"deployer": team, "factory": factory, "router": self.router, "vault": self.vault,
                      "weth": self.weth, **{f"token_{i}": t for i, t in enumerate(tokens)},
                      **{f"pair_{i}": p for i, p in enumerate(self.pairs)},
                      **{f"user_{i}": u for i, u in enumerate(self.people)}}

    def queue(self, batch: Batch, transactions: int) -> None:
        rng, saved, wrapped, providing = self.rng, self.saved, self.wrapped, self.providing
        router, vault, weth = self.router, self.vault, self.weth
        for _ in range(transactions):
            user, kind = rng.choice(self.people), rng.choice(self.KINDS)
            amount = rng.randint(1, 500) * E // 10
            pair = rng.choice(self.pairs)
            if kind == "remove" and (user, pair) not in providing:
                kind = "add"
            if kind in ("withdraw", "withdraw_all") and not saved[user]:
                kind = "deposit"
            if kind == "unwrap" and not wrapped[user]:
                kind = "wrap"
            if kind == "transfer":
                to = rng.choice([p for p in self.people if p != user])
                batch.add(user, rng.choice(self.tokens), "transfer(address,uint256)", to, amount, gas=80_000)
            elif kind == "swap":
                batch.add(user, router, "swapExactIn(address,address,uint256,uint256)", pair,
                          rng.choice(self.pair_tokens[pair]), amount, 1, gas=200_000)
            elif kind == "add":
                batch.add(user, router, "addLiquidity(address,uint256)", pair, amount, gas=250_000)
                providing.add((user, pair))
            elif kind == "remove":
                share = rng.choice((2_500, 5_000, 10_000))
                batch.add(user, router, "removeLiquidity(address,uint256)", pair, share, gas=250_000)
                if share == 10_000:
                    providing.discard((user, pair))
            elif kind == "deposit":
                batch.add(user, vault, "deposit()", value=amount // 100, gas=80_000)
                saved[user] += amount // 100
            elif kind == "withdraw":
                batch.add(user, vault, "withdraw(uint256)", saved[user] // 2, gas=80_000)
                saved[user] -= saved[user] // 2
            elif kind == "withdraw_all":
                batch.add(user, vault, "withdrawAll()", gas=80_000)
                saved[user] = 0
            elif kind == "wrap":
                batch.add(user, weth, "deposit()", value=amount // 100, gas=80_000)
                wrapped[user] += amount // 100
            else:
                batch.add(user, weth, "withdraw(uint256)", wrapped[user], gas=80_000)
                wrapped[user] = 0


def ordinary_activity(node: AnvilNode, transactions: int = 1000, seed: int = 0, per_block: int = 100,
                      users: int = 30) -> ScenarioRun:
    """At least `transactions` benign transactions of `OrdinaryTraffic`, about `per_block` to a block, after its
    set-up. key_txs is empty: nothing here should look like an attack."""
    traffic = OrdinaryTraffic(node, seed, users, per_block)
    traffic.queue(traffic.batch, transactions)
    traffic.batch.flush()
    return traffic.session.finish(False, (), traffic.roles)
