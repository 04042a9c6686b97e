"""`approval-drain`: a contract that holds users' token approvals moved their tokens to someone else.

Approvals are standing permissions: a router, an aggregator or a bridge may pull its users' tokens whenever it is
called. When one of them can be made to call `transferFrom(user, anyone, amount)` for a caller (an arbitrary
external call, a missing check), the losses sit in the users' own wallets while the contract itself loses
nothing, which is why a balance analyzer never sees it. The mechanism read from the trace:
- a `transferFrom(victim, recipient, amount)` executed by a spender S (the frame's acting account);
- the victim is not part of the transaction (not its sender, not the contract it called, nothing it created)
  and received nothing in it, so nothing was given in return (a limit-order fill pays the maker back);
- the recipient is not S itself (a protocol pulling what it is owed into its own contract is a payment) and is
  on the transaction's side: its sender, or a contract it called or created.
Several victims in one transaction is a drain (high `exploit`); one is medium `suspicious`. Without a trace the
spender cannot be told apart, and nothing is reported. This module must not do I/O.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import Field

from ...findings import Finding, FindingType, Severity, fingerprint
from .base import LOGS, TRACES, TRANSACTIONS, Analyzer, AnalyzerInfo, BlockActivity, NoSettings, TxObserved, label
from .flows import actor, movements, selector, walk, word_address, word_int

KIND = "approval-drain"
TRANSFER_FROM = selector("transferFrom(address,address,uint256)")
_TRUE_OR_NOTHING = ("0x", "0x" + "0" * 63 + "1")  # a transferFrom that returned false moved nothing


class ApprovalSettings(NoSettings):
    min_victims: int = Field(2, ge=1, le=1_000, description="victims in one transaction that make it a drain (high)")


class ApprovalDrain(Analyzer):
    info = AnalyzerInfo(
        id=KIND,
        title="Approved tokens pulled from users for someone else",
        description="A contract holding users' approvals called transferFrom on their tokens, sending them to the "
                    "transaction's sender or its contracts, from accounts that took no part in the transaction and "
                    "got nothing back.",
        severity=Severity.HIGH,
        confidence=0.75,
        consumes=frozenset({LOGS, TRACES, TRANSACTIONS}),
    )
    Settings = ApprovalSettings

    def analyze(self, activity: BlockActivity) -> list[Finding]:
        out = []
        for tx in activity.transactions:
            if tx.success and tx.trace is not None:
                finding = self._examine(activity, tx)
                if finding is not None:
                    out.append(finding)
        return out

    def _examine(self, activity: BlockActivity, tx: TxObserved) -> Finding | None:
        side = actor(tx)
        received = {m.recipient for m in movements(tx)}
        pulls: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for step in walk(tx.trace):
            frame = step.frame
            if frame.kind != "CALL" or not frame.to or not frame.input.startswith(TRANSFER_FROM):
                continue
            args = frame.input[10:]
            victim, recipient = word_address(args[0:64]), word_address(args[64:128])
            amount = word_int(args, 2)
            if victim is None or recipient is None or not amount or (frame.output or "0x") not in _TRUE_OR_NOTHING:
                continue
            spender = frame.sender  # the account acting (a proxy's own address when its implementation calls)
            if victim in side or victim in received or recipient == spender or recipient not in side:
                continue
            pulls[victim].append({"token": frame.to, "amount": str(amount), "from": victim, "to": recipient,
                                  "spender": spender, "where": "trace:" + ".".join(map(str, step.path))})
        if not pulls:
            return None
        drain = len(pulls) >= self.settings.min_victims
        severity, kind = (Severity.HIGH, FindingType.EXPLOIT) if drain else (Severity.MEDIUM, FindingType.SUSPICIOUS)
        confidence = self.info.confidence if drain else 0.4
        amounts = [p for victim in sorted(pulls) for p in pulls[victim]]
        spenders = sorted({p["spender"] for p in amounts})
        recipients = sorted({p["to"] for p in amounts})
        chain_id = activity.block.chain_id
        evidence = {
            "summary": f"{', '.join(spenders)} moved tokens of {len(pulls)} account(s) that took no part in the "
                       f"transaction to {', '.join(recipients)}",
            "tx_hash": tx.hash,
            "victims": sorted(pulls),
            "spenders": spenders,
            "amounts": amounts,
            "addresses": [*({"role": "victim", "address": v} for v in sorted(pulls)),
                          *({"role": "spender", "address": s} for s in spenders),
                          *({"role": "recipient", "address": r} for r in recipients),
                          {"role": "tx_sender", "address": tx.sender}],
            "labels": [*(label(v, "victim", confidence) for v in sorted(pulls)),
                       *(label(r, "attacker", confidence) for r in recipients if drain)],
            "confidence": confidence,
        }
        subject = spenders[0] if len(spenders) == 1 else tx.to or tx.sender
        return Finding(KIND, severity, kind, chain_id, subject, activity.block.number, tx.hash,
                       fingerprint(KIND, chain_id, tx.hash), evidence)
