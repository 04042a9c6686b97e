"""Block identity as the pipeline passes it around: number and hash, and the parent hash that detects reorgs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BlockRef:
    chain_id: int
    number: int
    hash: str  # 0x-prefixed lowercase hex
    parent_hash: str
    timestamp: int = 0
