"""Compiler metadata trailers: every Solidity and Vyper variant, embedded trailers, hostile input, real code."""

from __future__ import annotations

import collections
import functools
import gzip
import json
from pathlib import Path

import evmole
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kamiyo.analyzers.bytecode.metadata import Trailer, code_without_trailers, find_trailers

CORPUS_DIR = Path(__file__).parents[3] / ".." / "shared" / "data" / "bytecode"

# A plausible runtime prologue with LOG2/LOG1 opcodes (0xa2, 0xa1) in it, i.e.
# bytes that look like map headers but are not followed by a known key.
CODE = bytes.fromhex("6080604052348015600f57600080fd5b50a2600160a1600055fe")
IPFS = bytes.fromhex("1220") + bytes(range(32))  # a multihash: sha2-256, 32 bytes
SWARM = bytes(range(100, 132))


def _head(major: int, arg: int) -> bytes:
    if arg < 24:
        return bytes([major << 5 | arg])
    for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if arg < 1 << (8 * width):
            return bytes([major << 5 | info]) + arg.to_bytes(width, "big")
    raise ValueError(arg)


def cbor(value: object) -> bytes:
    """A minimal CBOR encoder for the test vectors (dicts keep insertion order)."""
    if value is True or value is False:
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return _head(0, value)
    if isinstance(value, bytes):
        return _head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return _head(3, len(raw)) + raw
    if isinstance(value, list):
        return _head(4, len(value)) + b"".join(map(cbor, value))
    if isinstance(value, dict):
        return _head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(value)


def footer(value: object, extra: int = 0) -> bytes:
    """CBOR of `value` plus its 2-byte length (+ `extra`, for Vyper's variant that counts the suffix)."""
    body = cbor(value)
    return body + (len(body) + extra).to_bytes(2, "big")


# Written out byte by byte rather than with the encoder above, so that the
# encoder and the parser cannot share a mistake.
IPFS_SOLC = bytes.fromhex("a2646970667358221220" + bytes(range(32)).hex() + "64736f6c634300080d0033")
BZZR0_ONLY = bytes.fromhex("a165627a7a72305820" + SWARM.hex() + "0029")
VYPER_03 = bytes.fromhex("a165767970657283000304000b")


def test_encoder_matches_the_hand_written_vectors() -> None:
    assert footer({"ipfs": IPFS, "solc": bytes([0, 8, 13])}) == IPFS_SOLC
    assert footer({"bzzr0": SWARM}) == BZZR0_ONLY
    assert footer({"vyper": [0, 3, 4]}) == VYPER_03


def _only(code: bytes) -> Trailer:
    trailers = find_trailers(code)
    assert len(trailers) == 1, trailers
    return trailers[0]


def test_ipfs_and_solc_release() -> None:
    code = CODE + IPFS_SOLC
    trailer = _only(code)
    assert trailer == Trailer(len(CODE), len(code), "solc", "0.8.13", "ipfs", "0x" + IPFS.hex())
    assert trailer.to_json() == {
        "start": len(CODE),
        "end": len(code),
        "compiler": "solc",
        "version": "0.8.13",
        "hash_kind": "ipfs",
        "hash_hex": "0x" + IPFS.hex(),
        "experimental": False,
    }
    assert json.loads(json.dumps(trailer.to_json())) == trailer.to_json()


def test_bzzr0_only_as_old_solc_wrote_it() -> None:
    trailer = _only(CODE + BZZR0_ONLY)
    assert (trailer.start, trailer.end) == (len(CODE), len(CODE) + 43)
    assert (trailer.compiler, trailer.version) == (None, None)
    assert (trailer.hash_kind, trailer.hash_hex) == ("bzzr0", "0x" + SWARM.hex())


def test_bzzr1_and_solc() -> None:
    trailer = _only(CODE + footer({"bzzr1": SWARM, "solc": bytes([0, 5, 17])}))
    assert (trailer.compiler, trailer.version, trailer.hash_kind) == ("solc", "0.5.17", "bzzr1")
    assert trailer.hash_hex == "0x" + SWARM.hex()


