"""The on-chain scenarios do what they say: checked on the chain itself (balances before and after the key
transaction, the events and calls in it, storage slots), never through the scenario code's own bookkeeping."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest
from eth_hash.auto import keccak

from tests.support import npm_artifacts, scenarios
from tests.support.anvil import AnvilNode, anvil, require_anvil
from tests.support.scenarios import E, IMPLEMENTATION_SLOT, ScenarioRun, calldata

pytestmark = pytest.mark.npm

ZERO = "0x" + "00" * 20


def topic(signature: str) -> str:
    return "0x" + keccak(signature.encode()).hex()


def word(address: str) -> str:
    return "0x" + address.removeprefix("0x").rjust(64, "0")


SWAP = topic("Swap(address,uint256,uint256,uint256,uint256,address)")
SYNC = topic("Sync(uint112,uint112)")
TRANSFER = topic("Transfer(address,address,uint256)")
UNISWAP_V2_CALL = "0x" + keccak(b"uniswapV2Call(address,uint256,uint256,bytes)")[:4].hex()


@pytest.fixture(scope="module")
def node() -> Iterator[AnvilNode]:
    require_anvil()
    with anvil(31337) as running:
        yield running


@pytest.fixture(scope="module")
def runs(node: AnvilNode) -> dict[str, ScenarioRun]:
    """Every attack and negative, once, on one node: each after the ones before it."""
    try:
        return {name: run(node) for name, run in {**scenarios.ATTACKS, **scenarios.NEGATIVES}.items()}
    except npm_artifacts.ArtifactUnavailable as exc:
        pytest.skip(str(exc))


class Chain:
    """Read-only views of the node for the assertions."""

    def __init__(self, node: AnvilNode) -> None:
        self.node = node

    def receipt(self, tx: str) -> dict:
        return self.node.rpc("eth_getTransactionReceipt", [tx])

    def block_of(self, tx: str) -> int:
        return int(self.receipt(tx)["blockNumber"], 16)

    def ether(self, address: str, block: int) -> int:
        return int(self.node.rpc("eth_getBalance", [address, hex(block)]), 16)

    def call(self, to: str, signature: str, *args, block: int | str = "latest") -> int:
        tag = hex(block) if isinstance(block, int) else block
        return int(self.node.rpc("eth_call", [{"to": to, "data": "0x" + calldata(signature, *args)}, tag]), 16)

    def tokens(self, token: str, holder: str, block: int) -> int:
        return self.call(token, "balanceOf(address)", holder, block=block)

    def logs(self, tx: str, emitter: str, topic0: str) -> list[dict]:
        return [log for log in self.receipt(tx)["logs"] if log["address"] == emitter and log["topics"][0] == topic0]

    def calls(self, tx: str) -> list[dict]:
        return [t["action"] for t in self.node.rpc("trace_transaction", [tx]) if t["type"] == "call"]

    def slot(self, address: str, slot: str, block: int) -> str:
        return "0x" + self.node.rpc("eth_getStorageAt", [address, slot, hex(block)])[-40:]

    def timestamp(self, block: int) -> int:
        return int(self.node.rpc("eth_getBlockByNumber", [hex(block), False])["timestamp"], 16)

    def price(self, pair: str, token: str, block: int) -> float:
        """The other token per `token` in a V2 pair, from its reserves."""
        raw = self.node.rpc("eth_call", [{"to": pair, "data": "0x0902f1ac"}, hex(block)])[2:]
        r0, r1 = int(raw[:64], 16), int(raw[64:128], 16)
        token0 = "0x" + hex(self.call(pair, "token0()", block=block))[2:].rjust(40, "0")
        return r1 / r0 if token0 == token else r0 / r1


@pytest.fixture(scope="module")
def chain(node: AnvilNode) -> Chain:
    return Chain(node)


def test_every_scenario_records_successful_transactions_and_fresh_attackers(runs, chain):
    assert set(runs) == set(scenarios.ATTACKS) | set(scenarios.NEGATIVES)
    for name, run in runs.items():
        assert run.name == name and run.attack == (name in scenarios.ATTACKS)
        receipts = [chain.receipt(tx) for tx in run.txs]
        assert all(r["status"] == "0x1" for r in receipts), name
        blocks = [int(r["blockNumber"], 16) for r in receipts]
        assert (run.first_block, run.last_block) == (min(blocks), max(blocks)) and blocks == sorted(blocks)
        assert run.key_txs and set(run.key_txs) <= set(run.txs)
        assert all(re.fullmatch(r"0x[0-9a-f]{40}", a) for a in run.roles.values()), name
        if run.attack:  # a new EOA: its first transaction in the scenario is its first ever
            first = next(tx for tx in run.txs if chain.receipt(tx)["from"] == run.roles["attacker"])
            assert chain.node.rpc("eth_getTransactionByHash", [first])["nonce"] == "0x0", name
    ranges = sorted((r.first_block, r.last_block) for r in runs.values())
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))  # run one after another, each its own blocks


def test_reentrancy_drain_empties_the_vault_through_nested_withdrawals(runs, chain):
    run = runs["reentrancy-drain"]
    vault, attacker, contract = run.roles["victim"], run.roles["attacker"], run.roles["attack_contract"]
    block = chain.block_of(run.key_txs[0])
    honest = chain.ether(vault, block - 1)
    assert honest == 43 * E // 2
    assert chain.ether(vault, block) < honest // 10
    withdrawn = chain.logs(run.key_txs[0], vault, topic("Withdrawn(address,uint256)"))
    assert len(withdrawn) > 10 and {log["topics"][1] for log in withdrawn} == {word(contract)}
    vault_calls = [c for c in chain.calls(run.key_txs[0]) if c["to"] == vault and c["from"] == contract]
    assert len(vault_calls) == len(withdrawn) + 1  # the deposit, then one withdraw() per nested payment
    assert chain.ether(attacker, run.last_block) - chain.ether(attacker, block - 1) > honest * 9 // 10
    assert chain.call(vault, "balances(address)", run.roles["depositor_1"]) == 10 * E  # still owed, not there


def test_flash_swap_oracle_manipulation_borrows_the_lending_pool_dry_in_one_transaction(runs, chain):
    run = runs["flash-swap-oracle-manipulation"]
    attack, roles = run.key_txs[0], run.roles
    usd, lending, block = roles["debt_token"], roles["lending"], chain.block_of(attack)
    cash = chain.tokens(usd, lending, block - 1)
    assert cash == 500_000 * E and chain.tokens(usd, lending, block) == 0
    assert chain.tokens(usd, roles["attacker"], block) > cash * 9 // 10
    # The flash swap: the deep pair calls back into the attack contract before it is repaid.
    assert any(c["from"] == roles["pool"] and c["to"] == roles["attack_contract"]
               and c["input"].startswith(UNISWAP_V2_CALL) for c in chain.calls(attack))
    assert chain.tokens(usd, roles["pool"], block) > chain.tokens(usd, roles["pool"], block - 1)  # fee paid
    # The oracle pair's collateral price went up many times over within the transaction.
    before = chain.price(roles["oracle_pair"], roles["collateral_token"], block - 1)
    token0_is_collateral = roles["collateral_token"] < usd
    peaks = []
    for log in chain.logs(attack, roles["oracle_pair"], SYNC):
        r0, r1 = int(log["data"][2:66], 16), int(log["data"][66:130], 16)
        peaks.append(r1 / r0 if token0_is_collateral else r0 / r1)
    assert len(chain.logs(attack, roles["oracle_pair"], SWAP)) == 2 and max(peaks) > 100 * before
    created = next(r for r in map(chain.receipt, run.txs) if r["contractAddress"] == roles["attack_contract"])
    assert int(created["blockNumber"], 16) == block - 1 and created["from"] == roles["attacker"]


def test_initializer_takeover_makes_the_attacker_owner_and_empties_the_treasury(runs, chain):
    run = runs["initializer-takeover"]
    treasury, attacker, token = run.roles["victim"], run.roles["attacker"], run.roles["token"]
    takeovers = [tx for tx in run.txs
                 if chain.logs(tx, treasury, topic("OwnershipTransferred(address,address)"))]
    assert len(takeovers) == 1 and chain.receipt(takeovers[0])["from"] == attacker
    assert chain.logs(takeovers[0], treasury, topic("OwnershipTransferred(address,address)"))[0]["topics"][1:] == [
        word(ZERO), word(attacker)]
    before = chain.block_of(run.key_txs[0]) - 1
    assert chain.ether(treasury, before) == 28 * E and chain.tokens(token, treasury, before) == 60_000 * E
    assert chain.ether(treasury, run.last_block) == 0 and chain.tokens(token, treasury, run.last_block) == 0
    assert chain.ether(attacker, run.last_block) - chain.ether(attacker, before) > 27 * E
    assert chain.tokens(token, attacker, run.last_block) == 60_000 * E


def test_malicious_upgrade_points_the_proxy_at_a_drainer_that_takes_everything(runs, chain):
    run = runs["malicious-upgrade"]
    roles, drain = run.roles, run.key_txs[0]
    proxy, attacker, token = roles["proxy"], roles["attacker"], roles["token"]
    block = chain.block_of(drain)
    assert chain.slot(proxy, IMPLEMENTATION_SLOT, block - 2) == roles["implementation"]
    assert chain.slot(proxy, IMPLEMENTATION_SLOT, block - 1) == roles["attack_contract"]
    upgrade = next(tx for tx in run.txs if chain.block_of(tx) == block - 1)
    assert chain.receipt(upgrade)["from"] == roles["admin_owner"]
    assert [log["topics"][1] for log in chain.logs(upgrade, proxy, topic("Upgraded(address)"))] == [
        word(roles["attack_contract"])]
    assert chain.ether(proxy, block - 1) == 21 * E and chain.tokens(token, proxy, block - 1) == 70_000 * E
    assert chain.ether(proxy, block) == 0 and chain.tokens(token, proxy, block) == 0
    assert chain.ether(attacker, block) - chain.ether(attacker, block - 1) > 20 * E
    assert chain.tokens(token, attacker, block) == 70_000 * E


def test_flash_arbitrage_earns_a_little_and_brings_the_pools_together(runs, chain):
    run = runs["flash-arbitrage"]
    roles, arbitrage = run.roles, run.key_txs[0]
    gold, dollar, block = roles["token"], roles["quote_token"], chain.block_of(arbitrage)

    def gap(at: int) -> float:
        a, b = chain.price(roles["pool_a"], gold, at), chain.price(roles["pool_b"], gold, at)
        return abs(a - b) / min(a, b)

    assert gap(block - 1) > 0.1 and gap(block) < gap(block - 1) / 10
    profit = chain.tokens(dollar, roles["actor"], block) - chain.tokens(dollar, roles["actor"], block - 1)
    pooled = sum(chain.tokens(dollar, roles[p], block - 1) for p in ("pool_a", "pool_b"))
    assert 0 < profit < pooled // 100
    assert any(c["from"] == roles["pool_b"] and c["to"] == roles["arbitrage_contract"]
               and c["input"].startswith(UNISWAP_V2_CALL) for c in chain.calls(arbitrage))
    for pool in ("pool_a", "pool_b"):  # nobody lost: each pool's constant product only grew (fees)
        k = [chain.tokens(gold, roles[pool], at) * chain.tokens(dollar, roles[pool], at) for at in (block - 1, block)]
        assert k[1] > k[0]


def test_sole_depositor_withdraw_returns_everything_to_the_only_depositor(runs, chain):
    run = runs["sole-depositor-withdraw"]
    roles = run.roles
    vault, shares, token, depositor = roles["vault"], roles["share_vault"], roles["token"], roles["depositor"]
    deposits = chain.node.rpc("eth_getLogs", [{"address": [vault, shares], "fromBlock": hex(run.first_block),
                                               "toBlock": hex(run.last_block)}])
    depositors = {log["topics"][1] for log in deposits if log["topics"][0] in (
        topic("Deposited(address,uint256)"), topic("Deposit(address,address,uint256,uint256)"))}
    assert depositors == {word(depositor)}
    ether_out, tokens_out = run.key_txs
    block = chain.block_of(ether_out)
    assert chain.ether(vault, block - 1) == 20 * E and chain.ether(vault, block) == 0
    receipt = chain.receipt(ether_out)
    fee = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
    assert chain.ether(depositor, block) - chain.ether(depositor, block - 1) == 20 * E - fee
    block = chain.block_of(tokens_out)
    assert chain.tokens(token, shares, block - 1) == 5_000 * E and chain.tokens(token, shares, block) == 0
    assert chain.tokens(token, depositor, block) == 5_000 * E


def test_timelock_upgrade_executes_after_the_delay_and_moves_no_funds(runs, chain):
    run = runs["timelock-upgrade"]
    roles, execute = run.roles, run.key_txs[0]
    proxy, timelock, admin = roles["proxy"], roles["timelock"], roles["proxy_admin"]
    scheduled = [log for tx in run.txs for log in chain.logs(tx, timelock, topic(
        "CallScheduled(bytes32,uint256,address,uint256,bytes,bytes32,uint256)"))]
    executed = chain.logs(execute, timelock, topic("CallExecuted(bytes32,uint256,address,uint256,bytes)"))
    assert len(scheduled) == len(executed) == 1 and scheduled[0]["topics"][1] == executed[0]["topics"][1]
    assert executed[0]["data"][2:66] == word(admin)[2:]  # the call's target: the ProxyAdmin
    delay = chain.call(timelock, "getMinDelay()")
    block = chain.block_of(execute)
    assert delay == 2 * 86_400
    assert chain.timestamp(block) - chain.timestamp(int(scheduled[0]["blockNumber"], 16)) >= delay
    assert chain.slot(proxy, IMPLEMENTATION_SLOT, block - 1) == roles["implementation"]
    assert chain.slot(proxy, IMPLEMENTATION_SLOT, block) == roles["new_implementation"]
    assert [log["topics"][1] for log in chain.logs(execute, proxy, topic("Upgraded(address)"))] == [
        word(roles["new_implementation"])]
    assert chain.call(proxy, "version()") == 2
    assert "0x" + hex(chain.call(admin, "owner()"))[2:].rjust(40, "0") == timelock
    with pytest.raises(RuntimeError, match="revert"):  # the team cannot skip the timelock
        chain.node.rpc("eth_call", [{"from": roles["deployer"], "to": admin,
                                     "data": "0x" + calldata("upgrade(address,address)", proxy, admin)}, "latest"])
    assert chain.ether(proxy, block - 1) == chain.ether(proxy, block) == 21 * E
    assert chain.tokens(roles["token"], proxy, block) == 70_000 * E
    assert not [log for log in chain.receipt(execute)["logs"] if log["topics"][0] == TRANSFER]


def test_ordinary_activity_mines_a_thousand_varied_transactions_a_hundred_to_a_block(runs, node, chain):
    run = scenarios.ordinary_activity(node, transactions=1000, per_block=100)
    sent = set(run.txs)
    assert not run.attack and len(sent) >= 1000 + 30 * 9  # the activity and its set-up (mints, approvals)
    per_block, logs = [], []
    for number in range(run.first_block, run.last_block + 1):
        ours = [r for r in node.rpc("eth_getBlockReceipts", [hex(number)]) if r["transactionHash"] in sent]
        assert all(r["status"] == "0x1" for r in ours)
        per_block.append(len(ours))
        logs += [log for r in ours for log in r["logs"]]
    assert sum(per_block) == len(sent) and max(per_block) == 100 and per_block.count(100) >= 10
    seen = {log["topics"][0] for log in logs}
    for event in ("Swap(address,uint256,uint256,uint256,uint256,address)", "Mint(address,uint256,uint256)",
                  "Burn(address,uint256,uint256,address)", "Deposit(address,uint256)", "Withdrawal(address,uint256)",
                  "Deposited(address,uint256)", "Withdrawn(address,uint256)", "Transfer(address,address,uint256)"):
        assert topic(event) in seen, event
    swaps = [log for log in logs if log["topics"][0] == SWAP]
    assert any(int(s["data"][2:66], 16) for s in swaps) and any(int(s["data"][66:130], 16) for s in swaps)
    vault = run.roles["vault"]
    withdrawals = [log for log in logs if log["address"] == vault and log["topics"][0] == topic(
        "Withdrawn(address,uint256)")]
    assert len({log["topics"][1] for log in withdrawals}) >= 5  # several users took money out


def test_a_scenario_runs_again_on_the_same_node_with_new_accounts(runs, node):
    again = scenarios.run_reentrancy_drain(node)
    first = runs["reentrancy-drain"]
    assert again.first_block > first.last_block and again.attack
    assert not set(again.roles.values()) & set(first.roles.values())


def test_a_warm_compile_runs_no_node(runs, monkeypatch):
    scenarios.compiled.cache_clear()

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"a cached compile ran a process: {args}")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    assert {"ReentrantVault", "SpotOracleAttacker", "VaultDrainer", "WrappedEther"} <= set(scenarios.compiled())
