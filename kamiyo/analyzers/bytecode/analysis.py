"""One call that turns runtime bytecode into everything Kamiyo knows about it: `analyze_code`.

The result is a frozen value object; `to_json` is the stable shape of `kamiyo analyze` (schema_version 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import BytecodeError
from .classify import PROXY_KINDS, Classification, classify
from .interface import event_topics, selectors
from .normalize import NormalizedCode, normalize, skeleton_digest
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


@dataclass(frozen=True, slots=True)
class Identity:
    """What a contract is and which exact-clone class it falls in: the cheap first half of the analysis.

    A pipeline that already knows the class stops here; sketching and selector extraction are for new classes.
    """

    code: bytes
    norm: NormalizedCode
    classification: Classification
    skeleton_hash: str
    selectors: tuple[str, ...] | None  # known already when classification needed them


TRIVIAL_INSTRUCTIONS = 24  # reachable code this short has no dispatcher worth the name: no lineage to find


def _trivial(kind: Classification, norm: NormalizedCode) -> bool:
    return kind.kind in ("contract", "library") and norm.reachable_instructions < TRIVIAL_INSTRUCTIONS


def identify(code: bytes) -> Identity:
    norm = normalize(code)
    found: list[tuple[str, ...]] = []

    def selectors_once() -> tuple[str, ...]:
        if not found:
            found.append(selectors(code))
        return found[0]

    kind = classify(code, norm, selectors_once)
    # Proxies to one implementation are one class (however the address is encoded), never all proxies one class;
    # a proxy that does not name its implementation is hashed whole.
    if kind.kind in ("eip1167", "eip7702"):
        skeleton = skeleton_digest(f"{kind.kind}:{kind.implementation}".encode())
    elif kind.kind in PROXY_KINDS:
        skeleton = skeleton_digest(b"proxy:" + code)
    elif _trivial(kind, norm):
        # Stubs (a library's call guard and a revert, a constructor-only contract) compile alike from any
        # source: masked, every one would be one class. Their bytes, metadata included, say which source it was.
        skeleton = skeleton_digest(b"stub:" + code)
    else:
        skeleton = norm.skeleton_hash
    return Identity(code, norm, kind, skeleton, found[0] if found else None)


def analyze_code(code: bytes | Identity) -> CodeAnalysis:
    ident = code if isinstance(code, Identity) else identify(code)
    norm, kind = ident.norm, ident.classification
    similarity_material = kind.kind not in PROXY_KINDS and kind.kind != "empty" and not _trivial(kind, norm)
    return CodeAnalysis(
        size=len(ident.code),
        kind=kind.kind,
        implementation=kind.implementation,
        proxy_standard=kind.standard,
        trailers=norm.trailers,
        skeleton_hash=ident.skeleton_hash,
        selectors=ident.selectors if ident.selectors is not None else selectors(ident.code),
        event_topics=event_topics(norm.topic_candidates),
        instructions=norm.instructions,
        reachable_instructions=norm.reachable_instructions,
        reachable_bytes=norm.reachable_bytes,
        creates_contracts=norm.has_opcode(CREATE) or norm.has_opcode(CREATE2),
        can_selfdestruct=norm.has_opcode(SELFDESTRUCT),
        delegates=norm.has_opcode(DELEGATECALL),
        sketch=opcode_sketch(norm.reachable_ops) if similarity_material else None,
    )


class ClassTable:
    """Exact-clone classes collapse before sketching: each class is analysed in full once, later members only
    identified (decode and skeleton), which is most of what a chain deploys."""

    def __init__(self) -> None:
        self.by_skeleton: dict[str, CodeAnalysis] = {}

    def analyze(self, code: bytes) -> tuple[CodeAnalysis, bool]:
        """(the analysis of the class `code` belongs to, whether that class is new)."""
        ident = identify(code)
        known = self.by_skeleton.get(ident.skeleton_hash)
        if known is not None:
            return known, False
        analysis = self.by_skeleton[ident.skeleton_hash] = analyze_code(ident)
        return analysis, True
