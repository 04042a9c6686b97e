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
from array import array
from dataclasses import dataclass

import numpy as np
from datasketch import LeanMinHash

from . import _match
from .interface import STANDARD_FEATURES
from .sketch import as_minhash

CLONE_JACCARD = 0.80  # near-identical code: the same source, small edits or other constants
FORK_SCORE = 0.50  # combined score at which two classes are called one lineage
MIN_FORK_JACCARD = 0.12  # recompiled code still shares compiler idioms; unrelated code of one interface less
DISTINCTIVE_FOR_FULL_CONFIDENCE = 4  # distinctive shared features (in rare-feature units) for full confidence
PRIOR_CLASSES = 1000  # pseudo-classes in which no feature appears: unseen features are presumed rare
SIBLING_MAX_INTERFACE = 0.25  # both sides have their own distinctive interface yet share little of it
REFRESH_GROWTH = 1.10  # weights are recomputed when the class count (prior included) grew by this factor

_STANDARD, _TOPIC = 1, 2  # feature flags, as _match reads them


@dataclass(frozen=True, slots=True)
class ClassProfile:
    key: str  # skeleton hash
    sketch: np.ndarray
    selectors: frozenset[str]
    topics: frozenset[str]
    features: frozenset[str] = frozenset()
    distinctive_features: frozenset[str] = frozenset()  # features outside the standard interfaces
    minhash: LeanMinHash | None = None  # the sketch in datasketch's type, made once for LSH insert and query

    @property
    def distinctive(self) -> int:
        return len(self.distinctive_features)

    @classmethod
    def of(cls, key: str, sketch: np.ndarray, selectors, topics) -> ClassProfile:
        sels, tops = frozenset(selectors), frozenset(topics)
        features = sels | tops
        return cls(key, sketch, sels, tops, features, features - STANDARD_FEATURES, as_minhash(sketch))


class FeatureFrequency:
    """Document frequency of interface features over indexed classes (not members: clones must not count twice).

    Features are interned to small integers so that the sums over shared features run in C (`_match`).
    Weights are cached and refreshed once the class count (prior included) has grown by 10%: idf moves by
    under 0.1 meanwhile, against typical weights of 5 to 9.
    """

    def __init__(self) -> None:
        self.classes = 0
        self._ids: dict[str, int] = {}
        self._df = array("i")
        self._flags = bytearray()
        self._weights = np.empty(0)  # capacity-doubling buffer; the first _n_weights entries are valid
        self._n_weights = 0
        self._weights_at: int | None = None  # class count when the weights were computed
        self._totals: dict[str, tuple[int, tuple[float, float, float]]] = {}

    def intern(self, features: frozenset[str]) -> array:
        """Sorted ids of `features`, new ones registered with a frequency of zero."""
        ids = self._ids
        for feature in features:
            if feature not in ids:
                ids[feature] = len(self._df)
                self._df.append(0)
                self._flags.append((_STANDARD if feature in STANDARD_FEATURES else 0) | (_TOPIC if len(feature) == 66 else 0))
        return array("i", sorted(ids[f] for f in features))

    def add(self, ids: array) -> None:
        self.classes += 1
        df = self._df
        for i in ids:
            df[i] += 1

    def weights(self) -> np.ndarray:
        """idf weight per feature id. New features get theirs on arrival; all are recomputed per generation."""
        total = self.classes + PRIOR_CLASSES
        stale = self._weights_at is None or total > (self._weights_at + PRIOR_CLASSES) * REFRESH_GROWTH
        n = len(self._df)
        if stale or self._n_weights < n:
            start = 0 if stale else self._n_weights
            if stale:
                self._weights_at = self.classes
            if len(self._weights) < n:  # grow by doubling: extending per query must not copy the vocabulary
                grown = np.empty(max(n, 2 * len(self._weights), 1024))
                grown[: self._n_weights] = self._weights[: self._n_weights]
                self._weights = grown
            t = self._weights_at + PRIOR_CLASSES
            df = np.frombuffer(self._df, dtype=np.int32)[start:n].astype(np.float64)
            standard = np.frombuffer(self._flags, dtype=np.uint8)[start:n] & _STANDARD
            df = np.where(standard != 0, np.maximum(df, t / 2), df)
            self._weights[start:n] = np.log((t + 1) / (df + 1))
            self._n_weights = n
        return self._weights[:n]

    def rare_weight(self) -> float:
        """The weight of a feature seen once, in the same generation as the weights it is compared with."""
        return math.log(((self._weights_at or 0) + PRIOR_CLASSES + 1) / 2)

    def totals(self, key: str, ids: array) -> tuple[float, float, float]:
        """(all features, selectors, topics) weight totals of a class, cached per weight generation.

        Like `shared`, this uses the weights as last refreshed: a query calls `weights()` once first.
        """
        cached = self._totals.get(key)
        if cached is None or cached[0] != self._weights_at:
            weights = self._weights[: self._n_weights]
            cached = self._totals[key] = (self._weights_at, _match.weight_sums(ids, weights, self._flags))
        return cached[1]

    def shared(self, ids_a: array, ids_b: array) -> tuple[float, float, float, int]:
        """(selector weight, topic weight, distinctive weight, distinctive count) of the shared features."""
        return _match.shared_weights(ids_a, ids_b, self._weights[: self._n_weights], self._flags)


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


@dataclass(frozen=True, slots=True)
class IndexedClass:
    """What the index keeps of a class besides its sketch row: enough to verify a link, nothing more."""

    key: str
    ids: array  # interned feature ids, sorted
    distinctive: int


def compare(pa: IndexedClass, pb: IndexedClass, jaccard: float, freq: FeatureFrequency) -> Link | None:
    """Verify one candidate pair given its estimated opcode Jaccard; None when they are not one lineage."""
    if jaccard < MIN_FORK_JACCARD or (jaccard < FORK_SCORE and not (pa.distinctive and pb.distinctive)):
        return None  # without distinctive features on both sides the interface cannot lift the score
    w_sel, w_top, mass, n_distinctive = freq.shared(pa.ids, pb.ids)
    all_a, sel_a, top_a = freq.totals(pa.key, pa.ids)
    all_b, sel_b, top_b = freq.totals(pb.key, pb.ids)
    iface = _ratio(w_sel + w_top, all_a, all_b)
    confidence = min(1.0, mass / freq.rare_weight() / DISTINCTIVE_FOR_FULL_CONFIDENCE)
    score = max(jaccard, (jaccard + iface * confidence) / 2)
    if jaccard >= CLONE_JACCARD:
        relation = "clone"
    elif score < FORK_SCORE:
        return None
    elif min(pa.distinctive, pb.distinctive) >= DISTINCTIVE_FOR_FULL_CONFIDENCE and iface < SIBLING_MAX_INTERFACE:
        # Siblings, not forks: each has a distinctive interface of its own and they share little of it,
        # so what they share is library code, not lineage.
        return None
    else:
        relation = "fork"
    evidence = {
        "opcode_jaccard": round(jaccard, 4),
        "interface_similarity": round(iface, 4),
        "interface_confidence": round(confidence, 4),
        "selector_similarity": round(_ratio(w_sel, sel_a, sel_b), 4),
        "topic_similarity": round(_ratio(w_top, top_a, top_b), 4),
        "shared_distinctive_features": n_distinctive,
    }
    return Link(pa.key, pb.key, relation, round(score, 4), evidence)  # the combined score that decided it
