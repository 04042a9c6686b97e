"""`unbacked-mint`: a token's supply jumped within one transaction, and the new tokens were sold at once.

A bridge that accepts an unproven message, a minter with a broken signature check, an access-control slip on
`mint`: the attacker creates tokens from nothing and swaps them for the pools' real assets before anyone can
react. The mechanism: a mint (ERC-20 `Transfer` from the zero address) of at least `min_supply_share` of the
token's supply before the block, to an account that, in the same transaction, sends the token into a pool that
traded and takes another token out of it. That is a high `exploit`, critical when the pool lost at least
`critical_share` of that other token. A large mint that is not sold in the transaction (a bridge delivering, a
token's launch) is medium `suspicious`; a token whose supply before is unknown or zero (it is new) is left out.
WETH-style deposits mint against coin paid in, and are not mints here. This module must not do I/O.
"""

from __future__ import annotations

from collections import defaultdict

from pydantic import Field

from ...findings import Finding, FindingType, Severity, fingerprint
from .base import BALANCES, LOGS, Analyzer, AnalyzerInfo, BlockActivity, NoSettings, TxObserved, label
from .flows import TRANSFER, ZERO, Movement, log_movement, net_flows, pools

KIND = "unbacked-mint"


class MintSettings(NoSettings):
    min_supply_share: float = Field(0.5, gt=0, description="a mint of this share of the supply before is large")
    critical_share: float = Field(0.5, gt=0, le=1,
        description="a pool losing this share of the asset it paid out makes it critical")


class UnbackedMint(Analyzer):
    info = AnalyzerInfo(
        id=KIND,
        title="Tokens minted from nothing and sold at once",
        description="A token's supply grew by a large share in one transaction and the minted tokens were swapped "
                    "into a pool for its other asset in the same transaction.",
        severity=Severity.HIGH,
        confidence=0.8,
        consumes=frozenset({LOGS, BALANCES}),
    )
    Settings = MintSettings

    def analyze(self, activity: BlockActivity) -> list[Finding]:
        out = []
        minted_earlier: dict[str, int] = defaultdict(int)  # what the block's earlier transactions minted
        for tx in activity.transactions:
            if not tx.success:
                continue
            read = [(m, entry) for entry in tx.logs if (m := log_movement(entry)) is not None]
            moves = [m for m, _ in read]
            mints = [m for m, entry in read if m.sender == ZERO and entry.topics[0] == TRANSFER]
            for mint in mints:
                supply = activity.supplies.get(mint.token)
                if supply is not None and supply + minted_earlier[mint.token] > 0:
                    finding = self._examine(activity, tx, mint, supply + minted_earlier[mint.token], moves)
                    if finding is not None:
                        out.append(finding)
            for mint in mints:
                minted_earlier[mint.token] += mint.amount
        return out

    def _examine(self, activity: BlockActivity, tx: TxObserved, mint: Movement, supply: int,
                 moves: list[Movement]) -> Finding | None:
        share = mint.amount / supply
        if share < self.settings.min_supply_share:
            return None
        traded = pools(tx)
        dumped = [m for m in moves if m.token == mint.token and m.sender == mint.recipient and m.recipient in traded]
        net = net_flows(moves)
        drained = []
        for pool in sorted({m.recipient for m in dumped}):
            for (holder, token), delta in net.items():
                if holder == pool and token != mint.token and delta < 0:
                    before = activity.balances.get((pool, token))
                    drained.append({"pool": pool, "token": token, "lost": str(-delta),
                                    "share": round(-delta / before, 4) if before else None})
        if drained:
            worst = max((d["share"] or 0) for d in drained)
            severity = Severity.CRITICAL if worst >= self.settings.critical_share else Severity.HIGH
            kind, confidence = FindingType.EXPLOIT, self.info.confidence
        else:
            severity, kind, confidence = Severity.MEDIUM, FindingType.SUSPICIOUS, 0.4
        chain_id = activity.block.chain_id
        evidence = {
            "summary": f"{mint.amount} of {mint.token} minted to {mint.recipient} ({share:.0%} of the supply before)"
                       + (f", sold into {len(drained)} pool(s) in the same transaction" if drained else ""),
            "tx_hash": tx.hash, "token": mint.token, "minted": str(mint.amount), "supply_before": str(supply),
            "supply_share": round(share, 4), "minted_to": mint.recipient, "where": mint.where, "drained": drained,
            "amounts": [{"token": m.token, "amount": str(m.amount), "from": m.sender, "to": m.recipient,
                         "where": m.where} for m in [mint, *dumped]],
            "addresses": [{"role": "token", "address": mint.token}, {"role": "minted_to", "address": mint.recipient},
                          *({"role": "victim", "address": d["pool"]} for d in drained),
                          {"role": "tx_sender", "address": tx.sender}],
            "labels": [*(label(d["pool"], "victim", confidence) for d in drained),
                       *([label(mint.recipient, "attacker", confidence)] if drained else [])],
            "confidence": confidence,
        }
        return Finding(KIND, severity, kind, chain_id, mint.token, activity.block.number, tx.hash,
                       fingerprint(KIND, chain_id, tx.hash, mint.token, mint.where), evidence)
