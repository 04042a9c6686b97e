"""Code kinds through `analyze_code`: minimal proxies (EIP-1167, vanity, ERC-7511), EIP-7702 delegations,
slot and forwarding proxies, libraries, empty code, plain contracts, and the real corpus."""

from __future__ import annotations

import collections
import json

import pytest
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from kamiyo.analyzers.bytecode.analysis import analyze_code
from kamiyo.analyzers.bytecode.classify import KINDS, PROXY_KINDS

IMPL = bytes.fromhex("bebebebebebebebebebebebebebebebebebebe01")
VANITY = bytes.fromhex("00") + bytes.fromhex("c0ffee" * 6 + "42")  # 20 bytes, a leading zero byte
EIP1167_HEAD = bytes.fromhex("363d3d373d3d3d363d")
EIP1967_SLOT = bytes.fromhex("360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc")


def eip1167(address: bytes, width: int = 20) -> bytes:
    """The EIP-1167 runtime with the address pushed by PUSH<width>, the JUMPI target fixed up to match."""
    body = EIP1167_HEAD + bytes([0x5F + width]) + address[-width:] + bytes.fromhex("5af43d82803e903d91")
    dest = len(body) + 4  # PUSH1 dest, JUMPI, REVERT, then the JUMPDEST
    return body + bytes([0x60, dest, 0x57, 0xFD, 0x5B, 0xF3])


def forwarder(load_target: bytes) -> bytes:
    """CALLDATACOPY everything, DELEGATECALL to what `load_target` leaves on the stack, bubble up the result."""
    head = (
        bytes.fromhex("365f5f37")  # CALLDATASIZE PUSH0 PUSH0 CALLDATACOPY
        + bytes.fromhex("5f5f365f")  # retSize retOffset argsSize argsOffset
        + load_target  # address
        + bytes.fromhex("5af4")  # GAS DELEGATECALL
        + bytes.fromhex("3d5f5f3e")  # RETURNDATASIZE PUSH0 PUSH0 RETURNDATACOPY
    )
    dest = len(head) + 6  # PUSH1 dest JUMPI RETURNDATASIZE PUSH0 REVERT, then the JUMPDEST
    return head + bytes([0x60, dest, 0x57]) + bytes.fromhex("3d5ffd") + bytes.fromhex("5b3d5ff3")


def test_eip1167_template_layout() -> None:
    code = eip1167(IMPL)
    assert code == bytes.fromhex("363d3d373d3d3d363d73" + IMPL.hex() + "5af43d82803e903d91602b57fd5bf3")
    assert len(code) == 45


def test_eip1167_names_its_implementation() -> None:
    a = analyze_code(eip1167(IMPL))
    assert (a.kind, a.proxy_standard, a.implementation) == ("eip1167", "eip1167", "0x" + IMPL.hex())
    assert a.sketch is None and not a.is_similarity_material
    assert a.delegates


def test_eip1167_implementation_is_lowercase() -> None:
    upper_hex = bytes.fromhex("ABCDEF" * 6 + "ABCD")
    a = analyze_code(eip1167(upper_hex))
    assert a.implementation == "0x" + "abcdef" * 6 + "abcd"


def test_vanity_eip1167_with_push19_pads_the_address() -> None:
    code = eip1167(VANITY, width=19)
    assert len(code) == 44 and code[9] == 0x72 and code[38:40] == bytes([0x60, 0x2A]) and code[0x2A] == 0x5B
    a = analyze_code(code)
    assert (a.kind, a.proxy_standard) == ("eip1167", "eip1167")
    assert a.implementation == "0x" + VANITY.hex()
    assert len(a.implementation) == 42 and a.implementation.startswith("0x00")
    assert a.sketch is None


def test_erc7511_push0_minimal_proxy() -> None:
    code = bytes.fromhex("365f5f375f5f365f73" + IMPL.hex() + "5af43d5f5f3e5f3d91602a57fd5bf3")
    assert len(code) == 44
    a = analyze_code(code)
    assert (a.kind, a.proxy_standard, a.implementation) == ("eip1167", "erc7511", "0x" + IMPL.hex())
    assert a.sketch is None


