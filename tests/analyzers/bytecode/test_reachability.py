"""The cheap reachability analysis against evmole's full control-flow graph (≈40× dearer) on real code."""

from __future__ import annotations

import bisect
import statistics

import evmole
import pytest

from kamiyo.analyzers.bytecode.decode import instructions
from kamiyo.analyzers.bytecode.normalize import normalize


@pytest.mark.corpus
def test_reachable_code_covers_what_a_full_cfg_reaches_and_little_more(corpus):
    sample = [row["raw"] for row in corpus if row["dataset"] == "solc08-over5k"][::20]
    assert len(sample) >= 80
    ratios = []
    for code in sample:
        pcs = [i.pc for i in instructions(code)]
        covered = set()
        for block in evmole.contract_info(code, control_flow_graph=True).control_flow_graph.blocks:
            covered.update(range(bisect.bisect_left(pcs, block.start), bisect.bisect_right(pcs, block.end)))
        ratios.append(normalize(code).reachable_instructions / max(1, len(covered)))
    below = [r for r in ratios if r < 1]
    assert len(below) <= len(ratios) // 100, f"reachable code missed what the CFG reaches in {len(below)} contracts"
    assert statistics.median(ratios) <= 1.02  # an over-approximation, but a tight one
