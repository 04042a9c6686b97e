"""Opcode MinHash sketches: accuracy against exact shingle Jaccard on real contract pairs, and sketch invariants."""

from __future__ import annotations

import random

import numpy as np
import pytest
from datasketch import LeanMinHash
from hypothesis import given, settings
from hypothesis import strategies as st

from kamiyo.analyzers.bytecode import sketch
from kamiyo.analyzers.bytecode.analysis import analyze_code
from kamiyo.analyzers.bytecode.normalize import normalize

TOLERANCE = 0.07  # the accuracy sketch.py promises at NUM_PERM = 256
BIN_EDGES = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
PER_BIN = 40
MIN_PER_BIN = 10
SUBSET = 3000
WINDOW = 0.1  # candidates for a bin: estimate within this of the bin (over 3 standard deviations of the estimate)
MAX_USES = 2  # a contract takes part in at most this many binned pairs, so clone clusters do not dominate


def exact_jaccard(a: bytes, b: bytes) -> float:
    sa, sb = sketch.shingles(a), sketch.shingles(b)
    return len(sa & sb) / len(sa | sb)


# ------------------------------------------------------------------------------------------- real pairs


@pytest.fixture(scope="module")
def binned_pairs(corpus) -> list[list[tuple[float, float]]]:
    """(exact J, estimate) per bin, for real pairs from the first SUBSET corpus contracts that have a sketch.

    Candidates come from all-pairs sketch estimates with a wide margin around each bin, then exact Jaccard
    decides the bin. The margin makes a pair's chance of being a candidate nearly independent of its
    estimation error, so the sample is not biased towards pairs the sketch gets right.
    """
    ops, sketches = [], []
    for row in corpus:
        analysis = analyze_code(row["raw"])
        if analysis.sketch is None:  # proxies and empty code
            continue
        ops.append(normalize(row["raw"]).reachable_ops)
        sketches.append(analysis.sketch)
        if len(ops) == SUBSET:
            break
    matrix = np.stack(sketches)
    pairs_i, pairs_j, estimates = [], [], []
    floor = int((BIN_EDGES[0] - WINDOW) * sketch.NUM_PERM)
    for i in range(len(matrix) - 1):
        agree = np.count_nonzero(matrix[i + 1 :] == matrix[i], axis=1)
        hits = np.nonzero(agree >= floor)[0]
        pairs_i.append(np.full(len(hits), i))
        pairs_j.append(hits + i + 1)
        estimates.append(agree[hits] / sketch.NUM_PERM)
    all_i, all_j, all_est = np.concatenate(pairs_i), np.concatenate(pairs_j), np.concatenate(estimates)

    rng = random.Random(20240611)
    uses: dict[int, int] = {}
    bins: list[list[tuple[float, float]]] = []
    for lo, hi in zip(BIN_EDGES, BIN_EDGES[1:]):
        window = np.nonzero((all_est >= lo - WINDOW) & (all_est < hi + WINDOW))[0].tolist()
        rng.shuffle(window)
        found: list[tuple[float, float]] = []
        for k in window[:4000]:
            i, j = int(all_i[k]), int(all_j[k])
            if uses.get(i, 0) >= MAX_USES or uses.get(j, 0) >= MAX_USES:
                continue
            jaccard = exact_jaccard(ops[i], ops[j])
            if lo <= jaccard < hi:
                found.append((jaccard, sketch.estimate_jaccard(sketches[i], sketches[j])))
                uses[i], uses[j] = uses.get(i, 0) + 1, uses.get(j, 0) + 1
                if len(found) == PER_BIN:
                    break
        bins.append(found)
    return bins


@pytest.mark.corpus
def test_every_jaccard_bin_is_populated_from_real_pairs(binned_pairs):
    counts = [len(b) for b in binned_pairs]
    assert all(n >= MIN_PER_BIN for n in counts), counts


@pytest.mark.corpus
def test_estimate_within_tolerance_of_exact_jaccard_on_real_pairs(binned_pairs):
    errors = [abs(est - exact) for found in binned_pairs for exact, est in found]
    within = sum(e <= TOLERANCE for e in errors) / len(errors)
    per_bin = {
        f"[{lo:.1f},{hi:.1f})": f"{sum(abs(e - x) <= TOLERANCE for x, e in found)}/{len(found)}"
        for (lo, hi), found in zip(zip(BIN_EDGES, BIN_EDGES[1:]), binned_pairs)
    }
    assert within >= 0.95, per_bin
    # No pair is far off: a gross miss would be a bug, not sampling noise (5+ standard deviations).
    assert max(errors) <= 0.16, per_bin


@pytest.mark.corpus
def test_binned_pairs_really_lie_in_their_bins(binned_pairs):
    for (lo, hi), found in zip(zip(BIN_EDGES, BIN_EDGES[1:]), binned_pairs):
        assert all(lo <= exact < hi for exact, _ in found)


# ------------------------------------------------------------------------------------------- properties


def _random_ops(rng: random.Random, n: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(n))