def test_solc_only_when_the_hash_is_disabled() -> None:
    blob = footer({"solc": bytes([0, 8, 19])})
    assert blob == bytes.fromhex("a164736f6c6343000813000a")
    trailer = _only(CODE + blob)
    assert (trailer.compiler, trailer.version, trailer.hash_kind, trailer.hash_hex) == ("solc", "0.8.19", None, None)


def test_prerelease_solc_writes_its_version_as_text() -> None:
    text = "0.8.26-nightly.2024.5.15+commit.ddff3dd2"
    trailer = _only(CODE + footer({"ipfs": IPFS, "solc": text}))
    assert (trailer.compiler, trailer.version) == ("solc", text)


@pytest.mark.parametrize(
    "fields",
    [
        {"ipfs": IPFS, "experimental": True, "solc": bytes([0, 8, 4])},
        {"bzzr0": SWARM, "experimental": True},
        {"experimental": True, "solc": bytes([0, 8, 4])},  # the map's first key is "experimental"
    ],
)
def test_experimental_flag(fields: dict) -> None:
    trailer = _only(CODE + footer(fields))
    assert trailer.experimental is True
    assert trailer.version == ("0.8.4" if "solc" in fields else None)


def test_experimental_false_is_reported_as_false() -> None:
    assert _only(CODE + footer({"ipfs": IPFS, "experimental": False, "solc": bytes([0, 8, 4])})).experimental is False


def test_vyper_03_map() -> None:
    trailer = _only(CODE + VYPER_03)
    assert trailer == Trailer(len(CODE), len(CODE) + len(VYPER_03), "vyper", "0.3.4", None, None)


VYPER_ARRAYS = {
    "0.3.10": [3412, [], 0, {"vyper": [0, 3, 10]}],
    "0.4.0": [9000, [32, 64, 7], 96, {"vyper": [0, 4, 0]}],
    "0.4.1 with integrity hash": [bytes(range(32)), 312, [2], 0, {"vyper": [0, 4, 1]}],
}


@pytest.mark.parametrize("counts_suffix", [0, 2], ids=["length", "length+2"])
@pytest.mark.parametrize("name", list(VYPER_ARRAYS))
def test_vyper_array_form_with_either_length_convention(name: str, counts_suffix: int) -> None:
    value = VYPER_ARRAYS[name]
    blob = footer(value, extra=counts_suffix)
    trailer = _only(CODE + blob)
    assert (trailer.start, trailer.end) == (len(CODE), len(CODE) + len(blob))
    assert (trailer.compiler, trailer.version) == ("vyper", ".".join(map(str, value[-1]["vyper"])))
    assert (trailer.hash_kind, trailer.hash_hex) == (None, None)


def test_vyper_map_also_accepts_a_length_that_counts_the_suffix() -> None:
    assert _only(CODE + footer({"vyper": [0, 3, 9]}, extra=2)).version == "0.3.9"


def _factory(child_trailer: bytes, outer_trailer: bytes) -> tuple[bytes, int, int]:
    """Factory runtime carrying a child's creation code: constructor, child runtime, child trailer."""
    constructor = bytes.fromhex("608060405234801561001057600080fd5b50610150806100206000396000f3fe")
    child_initcode = constructor + CODE + child_trailer
    code = CODE + bytes.fromhex("6101238061004a833981f0") + child_initcode + CODE + outer_trailer
    child_at = code.index(child_trailer)
    return code, child_at, len(code) - len(outer_trailer)


def test_factory_embedded_child_trailer_and_outer_trailer_are_both_found() -> None:
    child = footer({"ipfs": bytes.fromhex("1220") + bytes([0xAA]) * 32, "solc": bytes([0, 5, 16])})
    code, child_at, outer_at = _factory(child, IPFS_SOLC)
    inner, outer = find_trailers(code)
    assert (inner.start, inner.end, inner.version) == (child_at, child_at + len(child), "0.5.16")
    assert inner.hash_hex == "0x1220" + "aa" * 32
    assert (outer.start, outer.end, outer.version) == (outer_at, len(code), "0.8.13")
    stripped = code_without_trailers(code, (outer, inner))  # any order
    assert stripped == code.replace(child, b"").replace(IPFS_SOLC, b"")
    assert find_trailers(stripped) == ()


