"""A held-out evaluation of the transaction analyzers: attacks and look-alikes they were not tuned on.

The scenarios of tests/support/heldout.py are played on one anvil, each after the other; then the daemon follows
the chain from genesis with every built-in analyzer at its defaults and the scenarios' protocol contracts under
`[[watch]]`, as test_attack_scenarios does for the tuned set. First each scenario is checked to do on chain what it
says (balances, events and calls of its key transaction). Then:
- every look-alike must produce nothing high or critical anywhere in its blocks (set-up included);
- an attack the daemon reports as a high or critical `exploit` on a key transaction is asserted to stay reported;
  an attack it misses is a strict xfail whose reason names the mechanism the analyzers do not see, so the gap is
  on record and the test turns red (XPASS) the day it is closed.
The report test prints, per scenario, every finding the daemon made in its blocks (run with -s to read it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from eth_hash.auto import keccak

from tests.support import npm_artifacts
from tests.support.anvil import AnvilNode, anvil, require_anvil
from tests.support.daemon import follow_scenarios
from tests.support.heldout import HELDOUT_ATTACKS, HELDOUT_NEGATIVES
from tests.support.scenarios import E, ScenarioRun, calldata, encode

pytestmark = pytest.mark.npm

CHAIN_ID = 31_337
LOUD = ("high", "critical")


def topic(signature: str) -> str:
    return "0x" + keccak(signature.encode()).hex()


def selector(signature: str) -> str:
    return "0x" + keccak(signature.encode())[:4].hex()


SYNC = topic("Sync(uint112,uint112)")
SWAP = topic("Swap(address,uint256,uint256,uint256,uint256,address)")
UNISWAP_V2_CALL = selector("uniswapV2Call(address,uint256,uint256,bytes)")


# -------------------------------------------------------------------------------------------- the chain


@pytest.fixture(scope="module")
def node() -> Iterator[AnvilNode]:
    require_anvil()
    with anvil(CHAIN_ID) as running:
        yield running


@pytest.fixture(scope="module")
def played(node, tmp_path_factory) -> tuple[dict[str, ScenarioRun], list[dict]]:
    """(runs by name, active findings) after the daemon followed every held-out scenario on one chain."""
    try:
        runs = {name: play(node) for name, play in {**HELDOUT_ATTACKS, **HELDOUT_NEGATIVES}.items()}
    except npm_artifacts.ArtifactUnavailable as exc:
        pytest.skip(str(exc))
    findings, _ = follow_scenarios(node, tmp_path_factory.mktemp("heldout"), runs.values())
    return runs, findings


class Chain:
    """Read-only views of the node for the on-chain checks."""

    def __init__(self, node: AnvilNode) -> None:
        self.node = node

    def receipt(self, tx: str) -> dict:
        return self.node.rpc("eth_getTransactionReceipt", [tx])

    def block_of(self, tx: str) -> int:
        return int(self.receipt(tx)["blockNumber"], 16)

    def call(self, to: str, signature: str, *args, block: int | str = "latest") -> int:
        tag = hex(block) if isinstance(block, int) else block
        return int(self.node.rpc("eth_call", [{"to": to, "data": "0x" + calldata(signature, *args)}, tag]), 16)

    def tokens(self, token: str, holder: str, block: int) -> int:
        return self.call(token, "balanceOf(address)", holder, block=block)

    def around(self, tx: str, token: str, holder: str) -> tuple[int, int]:
        """The holder's balance of `token` before and after the transaction (each key transaction has its own
        block: the scenarios send one at a time)."""
        block = self.block_of(tx)
        return self.tokens(token, holder, block - 1), self.tokens(token, holder, block)

    def logs(self, tx: str, emitter: str, topic0: str) -> list[dict]:
        return [log for log in self.receipt(tx)["logs"] if log["address"] == emitter and log["topics"][0] == topic0]

    def calls(self, tx: str) -> list[dict]:
        return [t["action"] for t in self.node.rpc("trace_transaction", [tx]) if t["type"] == "call"]

    def calls_to(self, tx: str, to: str, signature: str) -> list[dict]:
        head = selector(signature)
        return [c for c in self.calls(tx) if c["to"] == to and c["input"].startswith(head)]

    def nonce(self, account: str, block: int) -> int:
        return int(self.node.rpc("eth_getTransactionCount", [account, hex(block)]), 16)

    def prices(self, tx: str, pair: str) -> list[float]:
        """The pair's price (reserve1 / reserve0) before the transaction, then after each of its Syncs in it."""
        block = self.block_of(tx)
        raw = self.node.rpc("eth_call", [{"to": pair, "data": "0x0902f1ac"}, hex(block - 1)])[2:]
        out = [int(raw[64:128], 16) / int(raw[:64], 16)]
        for log in self.logs(tx, pair, SYNC):
            r0, r1 = int(log["data"][2:66], 16), int(log["data"][66:130], 16)
            out.append(r1 / r0)
        return out