def test_identical_ops_give_identical_sketches_and_calls_are_deterministic():
    ops = _random_ops(random.Random(1), 1500)
    first = sketch.opcode_sketch(ops)
    assert first is not None and first.dtype == np.dtype("<u4") and len(first) == sketch.NUM_PERM
    assert np.array_equal(first, sketch.opcode_sketch(bytes(ops)))
    assert np.array_equal(first, sketch.opcode_sketch(ops))
    assert sketch.estimate_jaccard(first, sketch.opcode_sketch(ops)) == 1.0
    other = sketch.opcode_sketch(_random_ops(random.Random(2), 1500))
    assert not np.array_equal(first, other)
    assert sketch.estimate_jaccard(first, other) < 0.05


def test_sketch_of_real_code_is_deterministic(npm_artifact):
    code = npm_artifact("uniswap-v2-pair")
    a, b = analyze_code(code).sketch, analyze_code(bytes(code)).sketch
    assert a is not None and np.array_equal(a, b)
    assert np.array_equal(a, sketch.opcode_sketch(normalize(code).reachable_ops))


def test_serialize_round_trip_and_size():
    values = sketch.opcode_sketch(_random_ops(random.Random(3), 4000))
    blob = sketch.serialize(values)
    assert isinstance(blob, bytes) and len(blob) <= 1100
    back = sketch.deserialize(blob)
    assert back.dtype == np.dtype("<u4")
    assert np.array_equal(back, values)
    assert sketch.estimate_jaccard(back, values) == 1.0


@pytest.mark.parametrize(("seed", "size"), [(1, sketch.NUM_PERM), (sketch.SEED, 128), (sketch.SEED + 1, 64)])
def test_deserialize_rejects_sketches_of_other_parameters(seed, size):
    values = sketch.opcode_sketch(_random_ops(random.Random(4), 800))[:size]
    lean = LeanMinHash(seed=seed, hashvalues=values.astype(np.uint64), scheme=sketch.SCHEME)
    buf = bytearray(lean.bytesize())
    lean.serialize(buf)
    with pytest.raises(ValueError, match="other parameters"):
        sketch.deserialize(bytes(buf))


def test_too_few_opcodes_give_no_sketch():
    assert sketch.opcode_sketch(b"") is None
    assert sketch.opcode_sketch(b"abc") is None
    assert sketch.opcode_sketch(b"abcd") is None
    assert sketch.opcode_sketch(b"abcde") is not None  # one shingle is enough
    assert sketch.shingles(b"abcd") == set()


@st.composite
def _related_pair(draw) -> tuple[bytes, bytes]:
    """Two op strings of 200-2000 bytes that share a drawn portion of their code, so J covers [0, 1]."""
    alphabet = draw(st.sampled_from([4, 16, 256]))  # small alphabets repeat shingles, as real code does
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(200, 2000))
    a = bytes(rng.randrange(alphabet) for _ in range(n))
    b = bytearray(a)
    for _ in range(draw(st.integers(0, 30))):  # replace random slices
        start = rng.randrange(len(b))
        length = rng.randrange(1, 120)
        b[start : start + length] = bytes(rng.randrange(alphabet) for _ in range(rng.randrange(1, 120)))
    b = bytes(b[:2000]).ljust(200, b"\x00")
    return a, b


@settings(max_examples=150, deadline=None)
@given(_related_pair())
def test_estimate_close_to_exact_jaccard_for_random_op_strings(pair):
    a, b = pair
    estimate = sketch.estimate_jaccard(sketch.opcode_sketch(a), sketch.opcode_sketch(b))
    assert abs(estimate - exact_jaccard(a, b)) <= 0.15


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=5, max_size=400))
def test_sketch_of_itself_estimates_one(ops):
    values = sketch.opcode_sketch(ops)
    assert values is not None and len(values) == sketch.NUM_PERM
    assert sketch.estimate_jaccard(values, sketch.opcode_sketch(ops)) == 1.0
    assert np.array_equal(sketch.deserialize(sketch.serialize(values)), values)


def test_estimate_is_unbiased_over_many_pairs_of_designed_overlap():
    """A = X+Y, B = X+Z over random bytes: shingle overlap set by |X| and |Y| = |Z|; mean error within 0.02."""
    rng = random.Random(5)
    errors, exacts = [], []
    for _ in range(400):
        target = rng.uniform(0.05, 0.95)
        total = rng.choice([60, 300, 1500, 5000])  # sets smaller than NUM_PERM exercise densification
        shared = max(1, round(total * target))
        own = max(1, round((total - shared) / 2))
        x = _random_ops(rng, shared + 4)
        a = x + _random_ops(rng, own)
        b = x + _random_ops(rng, own)
        exact = exact_jaccard(a, b)
        errors.append(sketch.estimate_jaccard(sketch.opcode_sketch(a), sketch.opcode_sketch(b)) - exact)
        exacts.append(exact)
    assert min(exacts) < 0.15 and max(exacts) > 0.85  # the design covers the range
    assert abs(float(np.mean(errors))) <= 0.02
    # and the spread matches MinHash at 256 permutations (std <= 0.5/16 ≈ 0.031), not something looser
    assert float(np.std(errors)) <= 0.04
