"""One call that turns runtime bytecode into everything Kamiyo knows about it: `analyze_code`.

The result is a frozen value object; `to_json` is the stable shape of `kamiyo analyze` (schema_version 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import BytecodeError
from .classify import PROXY_KINDS, classify
from .interface import event_topics, selectors
from .normalize import normalize, skeleton_digest
from .metadata import Trailer
from .sketch import opcode_sketch

SCHEMA_VERSION = 1
CREATE, CREATE2, SELFDESTRUCT, DELEGATECALL = 0xF0, 0xF5, 0xFF, 0xF4
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True, slots=True)
class CodeAnalysis:
    size: int
    kind: str
    implementation: str | None
    proxy_standard: str | None
    trailers: tuple[Trailer, ...]
    skeleton_hash: str
    selectors: tuple[str, ...]
    event_topics: tuple[str, ...]
    instructions: int
    reachable_instructions: int
    reachable_bytes: int
    creates_contracts: bool
    can_selfdestruct: bool
    delegates: bool
    sketch: np.ndarray | None  # None for proxy kinds and code too short to shingle

    @property
    def is_similarity_material(self) -> bool:
        return self.sketch is not None

    @property
    def features(self) -> frozenset[str]:
        return frozenset(self.selectors) | frozenset(self.event_topics)

    def metadata_json(self) -> dict:
        last = next((t for t in reversed(self.trailers) if t.end == self.size), None)
        return {
            "trailers": [t.to_json() for t in self.trailers],
            "compiler": last.compiler if last else None,
            "version": last.version if last else None,
        }

    def to_json(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "size": self.size,
            "kind": self.kind,
            "implementation": self.implementation,
            "proxy_standard": self.proxy_standard,
            "metadata": self.metadata_json(),
            "skeleton_hash": self.skeleton_hash,
            "selectors": list(self.selectors),
            "event_topics": list(self.event_topics),
            "instructions": self.instructions,
            "reachable_instructions": self.reachable_instructions,
            "reachable_bytes": self.reachable_bytes,
            "creates_contracts": self.creates_contracts,
            "can_selfdestruct": self.can_selfdestruct,
            "delegates": self.delegates,
        }


def parse_hex(text: str) -> bytes:
    """`0x`-prefixed or bare hex → bytes; a clear BytecodeError otherwise (whitespace around is ignored)."""
    digits = text.strip()
    if digits[:2] in ("0x", "0X"):
        digits = digits[2:]
    try:
        code = bytes.fromhex(digits)
    except ValueError:
        code = None
    # bytes.fromhex also accepts spaces between bytes; bytecode has none, so the length must match exactly
    if code is not None and 2 * len(code) == len(digits):
        return code
    bad = next((c for c in digits if c not in _HEX_DIGITS), None)
    if bad is not None:
        raise BytecodeError(f"not hex bytecode: unexpected character {bad!r}")
    raise BytecodeError(f"not hex bytecode: odd number of hex digits ({len(digits)})")


def analyze_code(code: bytes) -> CodeAnalysis:
    norm = normalize(code)
    sels = selectors(code)
    kind = classify(code, norm, sels)
    proxy = kind.kind in PROXY_KINDS
    # Proxies to one implementation are one class (however the address is encoded), never all proxies one class;
    # a proxy that does not name its implementation is hashed whole.
    if kind.kind in ("eip1167", "eip7702"):
        skeleton = skeleton_digest(f"{kind.kind}:{kind.implementation}".encode())
    elif proxy:
        skeleton = skeleton_digest(b"proxy:" + code)
    else:
        skeleton = norm.skeleton_hash
    return CodeAnalysis(
        size=len(code),
        kind=kind.kind,
        implementation=kind.implementation,
        proxy_standard=kind.standard,
        trailers=norm.trailers,
        skeleton_hash=skeleton,
        selectors=sels,
        event_topics=event_topics(norm.topic_candidates),
        instructions=norm.instructions,
        reachable_instructions=norm.reachable_instructions,
        reachable_bytes=norm.reachable_bytes,
        creates_contracts=norm.has_opcode(CREATE) or norm.has_opcode(CREATE2),
        can_selfdestruct=norm.has_opcode(SELFDESTRUCT),
        delegates=norm.has_opcode(DELEGATECALL),
        sketch=None if proxy or kind.kind == "empty" else opcode_sketch(norm.reachable_ops),
    )