@pytest.fixture(scope="module")
def chain(node: AnvilNode) -> Chain:
    return Chain(node)


def run_of(played, name: str) -> ScenarioRun:
    return played[0][name]


# ------------------------------------------------------------------------- the scenarios do what they say


def test_every_scenario_sent_successful_transactions_from_fresh_attackers(played, chain):
    runs, _ = played
    assert set(runs) == set(HELDOUT_ATTACKS) | set(HELDOUT_NEGATIVES)
    for name, run in runs.items():
        assert all(chain.receipt(tx)["status"] == "0x1" for tx in run.txs), name
        assert run.key_txs and set(run.key_txs) <= set(run.txs) and run.attack == (name in HELDOUT_ATTACKS)
        if run.attack:
            first = next(tx for tx in run.txs if chain.receipt(tx)["from"] == run.roles["attacker"])
            assert chain.node.rpc("eth_getTransactionByHash", [first])["nonce"] == "0x0", name
    ranges = sorted((r.first_block, r.last_block) for r in runs.values())
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))


def test_erc777_style_reentrancy_reenters_the_vault_through_the_token_hook(played, chain):
    run = run_of(played, "erc777-style-reentrancy")
    [attack] = run.key_txs
    vault, token, attacker, contract = (run.roles[k] for k in ("vault", "token", "attacker", "attack_contract"))
    held_before, held_after = chain.around(attack, token, vault)
    got_before, got_after = chain.around(attack, token, attacker)
    assert held_before == 21_500 * E and held_after < 1_000 * E
    assert got_before == 1_000 * E and got_after - got_before > 20_000 * E  # paid out to him in the same tx
    withdrawals = chain.calls_to(attack, vault, "withdraw()")
    hooks = chain.calls_to(attack, contract, "tokensReceived(address,address,uint256)")
    assert len(withdrawals) >= 20 and len(hooks) >= len(withdrawals) - 1  # each re-entry came from the hook
    assert {c["from"] for c in withdrawals} == {contract}
    # the vault still owes every saver what they put in, and holds less than one stake
    assert chain.call(vault, "balances(address)", run.roles["depositor_1"]) == 10_000 * E


def test_own_capital_price_manipulation_uses_no_loan_and_borrows_the_market_dry(played, chain):
    run = run_of(played, "own-capital-price-manipulation")
    [attack] = run.key_txs
    usd, market, pair, attacker = (run.roles[k] for k in ("debt_token", "lending", "pair", "attacker"))
    before, after = chain.around(attack, usd, attacker)
    assert before == 200_000 * E and after > before + 250_000 * E
    assert chain.around(attack, usd, market) == (297_000 * E, 0)
    calls = chain.calls(attack)
    assert not [c for c in calls if c["input"].startswith(UNISWAP_V2_CALL)]  # no flash swap
    swaps = [c for c in calls if c["to"] == pair and c["input"].startswith(selector(
        "swap(uint256,uint256,address,bytes)"))]
    assert len(swaps) == 2 and all(c["input"].endswith("80" + "0" * 64) for c in swaps)  # both with empty data
    prices = chain.prices(attack, pair)  # USD per KGOV or its inverse: either way pushed far, then back
    assert max(prices) / min(prices) > 50


def test_arbitrary_call_drain_empties_the_users_wallets_not_the_aggregator(played, chain):
    run = run_of(played, "arbitrary-call-drain")
    [drain] = run.key_txs
    usd, aggregator, attacker = run.roles["token"], run.roles["aggregator"], run.roles["attacker"]
    users = [run.roles[f"user_{i}"] for i in range(1, 5)]
    held = [chain.around(drain, usd, u) for u in users]
    assert all(before > 0 and after == 0 for before, after in held)
    got = chain.around(drain, usd, attacker)
    assert got[1] - got[0] == sum(before for before, _ in held) == 104_000 * E
    assert chain.around(drain, usd, aggregator) == (0, 0)
    pulls = chain.calls_to(drain, usd, "transferFrom(address,address,uint256)")
    assert {c["from"] for c in pulls} == {aggregator}
    assert {"0x" + c["input"][34:74] for c in pulls} == set(users)


