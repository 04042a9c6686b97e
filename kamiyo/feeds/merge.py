"""Reports of the same incident from different sources become one incident, and every merge says why.

Rules, strongest first:
1. A shared transaction hash, or a shared victim / vulnerable contract (same chain, or a chain unknown on one
   side), merges reports of different sources dated within STRONG_WINDOW_DAYS: two accounts naming the same
   attack transaction are the same attack. (Hand-written sources copy a header from one entry to the next, and a
   contract can be drained twice, weeks apart: a source's own two records, and evidence months apart, stay apart.)
2. Otherwise two reports from *different* sources merge when their protocol names match after normalisation
   ("Euler Finance" ~ "EulerFinance" ~ "Euler") within ±7 days (real gaps between sources reach 6), the score
   raised by a shared chain and a similar loss and lowered by disjoint chains, very different losses and
   distance in days. A source's own two records are two incidents by that source's own account, so a name
   merge never joins two groups that already hold records of one source (nor does a shared-evidence merge).
Advisories (no chain, no loss) never merge by name; they stay beside the incidents.
Results depend only on the records, not on their order: pairs are taken best first with ties by key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from difflib import SequenceMatcher

from .model import ADVISORY

WINDOW_DAYS = 7
STRONG_WINDOW_DAYS = 30
MERGE_SCORE = 0.75
STRONG_ROLES = ("victim", "vulnerable_contract")
# words that name what a protocol is, not which one: dropped before names are compared
GENERIC = frozenset({"finance", "financial", "protocol", "network", "labs", "dao", "io", "app", "defi", "exchange",
                     "the", "token", "fi", "official", "project", "bridge", "v1", "v2", "v3", "v4", "rekt", "hack",
                     "exploit", "attack", "incident"})
SOURCE_PRIORITY = ("defillama", "defihacklabs")  # whose protocol name and loss an incident shows first


@dataclass(frozen=True, slots=True)
class Record:
    """A stored feed record, as merging sees it."""

    source: str
    ref: str
    kind: str
    protocol: str
    day: date | None
    chains: tuple
    loss_usd: float | None
    addresses: tuple[dict, ...]
    tx_hashes: tuple[str, ...]
    source_type: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.ref)


@dataclass(slots=True)
class Incident:
    id: str
    records: list[Record]
    why: list[str] = field(default_factory=list)  # one line per merge that built it


def normalise(name: str) -> str:
    """The distinctive part of a protocol name: camel case split, punctuation and generic words dropped."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    words = [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w and w not in GENERIC]
    return "".join(words) or re.sub(r"[^a-z0-9]+", "", name.lower())


def name_similarity(a: str, b: str) -> float:
    na, nb = normalise(a), normalise(b)
    if not na or not nb:
        return 0.0
    if na == nb:
        return 1.0
    short, long_ = sorted((na, nb), key=len)
    if len(short) >= 4 and long_.startswith(short):
        return 0.85
    # squared: a typo keeps most of its score (0.94 -> 0.88), a shared word does not ("uniswap" ~ "sushiswap"
    # is 0.75 -> 0.56)
    return SequenceMatcher(None, na, nb).ratio() ** 2


def _chain_ids(record: Record) -> set:
    return {c for c in record.chains if isinstance(c, int)}


def score(a: Record, b: Record) -> tuple[float, str]:
    """Confidence that two reports describe one incident, with the reasons in words."""
    similarity = name_similarity(a.protocol, b.protocol)
    value, reasons = similarity, [f"names {a.protocol!r} ~ {b.protocol!r} ({similarity:.2f})"]
    days = abs((a.day - b.day).days) if a.day and b.day else WINDOW_DAYS
    value -= 0.02 * days
    reasons.append(f"{days} day(s) apart")
    ca, cb = _chain_ids(a), _chain_ids(b)
    if ca and cb:
        if ca & cb:
            value += 0.1
            reasons.append(f"shared chain {min(ca & cb)}")
        else:
            value -= 0.25
            reasons.append("no chain in common")
    if a.loss_usd and b.loss_usd:
        ratio = max(a.loss_usd, b.loss_usd) / min(a.loss_usd, b.loss_usd)
        if ratio <= 1.5:
            value += 0.1
            reasons.append(f"losses agree ({a.loss_usd:,.0f} vs {b.loss_usd:,.0f} USD)")
        elif ratio > 5:
            value -= 0.15
            reasons.append(f"losses differ {ratio:.0f}x")
    return value, ", ".join(reasons)


