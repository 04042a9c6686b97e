"""Held-out on-chain scenarios: attack mechanisms and benign look-alikes the transaction analyzers were not tuned on.

The tuned set (tests/support/scenarios.py) has an ETH vault re-entered, a lender's spot oracle moved with a flash
swap, an open initializer and a malicious proxy upgrade. Here are other ways to take funds (a token's receive hook
re-entering a vault, a spot price moved with the attacker's own money, a router's arbitrary call spending its
users' approvals, a bridge minting for a message nobody proved, a vault's first share inflated by a donation) and
other benign transactions that share their shapes (a flash-funded liquidation, a large multi-hop swap, an owner's
grant, a vault migration). Each `run_<name>(node)` returns a `ScenarioRun` with the meaning scenarios.py gives it.

The Solidity is in tests/scenarios/contracts/heldout, compiled here (scenarios.compiled() reads only the folder
above) together with the Interfaces.sol it imports, and cached the same way. This module only acts; it does not
judge: tests/daemon/test_heldout_scenarios.py checks each effect on chain and what the daemon made of it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from eth_hash.auto import keccak

from tests.support import npm_artifacts, scenarios
from tests.support.anvil import AnvilNode
from tests.support.scenarios import DAY, E, ScenarioRun, Session, calldata, encode

HELDOUT_SOURCES = scenarios.SOURCES / "heldout"
MAX = 2**256 - 1


# ------------------------------------------------------------------------------------------------ compiling


@cache
def compiled() -> dict[str, dict[str, Any]]:
    """The held-out contracts by name: {"abi", "bytecode", "runtime"} (hex without 0x).

    Units are named as they sit on disk relative to the contracts folder, so `import "../Interfaces.sol"` in
    heldout/X.sol resolves to the Interfaces.sol unit without an import callback. A name that scenarios.py also
    builds is refused: `deploy` below must never be confused about which one it means."""
    units = {name: (scenarios.SOURCES / name).read_text() for name in ("Interfaces.sol", "ScenarioToken.sol")}
    units |= {f"heldout/{p.name}": p.read_text() for p in sorted(HELDOUT_SOURCES.glob("*.sol"))}
    tuned = set(scenarios.compiled())
    built: dict[str, dict[str, Any]] = {}
    for unit, members in scenarios.compile_units(units, "heldout").items():
        for name, out in members.items():
            if not unit.startswith("heldout/") or not out["bytecode"]:
                continue  # the tuned scenarios' interfaces, or an interface of ours
            if name in built or name in tuned:
                raise npm_artifacts.ArtifactError(f"contract {name} ({unit}) is defined twice")
            built[name] = out
    return built


def deploy(s: Session, sender: str, contract: str, *args: Any) -> str:
    """Session.deploy for a held-out contract (constructor argument types from its ABI)."""
    built = compiled()[contract]
    inputs = next((e["inputs"] for e in built["abi"] if e["type"] == "constructor"), [])
    return s.deploy_code(sender, built["bytecode"] + encode([i["type"] for i in inputs], args))


def address_of(s: Session, contract: str, getter: str) -> str:
    """An address a contract's view function returns (`token()`, `pair()`)."""
    return "0x" + f"{s.call(contract, getter):040x}"


def _empty_pair(s: Session, sender: str, factory: str, token_a: str, token_b: str) -> str:
    receipt = s.send(sender, factory, calldata("createPair(address,address)", token_a, token_b))
    return scenarios._address(receipt["logs"][0]["data"][:66])


def _fund(s: Session, minter: str, token: str, holders: dict[str, int], spender: str | None = None) -> None:
    """Mint each holder its amount of a ScenarioToken; with a spender, each also approves it without limit."""
    for holder, amount in holders.items():
        s.transact(minter, token, "mint(address,uint256)", holder, amount)
        if spender:
            s.transact(holder, token, "approve(address,uint256)", spender, MAX)


# ------------------------------------------------------------------------------------------------ attacks


