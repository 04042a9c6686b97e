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
from datasketch import LeanMinHash

from .interface import STANDARD_FEATURES
from .sketch import as_minhash

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

    minhash: LeanMinHash | None = None  # the sketch in datasketch's type, made once for LSH insert and query

    @classmethod
    def of(cls, key: str, sketch: np.ndarray, selectors, topics) -> ClassProfile:
        sels, tops = frozenset(selectors), frozenset(topics)
        features = sels | tops
        return cls(key, sketch, sels, tops, features, len(features - STANDARD_FEATURES), as_minhash(sketch))


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

    Weights are cached and refreshed once the index has grown by 10%: idf moves by under 0.1 meanwhile,
    against typical weights of 5 to 9.
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
        if self.classes > self._weights_at * 1.10 + 1:
            self._weights = _Weights(self)
            self._weights_at = self.classes
        return self._weights

    def weight(self, feature: str) -> float:
        return self.weights()[feature]

    def sum(self, features) -> float:
        return sum(map(self.weights().__getitem__, features))

    def rare_weight(self) -> float:
        return math.log((self.classes + PRIOR_CLASSES + 1) / 2)

    def totals(self, profile: ClassProfile) -> tuple[float, float, float]:
        """(all features, selectors, topics) weight totals of a profile, cached per weight generation."""
        cached = self._totals.get(profile.key)
        if cached is None or cached[0] != self._weights_at:
            sel, top = self.sum(profile.selectors), self.sum(profile.topics)
            cached = self._totals[profile.key] = (self._weights_at, sel + top, sel, top)
        return cached[1:]


@dataclass(frozen=True, slots=True)
class Link:
    a: str
    b: str
    relation: str  # "clone" | "fork"
    similarity: float
    evidence: dict


def _ratio(shared: float, a: float, b: float) -> float:
    union = a + b - shared
    return shared / union if union > 0 else 0.0


def compare(pa: ClassProfile, pb: ClassProfile, jaccard: float, freq: FeatureFrequency) -> Link | None:
    """Verify one candidate pair given its estimated opcode Jaccard; None when they are not one lineage."""
    if jaccard < MIN_FORK_JACCARD or (jaccard < FORK_SCORE and not (pa.distinctive and pb.distinctive)):
        return None  # without distinctive features on both sides the interface cannot lift the score
    weights = freq.weights()
    w_sel = w_top = mass = 0.0
    n_distinctive = 0
    for feature in pa.features & pb.features:  # one pass: selectors are 10 characters, topics 66
        w = weights[feature]
        if len(feature) == 10:
            w_sel += w
        else:
            w_top += w
        if feature not in STANDARD_FEATURES:
            mass += w
            n_distinctive += 1
    all_a, sel_a, top_a = freq.totals(pa)
    all_b, sel_b, top_b = freq.totals(pb)
    iface = _ratio(w_sel + w_top, all_a, all_b)
    confidence = min(1.0, mass / freq.rare_weight() / DISTINCTIVE_FOR_FULL_CONFIDENCE)
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
        "selector_similarity": round(_ratio(w_sel, sel_a, sel_b), 4),
        "topic_similarity": round(_ratio(w_top, top_a, top_b), 4),
        "shared_distinctive_features": n_distinctive,
    }
    return Link(pa.key, pb.key, relation, round(similarity, 4), evidence)
