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
from dataclasses import dataclass

import numpy as np

from .interface import STANDARD_FEATURES

CLONE_JACCARD = 0.80  # near-identical code: the same source, small edits or other constants
FORK_SCORE = 0.50  # combined score at which two classes are called one lineage
MIN_FORK_JACCARD = 0.12  # recompiled code still shares compiler idioms; unrelated code of one interface less
DISTINCTIVE_FOR_FULL_CONFIDENCE = 4  # distinctive shared features (in rare-feature units) for full confidence
PRIOR_CLASSES = 1000  # pseudo-classes in which no feature appears: unseen features are presumed rare
SIBLING_MAX_INTERFACE = 0.25  # both sides have their own distinctive interface yet share little of it


@dataclass(frozen=True, slots=True)
class ClassProfile:
    key: str  # skeleton hash
    sketch: np.ndarray
    selectors: frozenset[str]
    topics: frozenset[str]
    features: frozenset[str] = frozenset()
    distinctive: int = 0  # features outside the standard interfaces

    @classmethod
    def of(cls, key: str, sketch: np.ndarray, selectors, topics) -> ClassProfile:
        sels, tops = frozenset(selectors), frozenset(topics)
        features = sels | tops
        return cls(key, sketch, sels, tops, features, len(features - STANDARD_FEATURES))


class _Weights(dict):
    """feature -> idf weight, computed on first use (so sums over sets run at C speed via map)."""

    def __init__(self, freq: FeatureFrequency) -> None:
        super().__init__()
        self.freq = freq

    def __missing__(self, feature: str) -> float:
        freq = self.freq
        total = freq.classes + PRIOR_CLASSES
        df = freq.counts.get(feature, 0)
        if feature in STANDARD_FEATURES:
            df = max(df, total / 2)
        w = self[feature] = math.log((total + 1) / (df + 1))
        return w


class FeatureFrequency:
    """Document frequency of interface features over indexed classes (not members: clones must not count twice).

    Weights are cached and refreshed once the index has grown by 5%: idf moves by under 0.05 meanwhile.
    """

    def __init__(self) -> None:
        self.classes = 0
        self.counts: Counter[str] = Counter()
        self._weights = _Weights(self)
        self._weights_at = 0
        self._totals: dict[str, tuple[int, float]] = {}

    def add(self, features: frozenset[str]) -> None:
        self.classes += 1
        self.counts.update(features)

    def weights(self) -> _Weights:
        if self.classes > self._weights_at * 1.05 + 1:
            self._weights = _Weights(self)
            self._weights_at = self.classes
        return self._weights

    def weight(self, feature: str) -> float:
        return self.weights()[feature]

    def sum(self, features) -> float:
        return sum(map(self.weights().__getitem__, features))

    def rare_weight(self) -> float:
        return math.log((self.classes + PRIOR_CLASSES + 1) / 2)

    def total(self, profile: ClassProfile) -> float:
        generation = self._weights_at
        cached = self._totals.get(profile.key)
        if cached is None or cached[0] != generation:
            cached = self._totals[profile.key] = (generation, self.sum(profile.features))
        return cached[1]

    def similarity(self, a: frozenset[str], b: frozenset[str]) -> float:
        """IDF-weighted Jaccard of two feature sets."""
        w_union = self.sum(a | b)
        return self.sum(a & b) / w_union if w_union else 0.0


@dataclass(frozen=True, slots=True)
class Link:
    a: str
    b: str
    relation: str  # "clone" | "fork"
    similarity: float
    evidence: dict


def compare(pa: ClassProfile, pb: ClassProfile, jaccard: float, freq: FeatureFrequency) -> Link | None:
    """Verify one candidate pair given its estimated opcode Jaccard; None when they are not one lineage."""
    if jaccard < MIN_FORK_JACCARD:
        return None
    shared = pa.features & pb.features
    w_shared = freq.sum(shared)
    w_union = freq.total(pa) + freq.total(pb) - w_shared
    iface = w_shared / w_union if w_union > 0 else 0.0
    mass = freq.sum(shared - STANDARD_FEATURES) / freq.rare_weight()
    confidence = min(1.0, mass / DISTINCTIVE_FOR_FULL_CONFIDENCE)
    score = max(jaccard, (jaccard + iface * confidence) / 2)
    if jaccard >= CLONE_JACCARD:
        relation, similarity = "clone", jaccard
    elif score < FORK_SCORE:
        return None
    elif min(pa.distinctive, pb.distinctive) >= DISTINCTIVE_FOR_FULL_CONFIDENCE and iface < SIBLING_MAX_INTERFACE:
        # Siblings, not forks: each has a distinctive interface of its own and they share little of it,
        # so what they share is library code, not lineage.
        return None
    else:
        relation, similarity = "fork", score
    evidence = {
        "opcode_jaccard": round(jaccard, 4),
        "interface_similarity": round(iface, 4),
        "interface_confidence": round(confidence, 4),
        "selector_similarity": round(freq.similarity(pa.selectors, pb.selectors), 4),
        "topic_similarity": round(freq.similarity(pa.topics, pb.topics), 4),
        "shared_distinctive_features": len(shared - STANDARD_FEATURES),
    }
    return Link(pa.key, pb.key, relation, round(similarity, 4), evidence)