def test_embedded_vyper_and_old_solc_trailers() -> None:
    vyper = footer(VYPER_ARRAYS["0.4.0"], extra=2)
    code, child_at, outer_at = _factory(vyper, BZZR0_ONLY)
    inner, outer = find_trailers(code)
    assert (inner.start, inner.compiler) == (child_at, "vyper")
    assert (outer.start, outer.hash_kind) == (outer_at, "bzzr0")


def test_back_to_back_trailers_are_each_found() -> None:
    blobs = [IPFS_SOLC, BZZR0_ONLY, VYPER_03, footer({"solc": "0.4.26-nightly"}), IPFS_SOLC]
    code = b"".join(blobs)
    trailers = find_trailers(code)
    assert [t.start for t in trailers] == [sum(map(len, blobs[:i])) for i in range(len(blobs))]
    assert [t.end for t in trailers] == [sum(map(len, blobs[: i + 1])) for i in range(len(blobs))]
    assert code_without_trailers(code, trailers) == b""


def _body(blob: bytes) -> bytes:
    return blob[:-2]


def _with_length(body: bytes, length: int) -> bytes:
    return body + length.to_bytes(2, "big")


def _framed(body: bytes) -> bytes:
    return _with_length(body, len(body))


SOLC = bytes([0, 8, 13])
BAD = {
    "length one short": _with_length(_body(IPFS_SOLC), 50),
    "length one long": _with_length(_body(IPFS_SOLC), 52),
    "solidity length counting the suffix": _with_length(_body(IPFS_SOLC), 53),
    "vyper length off by one": footer({"vyper": [0, 3, 4]}, extra=1),
    "vyper array length off by one": footer(VYPER_ARRAYS["0.4.0"], extra=1),
    "unknown key": footer({"ipfs": IPFS, "solc": SOLC, "optimizer": True}),
    "unknown key only": footer({"solc": SOLC, "compiler": "x"}),
    "ipfs hash too short": footer({"ipfs": IPFS[:33], "solc": SOLC}),
    "bzzr hash too long": footer({"bzzr1": SWARM + b"\x00", "solc": SOLC}),
    "two hashes": footer({"ipfs": IPFS, "bzzr1": SWARM, "solc": SOLC}),
    "solc as an int": footer({"ipfs": IPFS, "solc": 813}),
    "solc with two bytes": footer({"solc": SOLC[:2]}),
    "empty solc text": footer({"solc": ""}),
    "experimental not a bool": footer({"ipfs": IPFS, "experimental": 1, "solc": SOLC}),
    "experimental alone": footer({"experimental": True}),
    "duplicate key": _framed(b"\xa2" + cbor("solc") + cbor(SOLC) + cbor("solc") + cbor(SOLC)),
    "indefinite byte string": _framed(b"\xa1\x64ipfs\x5f\x42\x12\x20\xff"),
    "negative integer": footer({"solc": SOLC, "experimental": True}).replace(b"\xf5", b"\x20"),
    "map claims one entry more": _with_length(b"\xa3" + _body(IPFS_SOLC)[1:], 51),
    "vyper version too short": footer({"vyper": [0, 3]}),
    "vyper version as text": footer({"vyper": "0.3.4"}),
    "vyper mixed with solc": footer({"vyper": [0, 3, 4], "solc": SOLC}),
    "vyper array with text in front": footer(["runtime", 0, {"vyper": [0, 4, 0]}]),
    "vyper array not ending with the map": footer([{"vyper": [0, 4, 0]}, 12]),
    "truncated byte string": CODE + _body(IPFS_SOLC)[:30],
    "hash shorter than declared": _framed(b"\xa1\x65bzzr0\x58\x20" + SWARM[:28]),
}


