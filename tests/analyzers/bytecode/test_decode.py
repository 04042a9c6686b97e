"""Instruction decoding: the opcode table against py-evm, the C scanner against the reference decoder,
skip ranges, reachability, evmole's instruction boundaries on real code, and the disassembly listing."""

from __future__ import annotations

import collections

import eth.vm.opcode_values as pyevm_values
import evmole
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kamiyo.analyzers.bytecode import _scan
from kamiyo.analyzers.bytecode.decode import disassemble, instructions
from kamiyo.analyzers.bytecode.opcodes import halts_table

# normalize.py configures the scanner at import; doing it here too keeps this module independent of import order.
_scan.configure(halts_table())


def _pyevm_names() -> dict[int, set[str]]:
    names: dict[int, set[str]] = collections.defaultdict(set)
    for name in dir(pyevm_values):
        if name.isupper():
            names[getattr(pyevm_values, name)].add(name)
    return dict(names)


PYEVM = _pyevm_names()
ALL_PYEVM_NAMES = set().union(*PYEVM.values())
PRAGUE = {0x5F: "PUSH0", 0x5E: "MCOPY", 0x5C: "TLOAD", 0x5D: "TSTORE", 0x49: "BLOBHASH", 0x4A: "BLOBBASEFEE"}
UNDEFINED = [op for op in range(256) if op not in PYEVM and op != 0xFE]
STOP, JUMP, JUMPI, JUMPDEST, RETURN, REVERT, INVALID, SELFDESTRUCT = 0x00, 0x56, 0x57, 0x5B, 0xF3, 0xFD, 0xFE, 0xFF


def scan(code: bytes, starts: list[int] | None = None, ends: list[int] | None = None):
    return _scan.scan(code, starts or [], ends or [])


def reachable(code: bytes) -> bytes:
    return scan(code)[0]


def ops(code: bytes) -> bytes:
    return bytes(i.op for i in instructions(code))


def is_subsequence(needle: bytes, haystack: bytes) -> bool:
    it = iter(haystack)
    return all(b in it for b in needle)


# --- the opcode table -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", range(256))
def test_every_byte_value_decodes_like_pyevm(value: int) -> None:
    [first, *_] = instructions(bytes([value]) + bytes(33))
    assert first.pc == 0 and first.op == value
    if value == 0x44:
        assert first.name == "PREVRANDAO"
    elif value == 0xFE:
        assert first.name == "INVALID"
    elif value in PYEVM:
        [expected] = PYEVM[value]
        assert first.name == expected
    else:
        assert first.name == f"UNDEFINED_0x{value:02x}"
        assert first.name not in ALL_PYEVM_NAMES
    width = value - 0x5F if 0x60 <= value <= 0x7F else 0
    assert len(first.arg) == width and not first.truncated
    # the next instruction starts right after the immediate: an undefined byte is a one-byte instruction
    assert instructions(bytes([value]) + bytes(33))[1].pc == 1 + width


def test_prague_opcodes_are_defined() -> None:
    for value, name in PRAGUE.items():
        [ins] = instructions(bytes([value]))
        assert ins.name == name
        assert ins.arg == b""


def test_undefined_bytes_are_one_byte_instructions() -> None:
    code = bytes(UNDEFINED)
    assert [i.pc for i in instructions(code)] == list(range(len(code)))


# --- the C scanner agrees with the reference decoder -------------------------------------------------------

PUSH_BIASED = st.lists(
    st.one_of(st.integers(0x60, 0x7F), st.sampled_from([STOP, JUMP, JUMPI, JUMPDEST, 0x5F]), st.integers(0, 255)),
    max_size=600,
).map(bytes)