def run_erc777_style_reentrancy(node: AnvilNode) -> ScenarioRun:
    """Three savers keep 21.5k hUSD, a token with an ERC-777-style receive hook, in HookTokenVault, which pays
    before it clears the balance. A new attacker's contract registers for the hook, deposits a 1k stake and
    withdraws; from tokensReceived it withdraws again and again. The proceeds reach the attacker in that same
    transaction."""
    s = Session(node, "erc777-style-reentrancy")
    team = s.account("deployer")
    token = deploy(s, team, "HookToken", "Kamiyo Hook Dollar", "hUSD")
    vault = deploy(s, team, "HookTokenVault", token)
    roles = {"victim": vault, "vault": vault, "token": token, "deployer": team}
    for i, amount in enumerate((10_000 * E, 7_000 * E, 4_500 * E), start=1):
        roles[f"depositor_{i}"] = saver = s.account(f"depositor_{i}")
        _fund(s, team, token, {saver: amount}, spender=vault)
        s.transact(saver, vault, "deposit(uint256)", amount)
    attacker = s.account("attacker", 1)
    contract = deploy(s, attacker, "HookReentrancyAttacker", vault)
    s.transact(team, token, "mint(address,uint256)", attacker, 1_000 * E)  # the stake he bought
    s.transact(attacker, token, "approve(address,uint256)", contract, 1_000 * E)
    attack = s.transact(attacker, contract, "attack(uint256)", 1_000 * E)
    return s.finish(True, (attack,), {**roles, "attacker": attacker, "attack_contract": contract})


def run_own_capital_price_manipulation(node: AnvilNode) -> ScenarioRun:
    """Lenders supply 300k USD to PairPricedMarket, which values KGOV by the balances of a 20k/20k KGOV/USD pair;
    an honest borrower takes 3k. A new attacker, holding 200k USD of his own (no loan of any kind), has his
    contract buy KGOV with all of it, pledge some at the pumped price, borrow the market's whole cash and sell
    the rest back, in one transaction."""
    s = Session(node, "own-capital-price-manipulation")
    team = s.account("deployer")
    usd, kgov = s.token(team, "Scenario Dollar", "USD"), s.token(team, "Kamiyo Governance", "KGOV")
    factory = s.factory(team)
    pair = s.pair(team, factory, kgov, 20_000 * E, usd, 20_000 * E)
    market = deploy(s, team, "PairPricedMarket", kgov, usd, pair)
    roles = {"victim": market, "lending": market, "pair": pair, "debt_token": usd, "collateral_token": kgov,
             "deployer": team}
    for i, amount in enumerate((150_000 * E, 100_000 * E, 50_000 * E), start=1):
        roles[f"lender_{i}"] = lender = s.account(f"lender_{i}")
        _fund(s, team, usd, {lender: amount}, spender=market)
        s.transact(lender, market, "supply(uint256)", amount)
    roles["borrower"] = borrower = s.account("borrower")
    _fund(s, team, kgov, {borrower: 5_000 * E}, spender=market)
    s.transact(borrower, market, "borrowAgainst(uint256,uint256)", 5_000 * E, 3_000 * E)
    attacker = s.account("attacker", 1)
    contract = deploy(s, attacker, "CapitalPumpAttacker", market)
    s.transact(team, usd, "mint(address,uint256)", attacker, 200_000 * E)  # his own capital
    s.transact(attacker, usd, "approve(address,uint256)", contract, 200_000 * E)
    attack = s.transact(attacker, contract, "attack(uint256)", 200_000 * E)
    return s.finish(True, (attack,), {**roles, "attacker": attacker, "attack_contract": contract})


def run_arbitrary_call_drain(node: AnvilNode) -> ScenarioRun:
    """Four users approved RouteAggregator without limit and swapped USD for GOLD through it (via V2SwapAdapter).
    A new attacker's contract calls swap() with nothing in and the USD token itself as the route's target, its data
    transferFrom(user, attacker, balance), once per user, in one transaction: the users' wallets are emptied, the
    aggregator (which holds nothing) is untouched."""
    s = Session(node, "arbitrary-call-drain")
    team = s.account("deployer")
    usd, gold = s.token(team, "Scenario Dollar", "USD"), s.token(team, "Scenario Gold", "GOLD")
    pair = s.pair(team, s.factory(team), usd, 1_000_000 * E, gold, 1_000 * E)
    aggregator = deploy(s, team, "RouteAggregator")
    adapter = deploy(s, team, "V2SwapAdapter")
    roles = {"victim": aggregator, "aggregator": aggregator, "adapter": adapter, "pair": pair, "token": usd,
             "deployer": team}
    route = calldata("sellAll(address,address,address)", pair, usd, aggregator)
    users = []
    for i, amount in enumerate((50_000 * E, 30_000 * E, 20_000 * E, 12_000 * E), start=1):
        roles[f"user_{i}"] = user = s.account(f"user_{i}")
        users.append(user)
        _fund(s, team, usd, {user: amount}, spender=aggregator)
        s.transact(user, aggregator, "swap(address,uint256,address,uint256,address,bytes)", usd, 2_000 * E, gold,
                   1, adapter, route)
    attacker = s.account("attacker", 1)
    drainer = deploy(s, attacker, "ApprovalDrainer")
    drain = s.transact(attacker, drainer, "drain(address,address,address[])", aggregator, usd, users)
    return s.finish(True, (drain,), {**roles, "attacker": attacker, "attack_contract": drainer})