def test_eip1167_with_a_trailing_byte_is_not_eip1167() -> None:
    a = analyze_code(eip1167(IMPL) + b"\x00")
    assert a.kind != "eip1167" and a.proxy_standard not in ("eip1167", "erc7511")


def test_eip1167_with_a_truncated_address_is_not_eip1167() -> None:
    code = eip1167(IMPL)
    a = analyze_code(code[:10] + code[11:])  # PUSH20 followed by only 19 address bytes
    assert a.kind != "eip1167"


def test_eip1167_with_a_wrong_jump_target_is_not_eip1167() -> None:
    code = bytearray(eip1167(IMPL))
    assert code[39:41] == bytes([0x60, 0x2B])
    code[40] = 0x2A  # points at REVERT instead of the JUMPDEST
    assert analyze_code(bytes(code)).kind != "eip1167"


def test_eip7702_delegation() -> None:
    a = analyze_code(bytes.fromhex("ef0100") + IMPL)
    assert (a.kind, a.proxy_standard, a.implementation) == ("eip7702", "eip7702", "0x" + IMPL.hex())
    assert a.sketch is None


def test_eip7702_prefix_with_a_short_address_is_not_a_delegation() -> None:
    a = analyze_code(bytes.fromhex("ef0100") + IMPL[:19])
    assert a.kind != "eip7702" and a.implementation is None


def test_eip7702_prefix_with_extra_bytes_is_not_a_delegation() -> None:
    assert analyze_code(bytes.fromhex("ef0100") + IMPL + b"\x00").kind != "eip7702"


def test_eip1967_slot_proxy() -> None:
    assert int.from_bytes(EIP1967_SLOT, "big") == int.from_bytes(keccak(b"eip1967.proxy.implementation"), "big") - 1
    code = forwarder(b"\x7f" + EIP1967_SLOT + b"\x54")  # PUSH32 slot SLOAD
    a = analyze_code(code)
    assert (a.kind, a.proxy_standard) == ("proxy", "eip1967")
    assert a.implementation is None  # lives in storage, not in the code
    assert a.sketch is None
    assert a.skeleton_hash != analyze_code(forwarder(b"\x7f" + bytes(31) + b"\x01\x54")).skeleton_hash


def test_hardcoded_forwarder() -> None:
    a = analyze_code(forwarder(b"\x73" + IMPL))  # PUSH20 address
    assert (a.kind, a.proxy_standard, a.implementation) == ("proxy", "forwarder", "0x" + IMPL.hex())
    assert a.sketch is None


def test_forwarders_to_different_implementations_are_different_classes() -> None:
    one = analyze_code(forwarder(b"\x73" + IMPL))
    other = analyze_code(forwarder(b"\x73" + VANITY))
    assert one.skeleton_hash != other.skeleton_hash
    assert one.skeleton_hash == analyze_code(forwarder(b"\x73" + IMPL)).skeleton_hash


def test_delegatecall_without_calldata_forwarding_is_not_a_proxy() -> None:
    # same shape, but CALLDATASIZE replaced by constants: nothing is forwarded
    code = forwarder(b"\x73" + IMPL).replace(b"\x36", b"\x5f")
    assert 0x36 not in code
    assert analyze_code(code).kind == "contract"


def test_library() -> None:
    body = bytes.fromhex("6080604052") + bytes.fromhex("6001600201") * 10 + b"\x00"  # straight-line code
    a = analyze_code(b"\x73" + IMPL + bytes.fromhex("3014") + body)
    assert a.kind == "library"
    assert a.implementation is None and a.proxy_standard is None
    assert a.sketch is not None  # libraries with code of their own are similarity material


def test_stub_libraries_from_different_sources_are_different_classes() -> None:
    """A library of internal functions deploys as its call guard and a revert, the same from any source."""
    stub = b"\x73" + IMPL + bytes.fromhex("30146080604052600080fdfe")

    def trailer(hash_byte: int) -> bytes:
        cbor = bytes.fromhex("a264697066735822") + bytes([hash_byte]) * 34 + bytes.fromhex("64736f6c6343000813")
        return cbor + len(cbor).to_bytes(2, "big")

    a, b = analyze_code(stub + trailer(1)), analyze_code(stub + trailer(2))
    assert a.kind == b.kind == "library"
    assert a.sketch is None and b.sketch is None  # nothing to compare but the guard
    assert a.skeleton_hash != b.skeleton_hash
    assert analyze_code(stub + trailer(1)).skeleton_hash == a.skeleton_hash


