"""Compiler metadata trailers (Solidity and Vyper CBOR footers) in EVM bytecode.

Provides `find_trailers`, which locates every trailer in a blob of code: the one
at the end of runtime code and the ones embedded in child creation code that
factory contracts carry as data. A trailer is recognised by its own bytes alone:
a CBOR item from a small subset, followed by its length as 2 big-endian bytes.

This module must not raise on any input (code comes from the chain, i.e. from
anyone), must not disassemble, and must stay cheap: it runs on every contract.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Trailer", "code_without_trailers", "find_trailers"]


@dataclass(frozen=True, slots=True)
class Trailer:
    """One metadata trailer: `code[start:end]` is the CBOR plus its length suffix."""

    start: int
    end: int
    compiler: str | None
    version: str | None
    hash_kind: str | None
    hash_hex: str | None
    experimental: bool = False

    def to_json(self) -> dict:
        return {
            "start": self.start,
            "end": self.end,
            "compiler": self.compiler,
            "version": self.version,
            "hash_kind": self.hash_kind,
            "hash_hex": self.hash_hex,
            "experimental": self.experimental,
        }


# Every key either compiler writes is one of these, so a trailer's map header
# is always followed by one of them (text-string head + name; "bzzr" covers
# bzzr0 and bzzr1). Candidates are found by scanning for the header bytes
# rather than the keys: 0xa1..0xa5 are LOG1..LOG4 and an undefined opcode, so
# they are rare in code, and bytes.find on one byte is a memchr; five
# multi-byte key searches cost several times more on a 15 KB contract.
_MAP_HEADS = (b"\xa1", b"\xa2", b"\xa3", b"\xa4", b"\xa5")
_MARKERS = (b"\x64ipfs", b"\x65bzzr", b"\x64solc", b"\x6cexperimental", b"\x65vyper")
_SOLC_KEYS = frozenset({"ipfs", "bzzr0", "bzzr1", "solc", "experimental"})
_HASH_SIZES = {"ipfs": 34, "bzzr0": 32, "bzzr1": 32}
_MAX_DEPTH = 4  # Vyper: array > map > array > int
# No compiler writes a string near this long (hashes are 32-34 bytes, solc's
# nightly version text ~60); refusing longer ones keeps hostile code that
# repeats a header with a huge claimed string from costing a copy per header.
_MAX_STRING = 256
_MAX_CBOR = 0xFFFF  # the length suffix is two bytes
_TRUE, _FALSE = 0xF5, 0xF4


class _Malformed(Exception):
    """Internal: the bytes are not a CBOR item of the accepted subset."""


def _item(code: bytes, pos: int, limit: int, depth: int) -> tuple[object, int]:
    """Decode one CBOR item at `pos` that must end at or before `limit`.

    Only definite lengths; only unsigned ints, byte and text strings, arrays,
    maps with unique text keys, true and false. Anything else is malformed.
    """
    if pos >= limit:
        raise _Malformed
    head = code[pos]
    major, info = head >> 5, head & 0x1F
    if major == 7:
        if head == _TRUE:
            return True, pos + 1
        if head == _FALSE:
            return False, pos + 1
        raise _Malformed
    pos += 1
    if info < 24:
        arg = info
    elif info < 28:
        width = 1 << (info - 24)
        if pos + width > limit:
            raise _Malformed
        arg = int.from_bytes(code[pos : pos + width], "big")
        pos += width
    else:
        raise _Malformed  # reserved, or an indefinite length
    if major == 0:
        return arg, pos
    if major == 2 or major == 3:
        end = pos + arg
        if arg > _MAX_STRING or end > limit:
            raise _Malformed
        raw = code[pos:end]
        if major == 2:
            return bytes(raw), end
        try:
            return raw.decode(), end
        except UnicodeDecodeError as exc:
            raise _Malformed from exc
    if depth >= _MAX_DEPTH or arg > limit - pos:
        # Each element takes at least one byte, so a count beyond the
        # remaining bytes is a lie; checking it first bounds the loops.
        raise _Malformed
    if major == 4:
        items = []
        for _ in range(arg):
            value, pos = _item(code, pos, limit, depth + 1)
            items.append(value)
        return items, pos
    if major == 5:
        fields: dict[str, object] = {}
        for _ in range(arg):
            key, pos = _item(code, pos, limit, depth + 1)
            if type(key) is not str or key in fields:
                raise _Malformed
            fields[key], pos = _item(code, pos, limit, depth + 1)
        return fields, pos
    raise _Malformed  # negative ints and tags


def _suffix(code: bytes, end: int) -> int:
    return (code[end] << 8) | code[end + 1]


def _is_uint(value: object) -> bool:
    return type(value) is int


def _solidity(fields: dict, start: int, end: int) -> Trailer | None:
    if not fields.keys() <= _SOLC_KEYS:
        return None
    hash_kind = hash_hex = None
    for kind, size in _HASH_SIZES.items():
        if kind in fields:
            digest = fields[kind]
            if hash_kind is not None or type(digest) is not bytes or len(digest) != size:
                return None
            hash_kind, hash_hex = kind, "0x" + digest.hex()
    compiler = version = None
    if "solc" in fields:
        solc = fields["solc"]
        if type(solc) is bytes and len(solc) == 3:
            version = f"{solc[0]}.{solc[1]}.{solc[2]}"
        elif type(solc) is str and solc:
            version = solc  # prereleases and nightlies write the full text
        else:
            return None
        compiler = "solc"
    elif hash_kind is None:
        return None  # {"experimental": ...} alone says nothing
    experimental = fields.get("experimental", False)
    if type(experimental) is not bool:
        return None
    return Trailer(start, end, compiler, version, hash_kind, hash_hex, experimental)


def _vyper_version(fields: dict) -> str | None:
    if fields.keys() != {"vyper"}:
        return None
    parts = fields["vyper"]
    if type(parts) is not list or len(parts) != 3 or not all(map(_is_uint, parts)):
        return None
    return ".".join(map(str, parts))


def _vyper_prefix_ok(value: object) -> bool:
    # Elements before Vyper's map: sizes (ints), data-section sizes (a list of
    # ints) and, from 0.4.1, the integrity hash (bytes).
    if type(value) is list:
        return all(map(_is_uint, value))
    return type(value) is int or type(value) is bytes


def _vyper(code: bytes, map_start: int, map_end: int, version: str) -> Trailer | None:
    """Map form (0.3.x) or array form (0.3.10+, the map is the last element)."""
    length = _suffix(code, map_end)
    # Vyper's suffix has counted the two length bytes in some releases and
    # not in others, so each form is tried with both readings.
    if length == map_end - map_start or length == map_end - map_start + 2:
        return Trailer(map_start, map_end + 2, "vyper", version, None, None)
    for cbor_length in (length, length - 2):
        start = map_end - cbor_length
        if not 0 <= start < map_start or code[start] >> 5 != 4:
            continue
        try:
            head_items, pos = _array_head(code, start, map_start)
        except (_Malformed, IndexError):
            continue
        if pos == map_start and all(map(_vyper_prefix_ok, head_items)):
            return Trailer(start, map_end + 2, "vyper", version, None, None)
    return None


def _array_head(code: bytes, start: int, map_start: int) -> tuple[list, int]:
    """Decode an array header at `start` and all its elements but the last.

    Returns the decoded elements and the offset where the last one begins; the
    caller checks that offset is the Vyper map it already parsed.
    """
    head = code[start]
    info = head & 0x1F
    pos = start + 1
    if info < 24:
        count = info
    elif info == 24:
        count, pos = code[pos], pos + 1
    else:
        raise _Malformed  # Vyper's arrays have a handful of elements
    if count < 1:
        raise _Malformed
    items = []
    for _ in range(count - 1):
        value, pos = _item(code, pos, map_start, 1)
        items.append(value)
    return items, pos


def _candidate(code: bytes, start: int) -> Trailer | None:
    """The trailer whose map header is at `start` (already known to be 0xa1..0xa5)."""
    # The 2-byte length suffix must fit after the CBOR, and bounds its size.
    limit = min(len(code) - 2, start + _MAX_CBOR)
    try:
        fields, end = _item(code, start, limit, 0)
    except (_Malformed, IndexError):  # IndexError: belt and braces, bounds are checked
        return None
    # The caller found a map header at `start`, so `fields` is a dict here.
    version = _vyper_version(fields) if "vyper" in fields else None  # type: ignore[operator]
    if version is not None:
        return _vyper(code, start, end, version)
    if _suffix(code, end) != end - start:
        return None
    return _solidity(fields, start, end + 2)  # type: ignore[arg-type]


def find_trailers(code: bytes) -> tuple[Trailer, ...]:
    """All trailers in `code`, sorted by start, non-overlapping.

    Empty for code without any (EIP-1167 proxies, hand-written code) and for
    anything malformed; never raises on bytes of any content or length.
    """
    heads: list[int] = []
    for head in _MAP_HEADS:
        at = code.find(head)
        while at != -1:
            if code.startswith(_MARKERS, at + 1):
                heads.append(at)
            at = code.find(head, at + 1)
    if not heads:
        return ()
    heads.sort()
    found: list[Trailer] = []
    covered = 0  # end of the last accepted trailer; later ones may not overlap it
    for at in heads:
        if at < covered:
            continue  # a header-like byte inside a trailer already accepted
        trailer = _candidate(code, at)
        if trailer is not None and trailer.start >= covered:
            found.append(trailer)
            covered = trailer.end
    return tuple(found)


def code_without_trailers(code: bytes, trailers: Iterable[Trailer]) -> bytes:
    """`code` with every trailer's byte range cut out (ranges may be in any order)."""
    kept: list[bytes] = []
    cursor = 0
    for trailer in sorted(trailers, key=lambda t: t.start):
        if trailer.start > cursor:
            kept.append(code[cursor : trailer.start])
        cursor = max(cursor, trailer.end)
    kept.append(code[cursor:])
    return b"".join(kept)
