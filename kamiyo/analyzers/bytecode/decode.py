"""Instruction decoding for humans and for tests: a plain-Python reference decoder and a disassembly listing.

The hot path never comes here: `normalize.py` uses the C scanner. This module is the readable statement of
what a correct decode is (tests hold the scanner to it), and renders `kamiyo analyze --disasm` through
evmdasm, whose registry predates PUSH0, MCOPY, TLOAD, TSTORE, BLOBHASH and BLOBBASEFEE, so we extend it
from py-evm's table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .opcodes import MNEMONICS, immediate_size, mnemonic


@dataclass(frozen=True, slots=True)
class Instruction:
    pc: int
    op: int
    arg: bytes  # immediate data as present in the code; shorter than declared when truncated at the end

    @property
    def name(self) -> str:
        return mnemonic(self.op)

    @property
    def truncated(self) -> bool:
        return len(self.arg) < immediate_size(self.op)


def instructions(code: bytes) -> list[Instruction]:
    """Every instruction of a linear sweep. Undefined bytes are one-byte instructions; never raises."""
    out: list[Instruction] = []
    pc, n = 0, len(code)
    while pc < n:
        op = code[pc]
        width = immediate_size(op)
        out.append(Instruction(pc, op, code[pc + 1 : pc + 1 + width]))
        pc += 1 + width
    return out


@lru_cache(maxsize=1)
def _registry():
    from evmdasm import registry as evmdasm_registry
    from evmdasm.instructions import Instruction as EvmdasmInstruction

    known = list(evmdasm_registry.INSTRUCTIONS)
    have = {i.opcode for i in known}
    for op, name in MNEMONICS.items():
        if op not in have:
            category = "terminate" if op == 0xFE else "unknown"
            known.append(EvmdasmInstruction(op, name, length_of_operand=immediate_size(op), category=category,
                                            description="(from py-evm's opcode table)"))
    return evmdasm_registry.InstructionRegistry(known)


def disassemble(code: bytes) -> list[str]:
    """`pc: MNEMONIC 0ximmediate` lines; slow (evmdasm), for people only."""
    import logging

    from evmdasm import EvmDisassembler

    # evmdasm logs every truncated PUSH at ERROR level; for a listing that is noise, the line says it.
    logging.getLogger("evmdasm.disassembler").setLevel(logging.CRITICAL)
    lines = []
    for ins in EvmDisassembler(_registry=_registry()).disassemble(code.hex()):
        name = mnemonic(ins.opcode)
        operand = f" 0x{ins.operand}" if ins.operand else ""
        note = " (truncated)" if len(ins.operand_bytes) < immediate_size(ins.opcode) else ""
        lines.append(f"{ins.address:6d}: {name}{operand}{note}")
    return lines
