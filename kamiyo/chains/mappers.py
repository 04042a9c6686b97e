"""Raw JSON-RPC answers → domain objects, in one place. A node's malformed answer is a clear error, not a crash
somewhere downstream."""

from __future__ import annotations

import re

from ..errors import KamiyoError
from .blocks import BlockRef

_HASH = re.compile(r"0x[0-9a-fA-F]{64}\Z")
_QUANTITY = re.compile(r"0x[0-9a-fA-F]{1,64}\Z")


class MalformedNodeAnswer(KamiyoError):
    """The node answered with something that is not what the JSON-RPC spec says it returns."""

    retryable = True  # another endpoint, or the same one later, may answer properly


def quantity(value: object, what: str) -> int:
    if not isinstance(value, str) or not _QUANTITY.match(value):
        raise MalformedNodeAnswer(f"{what}: expected a hex quantity, got {value!r:.80}")
    return int(value, 16)


def block_hash(value: object, what: str) -> str:
    if not isinstance(value, str) or not _HASH.match(value):
        raise MalformedNodeAnswer(f"{what}: expected a 32-byte hash, got {value!r:.80}")
    return value.lower()


def block_ref(chain_id: int, raw: object) -> BlockRef:
    """An `eth_getBlockBy*` result (with or without full transactions) → BlockRef."""
    if not isinstance(raw, dict):
        raise MalformedNodeAnswer(f"block: expected an object, got {type(raw).__name__}")
    number = quantity(raw.get("number"), "block.number")
    return BlockRef(
        chain_id=chain_id,
        number=number,
        hash=block_hash(raw.get("hash"), f"block {number}.hash"),
        parent_hash=block_hash(raw.get("parentHash"), f"block {number}.parentHash"),
        timestamp=quantity(raw.get("timestamp"), f"block {number}.timestamp"),
    )
