"""The EVM opcode table, taken from py-evm rather than retyped.

Mnemonics come from `eth.vm.opcode_values`; where two names share a value (DIFFICULTY / PREVRANDAO) the
latest fork's mnemonic wins. The set of defined opcodes is the latest fork's table (Prague). 0xFE is the
designated INVALID instruction; every other byte missing from the table is undefined and halts.
"""

from __future__ import annotations

import sys
from types import MappingProxyType

_recursion_limit = sys.getrecursionlimit()
import eth.vm.opcode_values as _values  # noqa: E402
from eth.vm.forks import LATEST_VM  # noqa: E402

# Importing py-evm raises the interpreter's recursion limit to 100,000 (py_ecc does it). With that, parsing a
# deeply nested JSON input overflows the C stack and kills the process instead of raising RecursionError.
sys.setrecursionlimit(_recursion_limit)

INVALID = 0xFE
PUSH0 = 0x5F
PUSH1 = 0x60
PUSH32 = 0x7F


def _latest_mnemonics() -> dict[int, str]:
    table = LATEST_VM.get_state_class().computation_class.opcodes
    by_value: dict[int, list[str]] = {}
    for name in dir(_values):
        if name.isupper():
            by_value.setdefault(getattr(_values, name), []).append(name)
    names: dict[int, str] = {}
    for value, candidates in by_value.items():
        latest = getattr(table.get(value), "mnemonic", None)
        names[value] = latest if latest in candidates else sorted(candidates)[0]
    names[INVALID] = "INVALID"
    return names


MNEMONICS: MappingProxyType[int, str] = MappingProxyType(_latest_mnemonics())

HALTING = frozenset({0x00, 0xF3, 0xFD, INVALID, 0xFF})  # STOP RETURN REVERT INVALID SELFDESTRUCT


def immediate_size(op: int) -> int:
    """Bytes of immediate data that follow `op` (PUSH1..PUSH32 only)."""
    return op - PUSH0 if PUSH1 <= op <= PUSH32 else 0


def mnemonic(op: int) -> str:
    return MNEMONICS.get(op, f"UNDEFINED_0x{op:02x}")


def halts_table() -> bytes:
    """256 flags: 1 where execution stops at this byte (halting or undefined opcodes)."""
    return bytes(1 if op in HALTING or op not in MNEMONICS else 0 for op in range(256))
