"""Interface evidence against ground truth: ABI-derived selectors and event topics of verified contracts."""

from __future__ import annotations

import pytest

from kamiyo.analyzers.bytecode.analysis import analyze_code
from kamiyo.analyzers.bytecode.interface import STANDARD_FEATURES, selector_of, topic_of


def test_signature_hashing_matches_well_known_values():
    assert selector_of("transfer(address,uint256)") == "0xa9059cbb"
    assert selector_of("getReserves()") == "0x0902f1ac"
    assert topic_of("Transfer(address,address,uint256)") == (
        "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
    )


def test_standard_features_cover_erc20_and_exclude_protocol_specific_ones():
    assert {"0xa9059cbb", "0x095ea7b3", "0x70a08231"} <= STANDARD_FEATURES
    assert topic_of("Transfer(address,address,uint256)") in STANDARD_FEATURES
    assert selector_of("getReserves()") not in STANDARD_FEATURES


@pytest.fixture(scope="module")
def analysed(labeled_corpus):
    return [(row, analyze_code(row["raw"])) for row in labeled_corpus]


@pytest.mark.corpus
def test_selectors_equal_the_abi_ground_truth_on_99_percent(analysed):
    exact = sum(1 for row, a in analysed if set(a.selectors) == set(row["selectors"]))
    assert exact / len(analysed) >= 0.99, f"{exact} of {len(analysed)} contracts match their ABI's selectors"
    assert all(list(a.selectors) == sorted(a.selectors) for _, a in analysed)


@pytest.mark.corpus
def test_event_topics_are_precise(analysed):
    """Topics come from PUSH32 constants feeding a LOG; an ABI also lists events a contract never emits,
    so recall is bounded, but what is reported must be a real event of the contract."""
    found = true = listed = 0
    for row, a in analysed:
        truth = set(row["events"])
        found += len(a.event_topics)
        true += len(set(a.event_topics) & truth)
        listed += len(truth)
    assert true / found >= 0.97, f"precision {true / found:.3f}"
    assert true / listed >= 0.75, f"recall {true / listed:.3f}"
