"""Findings: what Kamiyo tells people, in one typed shape that storage, logs, alerts and the API share.

The model follows Forta's (severity, type, labels by address), and every finding carries a fingerprint that is
stable across runs and machines: a hash of what makes it the same finding, never of when or where it was seen.
That fingerprint is the dedup key for storage, alerts and the API.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3, Severity.CRITICAL: 4}


class FindingType(enum.StrEnum):
    EXPLOIT = "exploit"
    SUSPICIOUS = "suspicious"
    DEGRADED = "degraded"
    INFO = "info"
    SCAM = "scam"


ACTIVE, RETRACTED = "active", "retracted"


def fingerprint(kind: str, *identity: object) -> str:
    """sha256 over the kind and the parts that make a finding itself (JSON-encoded, so parts never run together)."""
    payload = json.dumps([kind, *identity], separators=(",", ":"), default=str)
    return "0x" + hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # kebab-case, e.g. "fork-detected"
    severity: Severity
    type: FindingType
    chain_id: int
    subject: str  # the address the finding is about
    block: int
    tx_hash: str | None
    fingerprint: str
    evidence: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def row(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint, "kind": self.kind, "severity": str(self.severity),
            "type": str(self.type),
            "chain_id": self.chain_id, "subject": self.subject, "block_number": self.block, "tx_hash": self.tx_hash,
            "status": ACTIVE, "evidence": self.evidence,
            "created_at": self.created_at, "updated_at": self.created_at,
        }
