"""A similarity index over class profiles: candidates from two channels, the best of them verified.

- Opcode channel: datasketch's MinHashLSH over the opcode sketches finds near-duplicate code.
- Interface channel: an inverted index from distinctive selectors and topics finds recompiled forks, whose
  opcode Jaccard is far below any useful LSH threshold. Standard-interface features are never indexed (every
  token shares them); a query follows only its rarest few features.
Candidates are ranked by their opcode Jaccard, computed for all of them at once against a matrix of sketches,
and only the best are verified by `similarity.compare`, so a query costs the same in a family of thousands.
"""

from __future__ import annotations

import math
from array import array

import numpy as np
from datasketch import MinHashLSH

from . import _match
from .similarity import FORK_SCORE, MIN_FORK_JACCARD, ClassProfile, FeatureFrequency, IndexedClass, Link, compare
from .sketch import NUM_PERM

# 24 bands of 4 values (96 of the 256): candidate probability 1-(1-J^4)^24 is 0.79 at J = 0.5, 0.96 at 0.6 and
# 0.999 at 0.7. Forks decided on opcode evidence alone sit in [0.5, 0.8) and a family links each class to many
# others, so the few missed pairs rarely change a family; forks below come through the interface channel.
# Each band costs datasketch a Python-level hash and dict operation on insert and on query.
LSH_BANDS, LSH_ROWS = 24, 4
MIN_SHARED_FEATURES = 2  # interface-channel candidates share at least this many distinctive features
FOLLOWED_FEATURES = 6  # a query follows its rarest distinctive features, no more
MAX_POSTING = 5000  # a feature on more classes than this is too common to enumerate
VERIFY_BY_OPCODES = 12  # best opcode-channel candidates verified per query
VERIFY_BY_INTERFACE = 8  # best interface-channel candidates verified per query
# A class this close to one already in the LSH stays out of it, so that buckets stay small in big clone families.
# Queries still reach its neighbourhood: 1 - J is a metric, so J >= 0.5 to it means J >= 0.45 to the
# representative (an LSH candidate with probability >= 0.6), and its interface features stay in the postings.
# The price: a few links go to the representative instead of the nearest class.
NEAR_DUPLICATE_JACCARD = 0.95


class SimilarityIndex:
    def __init__(self, frequency: FeatureFrequency | None = None) -> None:
        """`frequency`: feature counts over a whole batch known in advance; else counted as classes arrive."""
        self._lsh = MinHashLSH(num_perm=NUM_PERM, params=(LSH_BANDS, LSH_ROWS))
        self._postings: dict[str, array] = {}
        self._classes: list[IndexedClass] = []  # per row; the sketch itself lives in the matrix
        self._last_ids: tuple[str | None, array] = (None, array("i"))
        self._best_agreement: tuple[str | None, int] = (None, 0)  # of the last query: (key, agreeing positions)
        self._row: dict[str, int] = {}
        self._matrix = np.empty((64, NUM_PERM), dtype=np.uint32)
        self._counting = frequency is None
        self.frequency = frequency if frequency is not None else FeatureFrequency()

    def __len__(self) -> int:
        return len(self._classes)

    def __contains__(self, key: str) -> bool:
        return key in self._row

    def insert(self, profile: ClassProfile) -> None:
        if profile.key in self._row:
            return
        row = len(self._classes)
        if row == len(self._matrix):
            self._matrix = np.concatenate([self._matrix, np.empty_like(self._matrix)])
        self._matrix[row] = profile.sketch
        ids = self._ids_of(profile)
        self._classes.append(IndexedClass(profile.key, ids, profile.distinctive))
        self._row[profile.key] = row
        queried, agreement = self._best_agreement
        if queried != profile.key or agreement < _agreeing(NEAR_DUPLICATE_JACCARD):
            self._lsh.insert(row, profile.minhash, check_duplication=False)
        if self._counting:
            self.frequency.add(ids)
        postings = self._postings
        for feature in profile.distinctive_features:
            posting = postings.get(feature)
            if posting is None:
                posting = postings[feature] = array("i")
            posting.append(row)

    def _ids_of(self, profile: ClassProfile) -> array:
        # a class is queried, then inserted: intern its features once for both
        if self._last_ids[0] != profile.key:
            self._last_ids = (profile.key, self.frequency.intern(profile.features))
        return self._last_ids[1]

    def _interface_rows(self, profile: ClassProfile) -> list[int]:
        # rarest first, ties by feature name: set order depends on the hash seed, results must not
        followed = sorted(
            (len(p), f)
            for f in profile.distinctive_features
            if 0 < len(p := self._postings.get(f, ())) <= MAX_POSTING
        )[:FOLLOWED_FEATURES]
        if not followed:
            return []
        postings = [self._postings[f] for _, f in followed]
        return _match.shared_rows(postings, min(MIN_SHARED_FEATURES, len(postings)), len(self._classes))

    def links(self, profile: ClassProfile) -> list[Link]:
        """Verified links from `profile` to indexed classes, best first (ties by row, so runs are stable)."""
        matrix = self._matrix[: len(self._classes)]
        # Below the fork score, opcode evidence needs interface evidence, which the interface channel brings;
        # so the opcode channel only verifies pairs its own evidence could carry.
        by_opcodes = _match.best_matches(
            matrix, self._lsh.query(profile.minhash), profile.sketch, _agreeing(FORK_SCORE), VERIFY_BY_OPCODES
        )
        self._best_agreement = (profile.key, by_opcodes[0][0] if by_opcodes else 0)
        chosen = {row: count for count, row in by_opcodes}
        for count, row in _match.best_matches(
            matrix, self._interface_rows(profile), profile.sketch, _agreeing(MIN_FORK_JACCARD), VERIFY_BY_INTERFACE
        ):
            chosen.setdefault(row, count)
        out = []
        query = IndexedClass(profile.key, self._ids_of(profile), profile.distinctive)
        self.frequency.weights()  # refreshed once per query; compare reads them as they are
        for row, count in chosen.items():
            other = self._classes[row]
            if other.key == profile.key:
                continue
            link = compare(query, other, count / NUM_PERM, self.frequency)
            if link is not None:
                out.append(link)
        out.sort(key=lambda link: (-link.similarity, link.b))
        return out


def _agreeing(jaccard: float) -> int:
    """Sketch positions that must agree for an estimate of at least `jaccard`."""
    return math.ceil(jaccard * NUM_PERM - 1e-9)