def _check_scan_matches_reference(code: bytes) -> None:
    rops, skeleton, topics, opset, n_ins, n_reach, reach_bytes, push20s = scan(code)
    ref = instructions(code)
    assert skeleton == bytes(i.op for i in ref)
    assert n_ins == len(ref)
    assert n_reach == len(rops) <= n_ins
    assert is_subsequence(rops, skeleton)
    assert reach_bytes <= len(code)
    assert (len(rops) == 0) == (len(code) == 0)  # the entry block is always reachable
    if code:
        assert rops[0] == code[0]
    assert len(opset) == 32
    assert {op for op in range(256) if opset[op >> 3] >> (op & 7) & 1} == set(rops)
    full_push20s = [i.arg for i in ref if i.op == 0x73 and len(i.arg) == 20]
    assert len(push20s) <= 8
    assert all(len(v) == 20 for v in push20s)
    assert is_subsequence_of_items(push20s, full_push20s)
    push32s = {i.arg for i in ref if i.op == 0x7F and len(i.arg) == 32}
    assert all(t in push32s for t in topics)


def is_subsequence_of_items(needle: list[bytes], haystack: list[bytes]) -> bool:
    it = iter(haystack)
    return all(any(x == y for y in it) for x in needle)


@settings(max_examples=400)
@given(st.binary(max_size=600))
def test_scanner_matches_reference_on_arbitrary_bytes(code: bytes) -> None:
    _check_scan_matches_reference(code)


@settings(max_examples=400)
@given(PUSH_BIASED)
def test_scanner_matches_reference_on_push_heavy_bytes(code: bytes) -> None:
    _check_scan_matches_reference(code)


@pytest.mark.parametrize("push", range(0x60, 0x80))
def test_truncated_trailing_push_never_raises(push: int) -> None:
    width = push - 0x5F
    for present in range(width):
        code = b"\x5b" + bytes([push]) + b"\x01" * present
        rops, skeleton, *_rest, n_reach, reach_bytes, push20s = scan(code)
        assert skeleton == bytes([0x5B, push])
        assert rops == skeleton and n_reach == 2
        assert reach_bytes == len(code)  # only the bytes present count
        assert push20s == []  # a truncated PUSH20 is no address
        [_, last] = instructions(code)
        assert last.truncated and len(last.arg) == present


def test_truncated_push32_example() -> None:
    rops, skeleton, _topics, _opset, n_ins, _n_reach, reach_bytes, _push20s = scan(b"\x7f\x01")
    assert (rops, skeleton, n_ins, reach_bytes) == (b"\x7f", b"\x7f", 1, 2)


def test_truncated_push_reads_missing_bytes_as_zero() -> None:
    # PUSH2 0x05 <missing> would be 0x0500 under EVM semantics, not 0x05: the JUMPDEST at 5 stays unreachable.
    code = bytes([0x60, 0x09, JUMP, STOP, STOP, JUMPDEST, 0x01, STOP, STOP, JUMPDEST, 0x61, 0x05])
    # entry: PUSH1 9 JUMP -> JUMPDEST@9 -> PUSH2 (0x0500, truncated) which must not make JUMPDEST@5 reachable
    assert reachable(code) == bytes([0x60, JUMP, JUMPDEST, 0x61])


# --- skip ranges --------------------------------------------------------------------------------------------

SEGMENTS = st.tuples(
    st.lists(st.tuples(st.binary(max_size=80), st.binary(min_size=1, max_size=40)), max_size=4),
    st.binary(max_size=80),
)


@settings(max_examples=300)
@given(SEGMENTS)
def test_skip_ranges_are_excluded_and_decoding_resyncs_at_their_end(parts) -> None:
    pieces, tail = parts
    code, starts, ends, expected = b"", [], [], b""
    for segment, skipped in pieces:
        code += segment
        expected += ops(segment)  # a PUSH running into the skip range is cut at its start
        starts.append(len(code))
        code += skipped
        ends.append(len(code))
    code += tail
    expected += ops(tail)
    rops, skeleton, _topics, _opset, n_ins, _n_reach, reach_bytes, _push20s = scan(code, starts, ends)
    assert skeleton == expected
    assert n_ins == len(expected)
    assert is_subsequence(rops, skeleton)
    assert reach_bytes <= len(code) - sum(e - s for s, e in zip(starts, ends))