def test_empty_code() -> None:
    a = analyze_code(b"")
    assert (a.kind, a.implementation, a.proxy_standard, a.sketch) == ("empty", None, None, None)
    assert a.size == 0 and a.instructions == 0


@pytest.mark.npm
def test_real_contract_is_a_contract_with_a_sketch(npm_artifact) -> None:
    a = analyze_code(npm_artifact("uniswap-v2-pair"))
    assert a.kind == "contract"
    assert a.implementation is None and a.proxy_standard is None
    assert a.sketch is not None and a.is_similarity_material


# --- the real corpus ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def analyzed(corpus: list[dict]) -> list[tuple[dict, object]]:
    return [(row, analyze_code(row["raw"])) for row in corpus]


@pytest.mark.corpus
def test_corpus_has_eip1967_proxies(analyzed) -> None:
    found = [a for _row, a in analyzed if a.kind == "proxy" and a.proxy_standard == "eip1967"]
    assert len(found) >= 10
    assert all(a.sketch is None for a in found)


@pytest.mark.corpus
def test_large_real_contracts_are_never_proxies(analyzed) -> None:
    large = [(row, a) for row, a in analyzed if a.size > 8192]
    delegating = [(row, a) for row, a in large if a.delegates]
    assert len(delegating) >= 50  # the interesting case: big code that does DELEGATECALL
    proxies = [f"{row['id']} {a.size} B {a.kind}/{a.proxy_standard}" for row, a in large if a.kind in
               ("eip7702", "eip1167", "proxy")]
    assert not proxies, "\n".join(proxies)
    assert all(a.sketch is not None for _row, a in large)


@pytest.mark.corpus
def test_broad_sample_eip1167_share_and_classes(analyzed) -> None:
    broad = [a for row, a in analyzed if row["dataset"] == "elipmoc-contracts"]
    assert len(broad) >= 4000
    clones = [a for a in broad if a.kind == "eip1167"]
    share = len(clones) / len(broad)
    assert 0.12 <= share <= 0.20, f"{len(clones)} of {len(broad)} = {share:.3f}"
    assert all(a.implementation and len(a.implementation) == 42 and a.implementation == a.implementation.lower()
               for a in clones)
    assert all(a.sketch is None for a in clones)
    hashes = {a.skeleton_hash for a in clones}
    implementations = {a.implementation for a in clones}
    assert len(hashes) == len(implementations), (len(hashes), len(implementations))
    # one implementation, one class: clones of the same implementation share their hash
    by_impl = collections.defaultdict(set)
    for a in clones:
        by_impl[a.implementation].add(a.skeleton_hash)
    assert all(len(h) == 1 for h in by_impl.values())


def test_minimal_proxies_to_different_implementations_are_different_classes() -> None:
    assert analyze_code(eip1167(IMPL)).skeleton_hash != analyze_code(eip1167(VANITY)).skeleton_hash


def test_minimal_proxies_to_one_implementation_are_one_class_whatever_the_encoding() -> None:
    short = analyze_code(eip1167(VANITY, width=19))
    full = analyze_code(eip1167(VANITY, width=20))
    push0 = analyze_code(bytes.fromhex("365f5f375f5f365f73" + VANITY.hex() + "5af43d5f5f3e5f3d91602a57fd5bf3"))
    assert short.implementation == full.implementation == push0.implementation
    assert short.skeleton_hash == full.skeleton_hash == push0.skeleton_hash


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_analysis_of_arbitrary_bytes_never_raises_and_is_well_formed(code: bytes) -> None:
    a = analyze_code(code)
    assert a.kind in KINDS
    assert a.size == len(code)
    assert a.skeleton_hash.startswith("0x") and len(a.skeleton_hash) == 34
    assert list(a.selectors) == sorted(a.selectors)
    assert (a.sketch is None) or (a.kind not in PROXY_KINDS)
    assert json.loads(json.dumps(a.to_json()))["schema_version"] == 1