def test_signature_bypass_mints_without_a_proof_and_dumps_into_the_pool(played, chain):
    run = run_of(played, "signature-bypass-mint-and-dump")
    [dump] = run.key_txs
    bridge, bkam, usd, pool = (run.roles[k] for k in ("bridge", "bridged_token", "quote_token", "pool"))
    block = chain.block_of(dump)
    assert chain.call(bkam, "totalSupply()", block=block - 1) == 14_000 * E
    assert chain.call(bkam, "totalSupply()", block=block) == 1_014_000 * E
    forged = encode(["uint256", "address", "uint256"], [7_777, run.roles["attack_contract"], 1_000_000 * E])
    assert chain.call(bridge, "provenRoot(bytes32)", keccak(bytes.fromhex(forged)).hex(), block=block) == 0
    assert not chain.calls_to(dump, bridge, "prove(bytes,bytes32[],uint256)")
    pool_before, pool_after = chain.around(dump, usd, pool)
    assert pool_before == 500_000 * E and pool_after < pool_before // 50
    got = chain.around(dump, usd, run.roles["attacker"])
    assert got[1] - got[0] == pool_before - pool_after


def test_first_depositor_inflation_gives_the_victims_no_shares(played, chain):
    run = run_of(played, "first-depositor-inflation")
    redeem = run.key_txs[-1]  # the victims' deposits, then the redeem
    vault, token, attacker = run.roles["vault"], run.roles["token"], run.roles["attacker"]
    deposit = topic("Deposit(address,address,uint256,uint256)")
    for i in (1, 2):
        user = run.roles[f"depositor_{i}"]
        [tx] = [t for t in run.txs if chain.receipt(t)["from"] == user and chain.logs(t, vault, deposit)]
        [log] = chain.logs(tx, vault, deposit)
        assert int(log["data"][2:66], 16) > 0 and int(log["data"][66:130], 16) == 0  # assets in, no shares
        assert chain.tokens(vault, user, chain.block_of(tx)) == 0
    assert chain.around(redeem, token, vault) == (18_000 * E + 1, 0)
    before, after = chain.around(redeem, token, attacker)
    assert after - before == 18_000 * E + 1  # his 1 wei and 10k donation back, and the victims' 8k
    assert chain.call(vault, "totalSupply()", block=chain.block_of(redeem)) == 0


def test_flash_loan_liquidation_repays_half_an_unhealthy_debt_for_a_bonus(played, chain):
    run = run_of(played, "flash-loan-liquidation")
    [liquidation] = run.key_txs
    market, kgov, usd, borrower = (run.roles[k] for k in ("lending", "collateral_token", "debt_token", "borrower_1"))
    block = chain.block_of(liquidation)
    assert chain.call(market, "debtOf(address)", borrower, block=block - 1) == 72_000 * E
    assert chain.call(market, "debtOf(address)", borrower, block=block) == 36_000 * E
    assert chain.call(market, "collateralOf(address)", borrower, block=block) == 5_500 * E
    value = chain.call(market, "collateralValue(address)", borrower, block=block - 1)
    assert 72_000 * E * 10_000 > value * 8_000  # unhealthy at the feed's price before the liquidation
    assert [c for c in chain.calls(liquidation) if c["to"] == run.roles["liquidator_contract"]
            and c["from"] == run.roles["flash_pair"] and c["input"].startswith(UNISWAP_V2_CALL)]
    profit = chain.around(liquidation, usd, run.roles["actor"])
    assert 1_000 * E < profit[1] - profit[0] < 5_000 * E
    lost = chain.around(liquidation, kgov, market)
    assert lost[0] - lost[1] == 4_500 * E and lost[0] == 24_000 * E


def test_multi_hop_swap_moves_each_pool_ten_to_thirty_percent_one_way(played, chain):
    run = run_of(played, "multi-hop-aggregator-swap")
    [swap] = run.key_txs
    for i in (1, 2, 3):
        prices = chain.prices(swap, run.roles[f"pair_{i}"])
        assert len(prices) == 2  # one trade per pool
        move = max(prices) / min(prices) - 1
        assert 0.10 <= move <= 0.30, (i, move)
        assert len(chain.logs(swap, run.roles[f"pair_{i}"], SWAP)) == 1
    got = chain.around(swap, run.roles["token_out"], run.roles["actor"])
    assert got == (0, got[1]) and got[1] > 30_000 * E


