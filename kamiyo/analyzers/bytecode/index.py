"""A similarity index over class profiles: candidates from two channels, every candidate verified.

- Opcode channel: datasketch's MinHashLSH over the opcode sketches finds near-duplicate code.
- Interface channel: an inverted index from distinctive selectors and topics finds recompiled forks, whose
  opcode Jaccard is far below any useful LSH threshold. Standard-interface features are never indexed (every
  token shares them) and very common features stop being followed once their posting list is long.
Candidates are verified by `similarity.compare`; only verified links leave the index.
"""

from __future__ import annotations

from collections import Counter

from datasketch import MinHashLSH

from .interface import STANDARD_FEATURES
from .similarity import ClassProfile, FeatureFrequency, Link, compare
from .sketch import NUM_PERM, as_minhash

LSH_THRESHOLD = 0.45  # below the fork score, so J-only forks at 0.5 are still candidates
MIN_SHARED_FEATURES = 2  # interface-channel candidates share at least this many distinctive features
MAX_POSTING = 5000  # a feature on more classes than this is too common to enumerate


class SimilarityIndex:
    def __init__(self, frequency: FeatureFrequency | None = None) -> None:
        """`frequency`: feature counts over a whole batch known in advance; else counted as classes arrive."""
        self._lsh = MinHashLSH(threshold=LSH_THRESHOLD, num_perm=NUM_PERM)
        self._postings: dict[str, list[str]] = {}
        self._profiles: dict[str, ClassProfile] = {}
        self._counting = frequency is None
        self.frequency = frequency if frequency is not None else FeatureFrequency()

    def __len__(self) -> int:
        return len(self._profiles)

    def __contains__(self, key: str) -> bool:
        return key in self._profiles

    def insert(self, profile: ClassProfile) -> None:
        if profile.key in self._profiles:
            return
        self._profiles[profile.key] = profile
        self._lsh.insert(profile.key, as_minhash(profile.sketch), check_duplication=False)
        if self._counting:
            self.frequency.add(profile.features)
        for feature in profile.features - STANDARD_FEATURES:
            self._postings.setdefault(feature, []).append(profile.key)

    def candidates(self, profile: ClassProfile) -> set[str]:
        found = set(self._lsh.query(as_minhash(profile.sketch)))
        distinctive = profile.features - STANDARD_FEATURES
        need = min(MIN_SHARED_FEATURES, len(distinctive))
        if need:
            shared: Counter[str] = Counter()
            for feature in distinctive:
                posting = self._postings.get(feature, ())
                if len(posting) <= MAX_POSTING:
                    shared.update(posting)
            found.update(key for key, count in shared.items() if count >= need)
        found.discard(profile.key)
        return found

    def links(self, profile: ClassProfile) -> list[Link]:
        """Verified links from `profile` to indexed classes, best first (ties by key, so runs are stable)."""
        out = []
        for key in self.candidates(profile):
            link = compare(profile, self._profiles[key], self.frequency)
            if link is not None:
                out.append(link)
        out.sort(key=lambda link: (-link.similarity, link.b))
        return out
