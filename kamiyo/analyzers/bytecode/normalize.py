"""Normalisation of one runtime bytecode: metadata trailers out, reachable code found, skeleton hashed.

Everything similarity is computed from comes out of here, so its rules are the product's: trailers never
count, data sections and embedded child creation code never count (reachability), and the skeleton masks
PUSH immediates so that exact clones with other constructor arguments, immutables or metadata collapse.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from . import _scan
from .metadata import Trailer, find_trailers
from .opcodes import halts_table

_scan.configure(halts_table())


@dataclass(frozen=True, slots=True)
class NormalizedCode:
    trailers: tuple[Trailer, ...]
    reachable_ops: bytes  # opcode bytes of reachable instructions, in address order
    skeleton_hash: str  # 0x-hex digest of every instruction's opcode outside trailers (immediates masked)
    topic_candidates: tuple[bytes, ...]  # PUSH32 constants that feed a LOG in the same block
    opcodes_present: bytes  # 256-bit set of opcodes seen in reachable code
    instructions: int
    reachable_instructions: int
    reachable_bytes: int
    push20_values: tuple[bytes, ...]  # first few PUSH20 immediates in reachable code (proxy targets)

    def has_opcode(self, op: int) -> bool:
        return bool(self.opcodes_present[op >> 3] & (1 << (op & 7)))


def skeleton_digest(skeleton_ops: bytes) -> str:
    return "0x" + hashlib.blake2b(skeleton_ops, digest_size=16).hexdigest()


def normalize(code: bytes) -> NormalizedCode:
    trailers = find_trailers(code)
    rops, skeleton, topics, opset, n_ins, n_reach, reach_bytes, push20 = _scan.scan(
        code, [t.start for t in trailers], [t.end for t in trailers]
    )
    return NormalizedCode(
        trailers=trailers,
        reachable_ops=rops,
        skeleton_hash=skeleton_digest(skeleton),
        topic_candidates=tuple(dict.fromkeys(topics)),
        opcodes_present=opset,
        instructions=n_ins,
        reachable_instructions=n_reach,
        reachable_bytes=reach_bytes,
        push20_values=tuple(push20),
    )
