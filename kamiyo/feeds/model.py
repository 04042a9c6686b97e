"""What a feed says, normalised: one `Report` per record a source published, the record itself kept whole.

Reports are what adapters produce and what incident merging consumes; nothing here talks to the network or the
database. Chains are chain ids where the registry knows the name, else the name exactly as the source wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ..errors import KamiyoError

INCIDENT, ADVISORY = "incident", "advisory"


@dataclass(frozen=True, slots=True)
class RoleAddress:
    role: str  # "victim" | "attacker" | "attack_contract" | "vulnerable_contract" | "other"
    chain_id: int | None
    address: str  # lowercase 0x…


@dataclass(frozen=True, slots=True)
class Report:
    source: str  # the feed's configured name
    ref: str  # the source's own stable id for the record (an id, a link, a heading)
    protocol: str
    day: date | None
    kind: str = INCIDENT  # or ADVISORY: no chain or loss, kept beside incidents
    chains: tuple[int | str, ...] = ()  # chain ids, or names the registry does not know (kept as given)
    loss_usd: float | None = None
    loss_text: str | None = None  # the source's own words for the loss
    classification: str | None = None
    technique: str | None = None
    addresses: tuple[RoleAddress, ...] = ()
    tx_hashes: tuple[str, ...] = ()  # lowercase 0x…
    references: tuple[str, ...] = ()  # URLs
    raw: dict[str, Any] = field(default_factory=dict)  # the record as the source gave it


class FeedFormatError(KamiyoError):
    """A payload that is not what this source publishes (malformed, truncated, hostile): nothing of it is kept."""
