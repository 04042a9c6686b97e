"""Traces from both dialects become the same tree; a block's answers become the activity analyzers see."""

from __future__ import annotations

import pytest

from kamiyo.analyzers.tx.base import CallFrame
from kamiyo.chains.activity import block_activity, traces_of
from kamiyo.chains.blocks import BlockRef
from kamiyo.chains.deployments import DEBUG_TRACE, RECEIPTS, TRACE_BLOCK, BlockTraces
from kamiyo.chains.mappers import MalformedNodeAnswer
from kamiyo.chains.traces import call_tracer_block, parity_block

A, B, C, D = ("0x" + c * 40 for c in "abcd")
TX = "0x" + "11" * 32
BLOCK = BlockRef(chain_id=1, number=7, hash="0x" + "77" * 32, parent_hash="0x" + "66" * 32)


def parity(address, kind="call", **action):
    entry = {"transactionHash": TX, "traceAddress": address, "type": kind, "result": {"output": "0x"}}
    entry["action"] = {"callType": "call", "from": A, "to": B, "value": "0x0", "input": "0x12345678", **action}
    return entry


CALL_TRACER = {"txHash": TX, "result": {
    "type": "CALL", "from": A, "to": B, "value": "0x0", "input": "0x12345678", "output": "0x", "calls": [
        {"type": "DELEGATECALL", "from": B, "to": C, "input": "0xaabbccdd", "calls": [
            {"type": "CALL", "from": B, "to": D, "value": "0x5", "input": "0x"}]},
        {"type": "CALL", "from": B, "to": A, "value": "0x0", "input": "0x01020304", "error": "execution reverted"},
    ]}}
PARITY = [
    parity([]),
    parity([0], callType="delegatecall", **{"from": B, "to": C, "input": "0xaabbccdd"}),
    parity([0, 0], **{"from": B, "to": D, "value": "0x5", "input": "0x"}),
    {**parity([1], **{"from": B, "to": A, "input": "0x01020304"}), "error": "execution reverted"},
]


def shape(frame: CallFrame):
    return (frame.kind, frame.sender, frame.to, frame.value, bool(frame.error), tuple(shape(c) for c in frame.calls))


def test_both_dialects_give_the_same_tree():
    nested, flat = call_tracer_block([CALL_TRACER])[TX], parity_block(PARITY)[TX]
    assert shape(nested) == shape(flat)
    assert shape(nested) == ("CALL", A, B, 0, False, (
        ("DELEGATECALL", B, C, 0, False, (("CALL", B, D, 5, False, ()),)),
        ("CALL", B, A, 0, True, ())))


def test_parity_entries_out_of_order_still_nest_by_trace_address():
    shuffled = [PARITY[2], PARITY[0], PARITY[3], PARITY[1]]
    assert shape(parity_block(shuffled)[TX]) == shape(parity_block(PARITY)[TX])


def test_parity_creations_and_self_destructs():
    create = {"transactionHash": TX, "traceAddress": [0], "type": "create",
              "action": {"from": B, "value": "0x0", "init": "0x6000", "creationMethod": "create2"},
              "result": {"address": C, "code": "0x6001"}}
    death = {"transactionHash": TX, "traceAddress": [1], "type": "suicide",
             "action": {"address": B, "refundAddress": D, "balance": "0x9"}}
    tree = parity_block([parity([]), create, death])[TX]
    assert [(c.kind, c.to, c.output, c.value) for c in tree.calls] == [("CREATE2", C, "0x6001", 0),
                                                                       ("SELFDESTRUCT", D, None, 9)]


@pytest.mark.parametrize("broken", [
    [parity([0])],  # no top frame
    [parity([]), parity([1, 0])],  # an orphan
    [parity([]), parity([])],  # one address twice
    [parity([], **{"from": "nonsense"})],
    [parity([], callType="jump")],
    [parity([], value="twelve")],
])
def test_an_unreadable_parity_trace_is_none_not_a_guess(broken):
    assert parity_block(broken) == {TX: None}