def _merkle(leaves: list[bytes]) -> tuple[bytes, list[list[str]]]:
    """The root of a tree of 2^n leaves and each leaf's branch, as MessageBridge.prove folds it."""
    branches: list[list[str]] = [[] for _ in leaves]
    level, members = list(leaves), [[i] for i in range(len(leaves))]
    while len(level) > 1:
        for at, group in enumerate(members):
            sibling = level[at ^ 1]
            for leaf in group:
                branches[leaf].append("0x" + sibling.hex())
        level = [keccak(level[k] + level[k + 1]) for k in range(0, len(level), 2)]
        members = [members[k] + members[k + 1] for k in range(0, len(members), 2)]
    return level[0], branches


def run_signature_bypass_mint_and_dump(node: AnvilNode) -> ScenarioRun:
    """MessageBridge was deployed with committed root 0, so it accepts unproven messages. Honest users bridge 14k
    bKAM with proofs; one seeds a bKAM/USD pool with 10k bKAM and 500k USD. A new attacker's contract processes an
    invented message minting itself 1M bKAM, without a proof, and sells it all into the pool (one transaction)."""
    s = Session(node, "signature-bypass-mint-and-dump")
    team = s.account("deployer")
    bridge = deploy(s, team, "MessageBridge", "00" * 32)
    bkam = address_of(s, bridge, "token()")
    usd = s.token(team, "Scenario Dollar", "USD")
    roles = {"victim": bridge, "bridge": bridge, "bridged_token": bkam, "quote_token": usd, "deployer": team}
    holders = {s.account(f"holder_{i}"): amount for i, amount in enumerate((10_000, 2_500, 1_000, 500), start=1)}
    messages = [encode(["uint256", "address", "uint256"], [n, holder, amount * E])
                for n, (holder, amount) in enumerate(holders.items(), start=1)]
    root, branches = _merkle([keccak(bytes.fromhex(m)) for m in messages])
    s.transact(team, bridge, "commitRoot(bytes32)", root.hex())
    for index, (message, branch) in enumerate(zip(messages, branches)):
        s.transact(team, bridge, "prove(bytes,bytes32[],uint256)", message, branch, index)
        s.transact(team, bridge, "process(bytes)", message)
    provider = next(iter(holders))
    roles["liquidity_provider"] = provider
    roles["pool"] = pool = _empty_pair(s, team, s.factory(team), bkam, usd)
    s.transact(provider, bkam, "transfer(address,uint256)", pool, 10_000 * E)
    s.transact(team, usd, "mint(address,uint256)", pool, 500_000 * E)  # the provider's USD side
    s.transact(provider, pool, "mint(address)", provider)
    attacker = s.account("attacker", 1)
    dumper = deploy(s, attacker, "ForgedMintDumper")
    dump = s.transact(attacker, dumper, "attack(address,address,uint256,uint256)", bridge, pool, 7_777, 1_000_000 * E)
    return s.finish(True, (dump,), {**roles, "attacker": attacker, "attack_contract": dumper})


def run_first_depositor_inflation(node: AnvilNode) -> ScenarioRun:
    """A new InflatableVault. A new attacker deposits 1 wei (1 share) and sends 10k tokens straight to the vault;
    two users then deposit 5k and 3k and get 0 shares each; the attacker redeems his one share for all 18k."""
    s = Session(node, "first-depositor-inflation")
    team = s.account("deployer")
    token = s.token(team, "Scenario Stable", "SSTB")
    vault = deploy(s, team, "InflatableVault", token)
    roles = {"victim": vault, "vault": vault, "token": token, "deployer": team}
    attacker = s.account("attacker", 1)
    s.transact(team, token, "mint(address,uint256)", attacker, 10_000 * E + 1)  # his own money
    s.transact(attacker, token, "approve(address,uint256)", vault, 1)
    s.transact(attacker, vault, "deposit(uint256,address)", 1, attacker)
    s.transact(attacker, token, "transfer(address,uint256)", vault, 10_000 * E)
    robbed = []
    for i, amount in enumerate((5_000 * E, 3_000 * E), start=1):
        roles[f"depositor_{i}"] = user = s.account(f"depositor_{i}")
        _fund(s, team, token, {user: amount}, spender=vault)
        robbed.append(s.transact(user, vault, "deposit(uint256,address)", amount, user))
    redeem = s.transact(attacker, vault, "redeem(uint256,address,address)", 1, attacker, attacker)
    # the value moves to the attacker's share at each victim's deposit (zero shares minted for it); the redeem
    # only cashes it out: both are transactions where the funds are taken
    return s.finish(True, (*robbed, redeem), {**roles, "attacker": attacker})