class _Groups:
    def __init__(self, records: list[Record]) -> None:
        self.parent = {r.key: r.key for r in records}
        self.sources = {r.key: {r.source} for r in records}
        self.why: dict[tuple, list[str]] = {r.key: [] for r in records}

    def find(self, k):
        while self.parent[k] != k:
            self.parent[k] = self.parent[self.parent[k]]
            k = self.parent[k]
        return k

    def union(self, a, b, why: str) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        ra, rb = sorted((ra, rb))
        self.parent[rb] = ra
        self.sources[ra] |= self.sources.pop(rb)
        self.why[ra] += self.why.pop(rb) + [why]
        return True


def merge(records: Iterable[Record]) -> list[Incident]:
    records = sorted(records, key=lambda r: r.key)
    groups = _Groups(records)
    _strong_merges(records, groups)
    incidents = [r for r in records if r.kind != ADVISORY]
    for value, a, b, reasons in _name_candidates(incidents):
        ra, rb = groups.find(a.key), groups.find(b.key)
        if ra != rb and not groups.sources[ra] & groups.sources[rb]:
            groups.union(a.key, b.key, f"{_label(a)} + {_label(b)}: {reasons} -> {value:.2f}")
    members: dict[tuple, list[Record]] = {}
    for r in records:
        members.setdefault(groups.find(r.key), []).append(r)
    out = []
    for root, group in members.items():
        group.sort(key=lambda r: (r.day or date.max, r.key))
        out.append(Incident(_incident_id(group), group, groups.why[root]))
    out.sort(key=lambda i: (i.records[0].day or date.max, i.id))
    return out


def _strong_merges(records: list[Record], groups: _Groups) -> None:
    by_tx: dict[str, list[Record]] = {}
    by_victim: dict[str, list[tuple[int | None, Record]]] = {}
    for r in records:
        for tx in r.tx_hashes:
            for first in by_tx.setdefault(tx, []):
                _join_on_evidence(groups, first, r, f"shared transaction {tx}")
            by_tx[tx].append(r)
        for a in r.addresses:
            if a.get("role") not in STRONG_ROLES:
                continue
            chain, seen = a.get("chain_id"), by_victim.setdefault(a["address"], [])
            for c, first in seen:  # one address on two chains is two contracts, unless one side names none
                if chain is None or c is None or c == chain:
                    _join_on_evidence(groups, first, r, f"shared {a['role']} {a['address']}")
            seen.append((chain, r))


def _join_on_evidence(groups: _Groups, a: Record, b: Record, evidence: str) -> None:
    if a.day and b.day and abs((a.day - b.day).days) > STRONG_WINDOW_DAYS:
        return
    ra, rb = groups.find(a.key), groups.find(b.key)
    if ra != rb and not groups.sources[ra] & groups.sources[rb]:
        groups.union(a.key, b.key, f"{_label(a)} + {_label(b)}: {evidence}")


def _name_candidates(records: list[Record]):
    dated = sorted((r for r in records if r.day is not None), key=lambda r: (r.day, r.key))
    pairs = []
    for i, a in enumerate(dated):
        for b in dated[i + 1:]:
            if (b.day - a.day).days > WINDOW_DAYS:
                break
            if a.source == b.source:
                continue
            value, reasons = score(a, b)
            if value >= MERGE_SCORE:
                pairs.append((value, a, b, reasons))
    pairs.sort(key=lambda p: (-p[0], p[1].key, p[2].key))
    return pairs


def _label(r: Record) -> str:
    return f"{r.source}:{r.ref}"


def _incident_id(group: list[Record]) -> str:
    """Stable while the incident's earliest record stays: a hash of that record's (source, ref)."""
    first = group[0]
    return "inc-" + hashlib.sha256(f"{first.source}\x00{first.ref}".encode()).hexdigest()[:16]