def test_an_unreadable_call_tracer_frame_is_none():
    assert call_tracer_block([{"txHash": TX, "result": {"type": "CALL", "from": 5}}, "junk"]) == {TX: None}


def nested(depth: int) -> dict:
    frame: dict = {"type": "CALL", "from": A, "to": B, "input": "0x"}
    top = frame
    for _ in range(depth - 1):
        child = {"type": "CALL", "from": A, "to": B, "input": "0x"}
        frame["calls"] = [child]
        frame = child
    return top


def test_the_deepest_evm_trace_is_read_and_a_deeper_one_refused():
    import json
    import sys

    from kamiyo.cli import allow_evm_depth

    limit = sys.getrecursionlimit()
    try:
        allow_evm_depth()
        deepest = json.loads(json.dumps([{"txHash": TX, "result": nested(1_025)}]))  # what the RPC client decodes
        tree = call_tracer_block(deepest)[TX]
        depth = 0
        while tree is not None and tree.calls:
            tree, depth = tree.calls[0], depth + 1
        assert depth == 1_024
        assert call_tracer_block([{"txHash": TX, "result": nested(20_000)}])[TX] is None  # refused, not a crash
    finally:
        sys.setrecursionlimit(limit)


def raw_tx(index: int, tx_hash: str, **kw):
    return {"hash": tx_hash, "transactionIndex": hex(index), "from": A.upper().replace("0X", "0x"), "to": B,
            "value": "0x10", "input": "0x12345678", "nonce": "0x3", **kw}


def receipt(tx_hash: str, status="0x1", logs=(), contract=None):
    return {"transactionHash": tx_hash, "status": status, "contractAddress": contract, "logs": list(logs)}


def test_block_activity_joins_transactions_receipts_and_traces():
    second = "0x" + "22" * 32
    log = {"address": B.upper().replace("0X", "0x"), "topics": ["0x" + "AB" * 32], "data": "0x", "logIndex": "0x4"}
    activity = block_activity(
        BLOCK, {"transactions": [raw_tx(1, second, to=None), raw_tx(0, TX)]},
        [receipt(TX, logs=[log, {"topics": "bad"}]), receipt(second, contract=C)],
        call_tracer_block([CALL_TRACER]))
    first, created = activity.transactions
    assert (first.hash, first.sender, first.nonce, first.value, first.success) == (TX, A, 3, 16, True)
    assert [(e.address, e.topics, e.log_index) for e in first.logs] == [(B, ("0x" + "ab" * 32,), 4)]
    assert first.trace is not None and activity.has_traces
    assert created.to is None and [c.address for c in created.created] == [C]  # from the receipt: no trace


def test_a_failed_transaction_has_no_logs_and_created_nothing():
    activity = block_activity(BLOCK, {"transactions": [raw_tx(0, TX)]},
                              [receipt(TX, status="0x0", contract=C)], None)
    [failed] = activity.transactions
    assert not failed.success and failed.logs == () and failed.created == () and not activity.has_traces


def test_a_transaction_without_receipt_is_dropped_not_guessed():
    activity = block_activity(BLOCK, {"transactions": [raw_tx(0, TX), "junk"]}, [], None)
    assert activity.transactions == ()


@pytest.mark.parametrize("raw_block, receipts", [(None, []), ({"transactions": "x"}, []), ({"transactions": []}, {})])
def test_a_malformed_block_answer_is_refused(raw_block, receipts):
    with pytest.raises(MalformedNodeAnswer):
        block_activity(BLOCK, raw_block, receipts, None)


def test_traces_of_each_source():
    assert traces_of(BlockTraces(RECEIPTS, [])) is None
    assert traces_of(None) is None
    assert set(traces_of(BlockTraces(TRACE_BLOCK, PARITY))) == {TX}
    assert set(traces_of(BlockTraces(DEBUG_TRACE, [CALL_TRACER]))) == {TX}
    with pytest.raises(MalformedNodeAnswer):
        traces_of(BlockTraces(TRACE_BLOCK, {"not": "a list"}))
