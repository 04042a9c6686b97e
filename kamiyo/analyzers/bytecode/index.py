"""A similarity index over class profiles: candidates from two channels, the best of them verified.

- Opcode channel: datasketch's MinHashLSH over the opcode sketches finds near-duplicate code.
- Interface channel: an inverted index from distinctive selectors and topics finds recompiled forks, whose
  opcode Jaccard is far below any useful LSH threshold. Standard-interface features are never indexed (every
  token shares them); a query follows only its rarest few features.
Candidates are ranked by their opcode Jaccard, computed for all of them at once against a matrix of sketches,
and only the best are verified by `similarity.compare`, so a query costs the same in a family of thousands.
"""

from __future__ import annotations

from array import array

import numpy as np
from datasketch import MinHashLSH

from .interface import STANDARD_FEATURES
from .similarity import FORK_SCORE, MIN_FORK_JACCARD, ClassProfile, FeatureFrequency, Link, compare
from .sketch import NUM_PERM

# 32 bands of 4 values (128 of the 256): candidate probability 1-(1-J^4)^32 is 0.87 at J = 0.5 and 0.99 at
# J = 0.6, so forks decided on opcode evidence alone are found; lower pairs come through the interface channel.
LSH_BANDS, LSH_ROWS = 32, 4
MIN_SHARED_FEATURES = 2  # interface-channel candidates share at least this many distinctive features
FOLLOWED_FEATURES = 6  # a query follows its rarest distinctive features, no more
MAX_POSTING = 5000  # a feature on more classes than this is too common to enumerate
VERIFY_BY_OPCODES = 12  # best opcode-channel candidates verified per query
VERIFY_BY_INTERFACE = 8  # best interface-channel candidates verified per query


class SimilarityIndex:
    def __init__(self, frequency: FeatureFrequency | None = None) -> None:
        """`frequency`: feature counts over a whole batch known in advance; else counted as classes arrive."""
        self._lsh = MinHashLSH(num_perm=NUM_PERM, params=(LSH_BANDS, LSH_ROWS))
        self._postings: dict[str, array] = {}
        self._profiles: list[ClassProfile] = []
        self._row: dict[str, int] = {}
        self._matrix = np.empty((64, NUM_PERM), dtype=np.uint32)
        self._counting = frequency is None
        self.frequency = frequency if frequency is not None else FeatureFrequency()

    def __len__(self) -> int:
        return len(self._profiles)

    def __contains__(self, key: str) -> bool:
        return key in self._row

    def insert(self, profile: ClassProfile) -> None:
        if profile.key in self._row:
            return
        row = len(self._profiles)
        if row == len(self._matrix):
            self._matrix = np.concatenate([self._matrix, np.empty_like(self._matrix)])
        self._matrix[row] = profile.sketch
        self._profiles.append(profile)
        self._row[profile.key] = row
        self._lsh.insert(row, profile.minhash, check_duplication=False)
        if self._counting:
            self.frequency.add(profile.features)
        for feature in profile.features - STANDARD_FEATURES:
            self._postings.setdefault(feature, array("i")).append(row)

    def _interface_rows(self, profile: ClassProfile) -> np.ndarray:
        # rarest first, ties by feature name: set order depends on the hash seed, results must not
        followed = sorted(
            (len(p), f)
            for f in profile.features - STANDARD_FEATURES
            if 0 < len(p := self._postings.get(f, ())) <= MAX_POSTING
        )[:FOLLOWED_FEATURES]
        postings = [self._postings[f] for _, f in followed]
        if not postings:
            return np.empty(0, dtype=np.int64)
        rows, counts = np.unique(np.concatenate([np.frombuffer(p, dtype=np.int32) for p in postings]), return_counts=True)
        return rows[counts >= min(MIN_SHARED_FEATURES, len(postings))].astype(np.int64)

    def links(self, profile: ClassProfile) -> list[Link]:
        """Verified links from `profile` to indexed classes, best first (ties by key, so runs are stable)."""
        lsh_rows = np.fromiter(self._lsh.query(profile.minhash), dtype=np.int64)
        iface_rows = self._interface_rows(profile)
        n_lsh = len(lsh_rows)
        rows = np.concatenate([lsh_rows, iface_rows])
        if len(rows) == 0:
            return []
        jaccard = np.count_nonzero(self._matrix[rows] == profile.sketch, axis=1) / NUM_PERM
        chosen: dict[int, float] = {}
        # Below the fork score, opcode evidence needs interface evidence, which the interface channel brings;
        # so the opcode channel only verifies pairs its own evidence could carry.
        channels = ((slice(0, n_lsh), VERIFY_BY_OPCODES, FORK_SCORE), (slice(n_lsh, None), VERIFY_BY_INTERFACE, MIN_FORK_JACCARD))
        for part, limit, floor in channels:
            r, j = rows[part], jaccard[part]
            keep = j >= floor
            r, j = r[keep], j[keep]
            best = np.lexsort((r, -j))[:limit]
            chosen.update(zip(r[best].tolist(), j[best].tolist()))
        out = []
        for row, jaccard in chosen.items():
            other = self._profiles[row]
            if other.key != profile.key and (link := compare(profile, other, jaccard, self.frequency)) is not None:
                out.append(link)
        out.sort(key=lambda link: (-link.similarity, link.b))
        return out