def test_treasury_payout_is_the_long_standing_owners(played, chain):
    run = run_of(played, "treasury-payout-by-owner")
    [payout] = run.key_txs
    treasury, usd, owner, recipient = (run.roles[k] for k in ("treasury", "token", "deployer", "grant_recipient"))
    block = chain.block_of(payout)
    assert chain.receipt(payout)["from"] == owner
    assert "0x" + f"{chain.call(treasury, 'owner()', block=block):040x}" == owner
    created = next(tx for tx in run.txs if (chain.receipt(tx)["contractAddress"] or "") == treasury)
    assert block - chain.block_of(created) > 200 and chain.nonce(owner, block - 1) > 5
    before, after = chain.around(payout, usd, treasury)
    assert before == 114_000 * E and after == before - before * 8 // 10
    assert chain.around(payout, usd, recipient) == (0, before * 8 // 10)
    assert chain.nonce(recipient, block) == 0  # he never sent anything, let alone paid in


def test_vault_migration_moves_everything_and_the_ledger_to_the_teams_new_vault(played, chain):
    run = run_of(played, "vault-migration")
    [migration] = run.key_txs
    legacy, successor, token, team = (run.roles[k] for k in ("vault", "new_vault", "token", "deployer"))
    assert chain.around(migration, token, legacy) == (90_000 * E, 0)
    assert chain.around(migration, token, successor) == (0, 90_000 * E)
    created = next(tx for tx in run.txs if (chain.receipt(tx)["contractAddress"] or "") == successor)
    assert chain.receipt(created)["from"] == chain.receipt(migration)["from"] == team
    block = chain.block_of(migration)
    credited = [chain.call(successor, "balances(address)", run.roles[f"depositor_{i}"], block=block)
                for i in range(1, 5)]
    assert credited == [40_000 * E, 30_000 * E, 10_000 * E, 10_000 * E]
    assert chain.tokens(token, run.roles["depositor_2"], run.last_block) == 30_000 * E  # withdrew from the new one


# ---------------------------------------------------------------------------------------- what was reported


def within(run: ScenarioRun, findings: list[dict]) -> list[dict]:
    return [f for f in findings if run.first_block <= f["block"] <= run.last_block]


def loud_exploits_on_key_txs(run: ScenarioRun, findings: list[dict]) -> list[dict]:
    return [f for f in within(run, findings)
            if f["tx_hash"] in run.key_txs and f["type"] == "exploit" and f["severity"] in LOUD]


# The attacks no analyzer reports high or critical on a key transaction, with the reason in terms of the mechanism.
# Empty since approval-drain, unbacked-mint and share-inflation were written for the three this file found missed
# (users' approvals pulled by a spender; a supply minted from nothing and dumped; a deposit minting no shares).
MISSED: dict[str, str] = {}


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=MISSED[name])) if name in MISSED else name
    for name in HELDOUT_ATTACKS])
def test_held_out_attack_is_a_high_or_critical_exploit_on_its_key_transaction(played, name):
    run = run_of(played, name)
    _, findings = played
    loud = loud_exploits_on_key_txs(run, findings)
    assert loud, f"{name}: nothing high/critical on {run.key_txs}; found {describe(within(run, findings))}"
    for f in loud:
        evidence = f["evidence"]
        assert evidence["tx_hash"] == f["tx_hash"] and evidence["addresses"], (name, f["kind"])
        named = {a["address"] for a in evidence["addresses"]} | {x["entity"] for x in evidence.get("labels", [])}
        assert run.roles["victim"] in named or run.roles["attacker"] in named, (name, f["kind"], evidence)


@pytest.mark.parametrize("name", list(HELDOUT_NEGATIVES))
def test_held_out_look_alike_raises_nothing_high_or_critical(played, name):
    run = run_of(played, name)
    _, findings = played
    loud = [(f["kind"], f["severity"], f["type"], f["tx_hash"], f["evidence"].get("summary"))
            for f in within(run, findings) if f["severity"] in LOUD]
    assert loud == [], "\n".join(map(str, loud))


def test_report_per_scenario(played):
    """Every finding in each scenario's blocks, key transactions first; printed for the record."""
    runs, findings = played
    lines = []
    for run in runs.values():
        found = within(run, findings)
        verdict = ("detected" if loud_exploits_on_key_txs(run, found) else "MISSED") if run.attack else (
            "FALSE POSITIVE" if any(f["severity"] in LOUD for f in found) else "quiet at high")
        lines.append(f"{'attack' if run.attack else 'look-alike'} {run.name}: {verdict}")
        for f in sorted(found, key=lambda f: (f["tx_hash"] not in run.key_txs, f["block"], f["kind"])):
            where = "key tx" if f["tx_hash"] in run.key_txs else f"block {f['block']}"
            said = f["evidence"].get("summary") or f"event {f['evidence'].get('event')}"
            lines.append(f"    {where}: {f['kind']} {f['severity']} {f['type']} | {said}")
        for f in found:  # each finding's evidence points at the transaction it is stored under
            assert f["evidence"].get("tx_hash", f["tx_hash"]) == f["tx_hash"], (run.name, f["kind"])
    counts = Counter((f["kind"], f["severity"]) for f in findings)
    print("\nheld-out scenarios:\n" + "\n".join(lines) + f"\nall findings by analyzer and severity: {dict(counts)}")
    assert any(f["block"] >= min(r.first_block for r in runs.values()) for f in findings)


def describe(findings: list[dict]) -> list[tuple]:
    return [(f["kind"], f["severity"], f["type"], f["tx_hash"]) for f in findings]
