"""`share-inflation`: a deposit into an ERC-4626 vault minted no shares, so the depositor's assets went to the
vault's existing holders.

The first-depositor (donation) attack: the attacker holds the vault's only share, inflates its price by sending
assets straight to the vault, and the next deposit rounds down to zero shares; redeeming the one share then takes
the victim's assets too. Redeeming looks like any withdrawal (shares burned for assets), so the moment to see it
is the victim's deposit: the standard `Deposit(sender, owner, assets, shares)` with assets of at least
`min_assets` (raw units, so rounding dust is left out) and zero shares. That is a high `exploit` on the vault,
the depositor labelled victim. Vaults that revert a zero-share deposit (OpenZeppelin's ERC4626 with a decimals
offset, most audited vaults) never emit one. This module must not do I/O.
"""

from __future__ import annotations

from pydantic import Field

from ...findings import Finding, FindingType, Severity, fingerprint
from .base import LOGS, Analyzer, AnalyzerInfo, BlockActivity, NoSettings, label
from .flows import topic, word_address, word_int

KIND = "share-inflation"
ERC4626_DEPOSIT = topic("Deposit(address,address,uint256,uint256)")


class ShareSettings(NoSettings):
    min_assets: int = Field(10**6, ge=1, description="raw asset units below which a zero-share deposit is dust")


class ShareInflation(Analyzer):
    info = AnalyzerInfo(
        id=KIND,
        title="Vault deposit that minted no shares",
        description="An ERC-4626 vault took a deposit and minted zero shares for it: the deposit went to the "
                    "vault's existing shareholders, as in a first-depositor (donation) attack.",
        severity=Severity.HIGH,
        confidence=0.8,
        consumes=frozenset({LOGS}),
    )
    Settings = ShareSettings

    def analyze(self, activity: BlockActivity) -> list[Finding]:
        out = []
        chain_id = activity.block.chain_id
        for tx in activity.transactions:
            if not tx.success:
                continue
            for entry in tx.logs:
                if len(entry.topics) != 3 or entry.topics[0] != ERC4626_DEPOSIT or len(entry.data) != 2 + 128:
                    continue
                sender, owner = word_address(entry.topics[1]), word_address(entry.topics[2])
                assets, shares = word_int(entry.data, 0), word_int(entry.data, 1)
                if sender is None or owner is None or shares != 0 or (assets or 0) < self.settings.min_assets:
                    continue
                evidence = {
                    "summary": f"vault {entry.address} took a deposit of {assets} asset units from {sender} and "
                               f"minted no shares for {owner}",
                    "tx_hash": tx.hash, "vault": entry.address, "assets": str(assets), "shares": "0",
                    "log_index": entry.log_index,
                    "amounts": [{"token": entry.address, "amount": str(assets), "from": sender, "to": entry.address}],
                    "addresses": [{"role": "vault", "address": entry.address},
                                  {"role": "victim", "address": owner},
                                  *([{"role": "depositor", "address": sender}] if sender != owner else [])],
                    "labels": [label(owner, "victim", self.info.confidence)],
                    "confidence": self.info.confidence,
                }
                out.append(Finding(KIND, Severity.HIGH, FindingType.EXPLOIT, chain_id, entry.address,
                                   activity.block.number, tx.hash,
                                   fingerprint(KIND, chain_id, tx.hash, entry.log_index), evidence))
        return out
