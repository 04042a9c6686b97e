"""Deciding whether two classes of code share a lineage, and how closely: `compare`.

Two kinds of evidence, because each fails alone:
- opcode-shingle Jaccard (from the sketches) sees edited clones but collapses when code is recompiled
  (Uniswap V2's pair under solc 0.5.16 vs SushiSwap's under 0.6.12 share only ~0.25);
- interface similarity (selectors and event topics) survives recompilation but is shared by every
  implementation of a common standard.
Interface features are weighted by inverse document frequency over the indexed classes, with widely
implemented standards presumed common whatever the corpus (see interface.STANDARD_FEATURES), and an interface
match only counts in full once it rests on several distinctive features.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .interface import STANDARD_FEATURES
from .sketch import estimate_jaccard

CLONE_JACCARD = 0.80  # near-identical code: the same source, small edits or other constants
FORK_SCORE = 0.50  # combined score at which two classes are called one lineage
MIN_FORK_JACCARD = 0.12  # recompiled code still shares compiler idioms; unrelated code of one interface less
DISTINCTIVE_FOR_FULL_CONFIDENCE = 4  # distinctive shared features before an interface match counts in full
PRIOR_CLASSES = 1000  # pseudo-classes in which no feature appears: unseen features are presumed rare
SIBLING_MAX_INTERFACE = 0.25  # both sides have their own distinctive interface yet share little of it


@dataclass(frozen=True, slots=True)
class ClassProfile:
    key: str  # skeleton hash
    sketch: np.ndarray
    selectors: frozenset[str]
    topics: frozenset[str]

    @property
    def features(self) -> frozenset[str]:
        return self.selectors | self.topics


@dataclass(slots=True)
class FeatureFrequency:
    """Document frequency of interface features over indexed classes (not members: clones must not count twice)."""

    classes: int = 0
    counts: Counter = field(default_factory=Counter)

    def add(self, features: frozenset[str]) -> None:
        self.classes += 1
        self.counts.update(features)

    def weight(self, feature: str) -> float:
        total = self.classes + PRIOR_CLASSES
        df = self.counts.get(feature, 0)
        if feature in STANDARD_FEATURES:
            df = max(df, total / 2)
        return math.log((total + 1) / (df + 1))

    def rare_weight(self) -> float:
        return math.log(self.classes + PRIOR_CLASSES + 1) - math.log(2)


@dataclass(frozen=True, slots=True)
class Link:
    a: str
    b: str
    relation: str  # "clone" | "fork"
    similarity: float
    evidence: dict


def _weighted_jaccard(a: frozenset[str], b: frozenset[str], freq: FeatureFrequency) -> tuple[float, float, int]:
    """(weighted Jaccard, weight of the shared distinctive features in rare-feature units, distinctive count)."""
    union = a | b
    if not union:
        return 0.0, 0.0, 0
    shared = a & b
    w_union = sum(freq.weight(f) for f in union)
    w_shared = sum(freq.weight(f) for f in shared)
    distinctive = [f for f in shared if f not in STANDARD_FEATURES]
    mass = sum(freq.weight(f) for f in distinctive) / freq.rare_weight()
    return (w_shared / w_union if w_union else 0.0), mass, len(distinctive)


def _distinctive(features: frozenset[str]) -> int:
    return sum(1 for f in features if f not in STANDARD_FEATURES)


def compare(pa: ClassProfile, pb: ClassProfile, freq: FeatureFrequency) -> Link | None:
    jaccard = estimate_jaccard(pa.sketch, pb.sketch)
    iface, mass, n_distinctive = _weighted_jaccard(pa.features, pb.features, freq)
    sel, _, _ = _weighted_jaccard(pa.selectors, pb.selectors, freq)
    top, _, _ = _weighted_jaccard(pa.topics, pb.topics, freq)
    confidence = min(1.0, mass / DISTINCTIVE_FOR_FULL_CONFIDENCE)
    interface = iface * confidence
    score = max(jaccard, (jaccard + interface) / 2)
    evidence = {
        "opcode_jaccard": round(jaccard, 4),
        "interface_similarity": round(iface, 4),
        "interface_confidence": round(confidence, 4),
        "selector_similarity": round(sel, 4),
        "topic_similarity": round(top, 4),
        "shared_distinctive_features": n_distinctive,
    }
    if jaccard >= CLONE_JACCARD:
        return Link(pa.key, pb.key, "clone", round(jaccard, 4), evidence)
    if score < FORK_SCORE or jaccard < MIN_FORK_JACCARD:
        return None
    # Siblings, not forks: two contracts that each have a distinctive interface of their own and share
    # little of it are different products built on common library code.
    own_a, own_b = _distinctive(pa.features), _distinctive(pb.features)
    if min(own_a, own_b) >= DISTINCTIVE_FOR_FULL_CONFIDENCE and iface < SIBLING_MAX_INTERFACE:
        return None
    return Link(pa.key, pb.key, "fork", round(score, 4), evidence)
