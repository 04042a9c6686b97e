"""What kind of code this is: empty, an EIP-7702 delegation, a minimal proxy, another proxy, a library, a contract.

Proxy-kind code carries no behaviour of its own, so it is not similarity material (every EIP-1167 clone would
otherwise fall into one giant class); what matters is the implementation it delegates to.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from eth_hash.auto import keccak

from .normalize import NormalizedCode

KINDS = ("empty", "eip7702", "eip1167", "proxy", "library", "contract")
PROXY_KINDS = frozenset({"eip7702", "eip1167", "proxy"})

DELEGATECALL, CALLDATASIZE = 0xF4, 0x36
MAX_PROXY_SELECTORS = 8  # admin interfaces (admin, implementation, upgradeTo, changeAdmin, …)
MAX_FORWARDER_BYTES = 2048  # a forwarder without a standard slot is small

# EIP-1167 with the address pushed by PUSH1..PUSH20 (vanity addresses with leading zero bytes are shorter),
# and ERC-7511's PUSH0 variant (44 bytes). Nothing may follow the template.
_EIP1167 = re.compile(rb"\x36\x3d\x3d\x37\x3d\x3d\x3d\x36\x3d([\x60-\x73])", re.S)
_EIP1167_TAIL = bytes.fromhex("5af43d82803e903d91")
_ERC7511 = re.compile(rb"\x36\x5f\x5f\x37\x5f\x5f\x36\x5f\x73(.{20})\x5a\xf4\x3d\x5f\x5f\x3e\x5f\x3d\x91\x60\x2a\x57\xfd\x5b\xf3\Z", re.S)
_EIP7702_PREFIX = b"\xef\x01\x00"
_LIBRARY_GUARD = re.compile(rb"\x73.{20}\x30\x14", re.S)  # PUSH20 <own address> ADDRESS EQ


def _slot(label: str, minus_one: bool) -> bytes:
    value = int.from_bytes(keccak(label.encode()), "big") - (1 if minus_one else 0)
    return value.to_bytes(32, "big")


PROXY_SLOTS = {
    "eip1967": _slot("eip1967.proxy.implementation", True),
    "eip1967-beacon": _slot("eip1967.proxy.beacon", True),
    "eip1822": _slot("PROXIABLE", False),
    "zeppelinos": _slot("org.zeppelinos.proxy.implementation", False),
}


@dataclass(frozen=True, slots=True)
class Classification:
    kind: str
    implementation: str | None = None  # lowercase 0x address when the code names it
    standard: str | None = None  # eip1167 / erc7511 / eip1967 / eip1967-beacon / eip1822 / zeppelinos / forwarder


def _address(raw: bytes) -> str:
    return "0x" + raw.rjust(20, b"\x00").hex()


def _minimal_proxy(code: bytes) -> Classification | None:
    if (m := _ERC7511.match(code)) is not None:
        return Classification("eip1167", _address(m.group(1)), "erc7511")
    m = _EIP1167.match(code)
    if m is None:
        return None
    width = m.group(1)[0] - 0x5F
    start = m.end()
    tail = code[start + width :]
    # tail: GAS DELEGATECALL RETURNDATASIZE DUP3 DUP1 RETURNDATACOPY SWAP1 RETURNDATASIZE SWAP2 PUSH1 <dest> JUMPI REVERT JUMPDEST RETURN
    jumpdest = len(code) - 2  # the JUMPI must land on the JUMPDEST before RETURN, or every call reverts
    if (
        len(tail) == 15
        and tail.startswith(_EIP1167_TAIL)
        and tail[9] == 0x60
        and tail[10] == jumpdest
        and tail[11:] == b"\x57\xfd\x5b\xf3"
    ):
        return Classification("eip1167", _address(code[start : start + width]), "eip1167")
    return None


def classify(code: bytes, norm: NormalizedCode, selectors: Callable[[], tuple[str, ...]]) -> Classification:
    """`selectors` is called only for delegating code, the one case where the interface decides the kind."""
    if not code:
        return Classification("empty")
    if len(code) == 23 and code.startswith(_EIP7702_PREFIX):
        return Classification("eip7702", _address(code[3:]), "eip7702")
    if len(code) <= 64 and (minimal := _minimal_proxy(code)) is not None:
        return minimal
    if _LIBRARY_GUARD.match(code):
        return Classification("library")
    if norm.has_opcode(DELEGATECALL) and norm.has_opcode(CALLDATASIZE) and len(selectors()) <= MAX_PROXY_SELECTORS:
        standard = next((name for name, slot in PROXY_SLOTS.items() if b"\x7f" + slot in code), None)
        if standard is not None or norm.reachable_bytes <= MAX_FORWARDER_BYTES:
            targets = {v for v in norm.push20_values if v.strip(b"\x00") and v != b"\xff" * 20}
            implementation = _address(targets.pop()) if len(targets) == 1 else None
            return Classification("proxy", implementation, standard or "forwarder")
    return Classification("contract")