@pytest.mark.parametrize("name", list(BAD))
def test_malformed_trailers_are_not_found(name: str) -> None:
    assert find_trailers(CODE + BAD[name]) == ()
    assert find_trailers(BAD[name]) == ()


def test_every_truncation_of_a_trailer_is_rejected() -> None:
    for blob in (IPFS_SOLC, BZZR0_ONLY, VYPER_03, footer(VYPER_ARRAYS["0.4.1 with integrity hash"])):
        code = CODE + blob
        for cut in range(len(code)):
            assert find_trailers(code[:cut]) == (), cut
        for cut in range(1, len(blob)):
            assert find_trailers(blob[cut:]) == (), cut  # the front cut off


def test_corrupting_any_structural_byte_rejects_the_trailer() -> None:
    # Everything but the 34 hash bytes (8..42) and the three version bytes (48..51).
    structural = [*range(0, 8), *range(42, 48), *range(51, len(IPFS_SOLC))]
    for at in structural:
        for flip in (0x01, 0x40, 0xFF):
            corrupt = bytearray(IPFS_SOLC)
            corrupt[at] ^= flip
            assert find_trailers(CODE + bytes(corrupt)) == (), (at, flip)


def test_code_without_trailers_keeps_code_that_has_none() -> None:
    assert code_without_trailers(CODE, ()) == CODE
    assert code_without_trailers(CODE + VYPER_03, find_trailers(CODE + VYPER_03)) == CODE


def test_no_trailers_in_empty_or_proxy_code() -> None:
    proxy = bytes.fromhex("363d3d373d3d3d363d73bebebebebebebebebebebebebebebebebebebebe5af43d82803e903d91602b57fd5bf3")
    assert find_trailers(b"") == ()
    assert find_trailers(b"\xa1") == ()
    assert find_trailers(proxy) == ()


def _check_invariants(code: bytes, trailers: tuple[Trailer, ...]) -> None:
    previous_end = 0
    for trailer in trailers:
        assert previous_end <= trailer.start < trailer.end <= len(code)
        previous_end = trailer.end
        cbor_length = trailer.end - trailer.start - 2
        suffix = int.from_bytes(code[trailer.end - 2 : trailer.end], "big")
        if trailer.compiler == "vyper":
            assert suffix in (cbor_length, cbor_length + 2)
        else:
            assert suffix == cbor_length
        assert trailer.compiler is not None or trailer.hash_kind is not None


@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise(code: bytes) -> None:
    _check_invariants(code, find_trailers(code))


KEYS = (b"\x64ipfs", b"\x65bzzr", b"\x64solc", b"\x6cexperimental", b"\x65vyper")

# Pieces that steer generated input into the parser: real trailers, their
# truncations, map headers followed by known keys, and CBOR heads.
FRAGMENTS = [
    IPFS_SOLC, BZZR0_ONLY, VYPER_03, footer(VYPER_ARRAYS["0.4.0"], extra=2),
    IPFS_SOLC[:-3], BZZR0_ONLY[5:], VYPER_03[:-1],
    b"\xa1\x64solc", b"\xa2\x64ipfs", b"\xa1\x65vyper", b"\xa3\x65bzzr1", b"\xa1\x6cexperimental",
    b"\x58\x22", b"\x58\x20", b"\x43", b"\x83", b"\x84", b"\xf5", b"\x00\x33", b"\x00\x0b", b"\xff",
]


@given(st.lists(st.sampled_from(FRAGMENTS) | st.binary(max_size=40), max_size=24).map(b"".join))
def test_spliced_fragments_never_raise_and_stay_consistent(code: bytes) -> None:
    trailers = find_trailers(code)
    _check_invariants(code, trailers)
    stripped = code_without_trailers(code, trailers)
    assert len(stripped) == len(code) - sum(t.end - t.start for t in trailers)