HELDOUT_ATTACKS: dict[str, Callable[[AnvilNode], ScenarioRun]] = {
    "erc777-style-reentrancy": run_erc777_style_reentrancy,
    "own-capital-price-manipulation": run_own_capital_price_manipulation,
    "arbitrary-call-drain": run_arbitrary_call_drain,
    "signature-bypass-mint-and-dump": run_signature_bypass_mint_and_dump,
    "first-depositor-inflation": run_first_depositor_inflation,
}


# ---------------------------------------------------------------------------------------------- negatives


def run_flash_loan_liquidation(node: AnvilNode) -> ScenarioRun:
    """PricedLendingMarket (feed price 10 USD per KGOV) lends 150k of 500k USD to three borrowers. A selloff takes
    the KGOV/USD pool to about 8.8 and the operator pushes 8.8; the first borrower's debt is then 82% of his
    collateral. A liquidator's bot flash-swaps 36k USD from the WETH/USD pool, repays half that debt, receives
    4,500 KGOV (10% bonus), sells them in the KGOV/USD pool, repays the flash swap and keeps about 2.5k USD."""
    s = Session(node, "flash-loan-liquidation")
    team = s.account("deployer", 1_100)
    usd, kgov = s.token(team, "Scenario Dollar", "USD"), s.token(team, "Kamiyo Governance", "KGOV")
    weth = s.deploy(team, "WrappedEther")
    s.transact(team, weth, "deposit()", value=1_000 * E)
    factory = s.factory(team)
    deep = _empty_pair(s, team, factory, weth, usd)
    s.transact(team, weth, "transfer(address,uint256)", deep, 1_000 * E)
    s.transact(team, usd, "mint(address,uint256)", deep, 3_000_000 * E)
    s.transact(team, deep, "mint(address)", team)
    pool = s.pair(team, factory, kgov, 200_000 * E, usd, 2_000_000 * E)
    market = deploy(s, team, "PricedLendingMarket", kgov, usd, 10 * E)
    roles = {"lending": market, "flash_pair": deep, "pool": pool, "debt_token": usd, "collateral_token": kgov,
             "weth": weth, "deployer": team}
    for i, amount in enumerate((300_000 * E, 150_000 * E, 50_000 * E), start=1):
        roles[f"lender_{i}"] = lender = s.account(f"lender_{i}")
        _fund(s, team, usd, {lender: amount}, spender=market)
        s.transact(lender, market, "supply(uint256)", amount)
    for i, (pledge, debt) in enumerate(((10_000, 72_000), (8_000, 48_000), (6_000, 30_000)), start=1):
        roles[f"borrower_{i}"] = borrower = s.account(f"borrower_{i}")
        _fund(s, team, kgov, {borrower: pledge * E}, spender=market)
        s.transact(borrower, market, "depositCollateral(uint256)", pledge * E)
        s.transact(borrower, market, "borrow(uint256)", debt * E)
    router = s.deploy(team, "MiniRouter")
    roles["seller"] = seller = s.account("seller")
    _fund(s, team, kgov, {seller: 13_250 * E}, spender=router)
    s.transact(seller, router, "swapExactIn(address,address,uint256,uint256)", pool, kgov, 13_250 * E, 1)
    node.rpc("evm_increaseTime", [600])
    s.transact(team, market, "setPrice(uint256)", 88 * E // 10)
    actor = s.account("actor", 1)
    bot = deploy(s, actor, "FlashLiquidator")
    liquidation = s.transact(actor, bot, "run(address,address,address,address,uint256)", deep, pool, market,
                             roles["borrower_1"], 36_000 * E)
    return s.finish(False, (liquidation,), {**roles, "actor": actor, "liquidator_contract": bot})


def run_multi_hop_aggregator_swap(node: AnvilNode) -> ScenarioRun:
    """Pools ALPH/BETA 1M/2M, BETA/GAMA 2M/500k, GAMA/DELT 500k/1M. A whale sells 100k ALPH for DELT through
    PathRouter in one transaction: each pool's price moves 10-30%, all one way."""
    s = Session(node, "multi-hop-aggregator-swap")
    team = s.account("deployer")
    names = ("Alpha", "Beta", "Gamma", "Delta")
    alph, beta, gama, delt = (s.token(team, f"Scenario {n}", n[:4].upper()) for n in names)
    factory = s.factory(team)
    hops = [s.pair(team, factory, alph, 1_000_000 * E, beta, 2_000_000 * E),
            s.pair(team, factory, beta, 2_000_000 * E, gama, 500_000 * E),
            s.pair(team, factory, gama, 500_000 * E, delt, 1_000_000 * E)]
    router = deploy(s, team, "PathRouter")
    actor = s.account("actor")
    _fund(s, team, alph, {actor: 100_000 * E}, spender=router)
    swap = s.transact(actor, router, "swapAlongPath(address[],address,uint256,uint256)", hops, alph, 100_000 * E, 1)
    return s.finish(False, (swap,), {"actor": actor, "router": router, "pair_1": hops[0], "pair_2": hops[1],
                                     "pair_3": hops[2], "token_in": alph, "token_2": beta, "token_3": gama,
                                     "token_out": delt, "deployer": team})


def run_treasury_payout_by_owner(node: AnvilNode) -> ScenarioRun:
    """The deployer owns GrantsTreasury. Five fee payers pay 30 fees (120k USD in all) over 30 blocks; the owner
    pays two small grants; 200 blocks and 30 days pass; the owner pays 80% of the treasury to a grant recipient who
    never paid anything in."""
    s = Session(node, "treasury-payout-by-owner")
    team = s.account("deployer")
    usd = s.token(team, "Scenario Dollar", "USD")
    treasury = deploy(s, team, "GrantsTreasury")
    roles = {"treasury": treasury, "token": usd, "deployer": team}
    payers = [s.account(f"fee_payer_{i}") for i in range(1, 6)]
    _fund(s, team, usd, {payer: 30_000 * E for payer in payers}, spender=treasury)
    for round_ in range(6):
        for i, payer in enumerate(payers):
            s.transact(payer, treasury, "payFee(address,uint256)", usd, (2_000 + 1_000 * ((i + round_) % 5)) * E)
    for i in (1, 2):
        roles[f"small_grant_{i}"] = grantee = s.account(f"small_grant_{i}")
        s.transact(team, treasury, "payGrant(address,address,uint256,string)", usd, grantee, 3_000 * E,
                   f"community grant {i}")
    node.rpc("evm_increaseTime", [30 * DAY])
    node.rpc("anvil_mine", [hex(200)])
    recipient = s.account("grant_recipient")
    amount = s.call(usd, "balanceOf(address)", treasury) * 8 // 10
    payout = s.transact(team, treasury, "payGrant(address,address,uint256,string)", usd, recipient, amount,
                        "DAO vote 42: ecosystem grant")
    return s.finish(False, (payout,), {**roles, "actor": team, "grant_recipient": recipient})


def run_vault_migration(node: AnvilNode) -> ScenarioRun:
    """Four users keep 95k tokens in the team's LegacyVault (one withdraws part); days later the team deploys
    SuccessorVault and, in one transaction, LegacyVault.migrate sends it all the tokens and the ledger. A user then
    withdraws from the successor."""
    s = Session(node, "vault-migration")
    team = s.account("deployer")
    token = s.token(team, "Scenario Stable", "SSTB")
    legacy = deploy(s, team, "LegacyVault", token)
    roles = {"vault": legacy, "token": token, "deployer": team}
    for i, amount in enumerate((40_000 * E, 30_000 * E, 15_000 * E, 10_000 * E), start=1):
        roles[f"depositor_{i}"] = user = s.account(f"depositor_{i}")
        _fund(s, team, token, {user: amount}, spender=legacy)
        s.transact(user, legacy, "deposit(uint256)", amount)
    s.transact(roles["depositor_3"], legacy, "withdraw(uint256)", 5_000 * E)
    node.rpc("evm_increaseTime", [3 * DAY])
    node.rpc("anvil_mine", [hex(20)])
    successor = deploy(s, team, "SuccessorVault", token, legacy)
    migration = s.transact(team, legacy, "migrate(address)", successor)
    s.transact(roles["depositor_2"], successor, "withdraw(uint256)", 30_000 * E)
    return s.finish(False, (migration,), {**roles, "new_vault": successor, "actor": team})


HELDOUT_NEGATIVES: dict[str, Callable[[AnvilNode], ScenarioRun]] = {
    "flash-loan-liquidation": run_flash_loan_liquidation,
    "multi-hop-aggregator-swap": run_multi_hop_aggregator_swap,
    "treasury-payout-by-owner": run_treasury_payout_by_owner,
    "vault-migration": run_vault_migration,
}