def test_skip_range_example() -> None:
    # PUSH32 whose data would swallow the skipped bytes and what follows; after the range: PUSH1 2, STOP
    head = bytes([0x60, 0x01, 0x7F])
    skipped = bytes.fromhex("a264697066735822") + bytes(10)
    tail = bytes([0x60, 0x02, STOP])
    code = head + skipped + tail
    _rops, skeleton, *_ = scan(code, [len(head)], [len(head) + len(skipped)])
    assert skeleton == bytes([0x60, 0x7F, 0x60, STOP])
    _rops, skeleton, *_ = scan(code)
    assert skeleton == ops(code) == bytes([0x60, 0x7F])


# --- reachability -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prefix",
    [
        bytes([STOP]),
        bytes([0x5F, 0x5F, RETURN]),
        bytes([0x5F, 0x5F, REVERT]),
        bytes([INVALID]),
        bytes([0x5F, SELFDESTRUCT]),
        bytes([0x60, 0x00, JUMP]),
    ],
    ids=["STOP", "RETURN", "REVERT", "INVALID", "SELFDESTRUCT", "JUMP"],
)
def test_code_after_an_unconditional_end_is_unreachable(prefix: bytes) -> None:
    dead = bytes([0x01, 0x02, 0x60, 0x00, STOP])
    assert reachable(prefix + dead) == ops(prefix)
    assert scan(prefix + dead)[6] == len(prefix)  # reachable_bytes


@pytest.mark.parametrize("op", UNDEFINED)
def test_an_undefined_opcode_halts(op: int) -> None:
    assert reachable(bytes([op, 0x01, 0x02, STOP])) == bytes([op])


def test_a_defined_opcode_falls_through() -> None:
    code = bytes([0x01, 0x02, 0x5C, 0x5F, 0x5E, STOP])
    assert reachable(code) == code


def test_fallthrough_after_jumpi_is_reachable() -> None:
    code = bytes([0x60, 0x01, 0x60, 0x00, JUMPI, 0x01, STOP])
    assert reachable(code) == bytes([0x60, 0x60, JUMPI, 0x01, STOP])


@pytest.mark.parametrize(
    "push",
    [bytes([0x60, 0x05]), bytes([0x61, 0x00, 0x06])],
    ids=["PUSH1", "PUSH2"],
)
def test_a_pushed_jumpdest_is_reachable(push: bytes) -> None:
    # <push dest> JUMP ADD MUL JUMPDEST STOP: the JUMPDEST follows two dead bytes and is reached only by the jump
    code = push + bytes([JUMP, 0x01, 0x02]) + bytes([JUMPDEST, STOP])
    dest = len(push) + 3
    assert code[dest] == JUMPDEST and int.from_bytes(push[1:], "big") == dest
    assert reachable(code) == bytes([push[0], JUMP, JUMPDEST, STOP])


def test_a_jumpdest_nobody_pushes_is_unreachable() -> None:
    code = bytes([0x60, 0x09, STOP, JUMPDEST, 0x01, STOP])
    assert reachable(code) == bytes([0x60, STOP])


def test_a_push_in_unreachable_code_does_not_make_its_target_reachable() -> None:
    code = bytes([STOP, 0x60, 0x04, STOP, JUMPDEST, 0x01, STOP])
    assert reachable(code) == bytes([STOP])


def test_a_jumpdest_reached_by_fallthrough_is_reachable() -> None:
    code = bytes([0x01, JUMPDEST, 0x02, STOP])
    assert reachable(code) == code


# --- evmole agrees on instruction boundaries in real code ---------------------------------------------------


def _sample(rows: list[dict], n: int) -> list[dict]:
    """Deterministic and size-stratified: `n` rows evenly spaced through the corpus sorted by (size, id)."""
    ordered = sorted((r for r in rows if r["raw"]), key=lambda r: (len(r["raw"]), r["id"]))
    step = len(ordered) / n
    return [ordered[int(k * step)] for k in range(n)]