@given(st.binary(max_size=2048), st.sampled_from([IPFS_SOLC, BZZR0_ONLY, VYPER_03, footer(VYPER_ARRAYS["0.3.10"])]))
def test_a_trailer_after_arbitrary_code_is_found(prefix: bytes, blob: bytes) -> None:
    # A map header and key in the prefix could start a (vanishingly unlikely) valid
    # trailer that swallows the appended one; keep the prefix free of them.
    assume(not any(bytes([head]) + key in prefix for head in range(0xA1, 0xA6) for key in KEYS))
    last = find_trailers(prefix + blob)[-1]
    assert last.end == len(prefix) + len(blob)
    assert last.start == len(prefix)


# --- the real corpus ---------------------------------------------------------


@functools.cache
def _corpus() -> tuple[bytes, ...]:
    codes = []
    for path in sorted(CORPUS_DIR.glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as lines:
            codes.extend(bytes.fromhex(json.loads(line)["code"][2:]) for line in lines)
    return tuple(codes)


corpus = pytest.mark.skipif(
    not any(CORPUS_DIR.glob("*.jsonl.gz")), reason=f"real bytecode corpus not found in {CORPUS_DIR.resolve()}"
)


def _evmole_view(code: bytes) -> tuple | None:
    """evmole's terminal trailer as (start, cbor_length, hash_kind, hash_hex, version), or None."""
    meta = evmole.contract_info(code, metadata=True).metadata
    if meta is None:
        return None
    entries = {entry.key: entry.value.value for entry in meta.entries}
    hash_kind = next((kind for kind in ("ipfs", "bzzr0", "bzzr1") if kind in entries), None)
    hash_hex = "0x" + entries[hash_kind].hex() if hash_kind else None
    solc = entries.get("solc")
    version = ".".join(map(str, solc)) if isinstance(solc, bytes) else solc
    return meta.bytecode_offset, meta.cbor_length, hash_kind, hash_hex, version


def _our_view(trailer: Trailer | None) -> tuple | None:
    if trailer is None:
        return None
    return trailer.start, trailer.end - trailer.start - 2, trailer.hash_kind, trailer.hash_hex, trailer.version


@pytest.mark.corpus
@corpus
def test_corpus_final_trailer_agrees_with_evmole() -> None:
    codes = _corpus()
    disagreements = []
    for code in codes:
        trailers = find_trailers(code)
        final = trailers[-1] if trailers and trailers[-1].end == len(code) else None
        if _our_view(final) != _evmole_view(code):
            disagreements.append((_our_view(final), _evmole_view(code)))
    assert len(codes) > 9000
    assert len(disagreements) <= len(codes) // 200, disagreements[:5]


@pytest.mark.corpus
@corpus
def test_corpus_embedded_trailers_are_found_and_confirmed_by_evmole() -> None:
    embedded = confirmed = 0
    carriers = set()
    for index, code in enumerate(_corpus()):
        for trailer in find_trailers(code):
            if trailer.end == len(code):
                continue
            embedded += 1
            carriers.add(index)
            # evmole reads only a terminal trailer: cut the code just after this one.
            confirmed += _evmole_view(code[: trailer.end]) == _our_view(trailer)
    # Factories (pair and pool deployers, clone factories) carry child creation code.
    assert embedded >= 150
    assert len(carriers) >= 100
    assert confirmed >= embedded * 0.99


@pytest.mark.corpus
@corpus
def test_corpus_covers_every_solidity_variant() -> None:
    kinds: collections.Counter[tuple] = collections.Counter()
    for code in _corpus():
        trailers = find_trailers(code)
        _check_invariants(code, trailers)
        for trailer in trailers:
            kinds[trailer.hash_kind, trailer.compiler, trailer.experimental] += 1
    assert kinds["ipfs", "solc", False] > 7000
    assert kinds["bzzr0", None, False] > 250  # solc 0.4.x / early 0.5.x
    assert kinds["bzzr1", "solc", False] > 300
    assert kinds[None, "solc", False] > 300  # --metadata-hash none
    assert sum(n for (_, _, experimental), n in kinds.items() if experimental) > 50