@pytest.mark.corpus
def test_instruction_boundaries_agree_with_evmole_on_real_code(corpus: list[dict]) -> None:
    sample = _sample(corpus, 300)
    assert len(sample) == 300 and len(sample[-1]["raw"]) > 20 * len(sample[0]["raw"])
    mismatches = []
    truncated_tails = 0
    for row in sample:
        code = row["raw"]
        theirs = [pc for pc, _text in evmole.contract_info(code, disassemble=True).disassembled]
        ours = instructions(code)
        # evmole drops a trailing PUSH whose immediate runs past the end; it does not stop early otherwise
        # (metadata trailers included), so the region it covers is everything but that instruction.
        if ours[-1].truncated:
            truncated_tails += 1
        covered = [i.pc for i in ours if not i.truncated]
        if theirs != covered:
            first = next((k for k, (a, b) in enumerate(zip(theirs, covered)) if a != b), min(len(theirs), len(covered)))
            mismatches.append(
                f"{row['id']} ({len(code)} B): evmole {len(theirs)} instrs, ours {len(covered)}, first difference "
                f"at instruction {first}"
            )
    assert len(mismatches) <= 3, "\n".join(mismatches)
    assert truncated_tails < len(sample)  # the comparison covers whole contracts, not only truncated stubs


def test_evmole_drops_a_truncated_trailing_push() -> None:
    """Pins the assumption above: if evmole starts listing truncated PUSHes, the corpus comparison should too."""
    assert [pc for pc, _ in evmole.contract_info(b"\x60\x01\x7f\x01", disassemble=True).disassembled] == [0]


# --- the disassembly listing --------------------------------------------------------------------------------


def test_disassembly_names_prague_opcodes_and_marks_a_truncated_push() -> None:
    code = bytes(PRAGUE) + bytes([0x44, 0x0C, 0x61, 0xAB, 0xCD, INVALID, 0x7F, 0x01])
    lines = disassemble(code)
    assert lines == [
        "     0: PUSH0",
        "     1: MCOPY",
        "     2: TLOAD",
        "     3: TSTORE",
        "     4: BLOBHASH",
        "     5: BLOBBASEFEE",
        "     6: PREVRANDAO",
        "     7: UNDEFINED_0x0c",
        "     8: PUSH2 0xabcd",
        "    11: INVALID",
        "    12: PUSH32 0x01 (truncated)",
    ]


def test_disassembly_follows_the_reference_decoder() -> None:
    code = bytes(range(256))
    lines = disassemble(code)
    ours = instructions(code)
    assert [int(line.split(":")[0]) for line in lines] == [i.pc for i in ours]
    assert [line.split(": ")[1].split()[0] for line in lines] == [i.name for i in ours]


def test_a_scan_started_by_the_garbage_collector_inside_a_scan_does_not_corrupt_it() -> None:
    """Creating the result lists can start a collection, whose callbacks may scan again: the nested call must
    not reuse (and regrow) the running call's scratch space. Before the fix this crashed the process."""
    import gc

    block = bytes([0x5B, 0x7F]) + bytes(range(1, 33)) + bytes([0x60, 0x00, 0xA1])
    code = block * 3000
    expected = _scan.scan(code, (), ())
    nested: dict = {"code": None}
    ran = []

    def callback(phase, _info):
        if phase == "start" and nested["code"] is not None:
            big, nested["code"] = nested["code"], None
            ran.append(_scan.scan(big, (), ())[4])

    gc.callbacks.append(callback)
    threshold = gc.get_threshold()
    try:
        for size in (4_000_000, 8_000_000):  # each nested scan needs more room than the running one holds
            hold = [[] for _ in range(200)]
            nested["code"] = bytes([0x5B]) * size
            gc.set_threshold(1)
            got = _scan.scan(code, (), ())
            gc.set_threshold(*threshold)
            del hold
            assert got == expected
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(callback)
    assert ran  # a nested scan did run
