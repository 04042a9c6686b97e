"""Transaction analyzers: what one is, declared as data, and what it is shown.

An analyzer is a class with `info` (kebab-case id, title, description, severity, confidence, the events it
consumes, whether it needs traces) and optionally a pydantic `Settings` model for its `[analyzers.<id>]`
thresholds. Both are checked when the class is defined, so a malformed analyzer fails at import, never
mid-block. `analyze` sees one block's activity and returns findings; it must not do I/O (the pipeline fetched
everything it declared it consumes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ...chains.blocks import BlockRef
from ...errors import KamiyoError
from ...findings import Finding, Severity

LOGS, TRACES, DEPLOYMENTS, TRANSACTIONS = "logs", "traces", "deployments", "transactions"
BALANCES = "balances"  # balances before the block of contracts that lost funds in it (the pipeline asks the node)
EVENTS = frozenset({LOGS, TRACES, DEPLOYMENTS, TRANSACTIONS, BALANCES})
_KEBAB = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*\Z")


class AnalyzerDefinitionError(KamiyoError):
    """An analyzer class declares itself wrongly: refused when the class is defined."""


@dataclass(frozen=True, slots=True)
class AnalyzerInfo:
    id: str
    title: str
    description: str
    severity: Severity  # of its findings, unless a finding says otherwise
    confidence: float  # 0..1: how often a finding of it is what it says
    consumes: frozenset[str]
    needs_traces: bool = False
    # True when it only reads logs of watched contracts: a chain whose analyzers are all like that is served
    # by one address-filtered eth_getLogs per block instead of every receipt and trace
    watched_only: bool = False


class NoSettings(BaseModel):
    """An analyzer without thresholds still has `enabled`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Log:
    address: str  # lowercase
    topics: tuple[str, ...]  # lowercase 0x…
    data: str
    log_index: int


@dataclass(frozen=True, slots=True)
class CallFrame:
    """One call in a transaction's trace (call tracer shape), children in order."""

    kind: str  # CALL, DELEGATECALL, STATICCALL, CREATE, CREATE2, SELFDESTRUCT
    sender: str
    to: str | None
    value: int
    input: str
    output: str | None
    error: str | None
    calls: tuple[CallFrame, ...] = ()


@dataclass(frozen=True, slots=True)
class Created:
    """A contract a transaction created (top level or inside), with its runtime code when the trace gives it."""

    address: str
    creator: str  # the account or contract that executed the CREATE
    code: str | None = None  # runtime code as 0x hex (the call tracer's CREATE output); None when unknown


@dataclass(frozen=True, slots=True)
class TxObserved:
    hash: str
    index: int
    sender: str
    to: str | None  # None for a contract creation
    value: int
    input: str
    success: bool
    logs: tuple[Log, ...] = ()
    trace: CallFrame | None = None  # present when the node gives traces and an enabled analyzer needs them
    nonce: int = 0  # the sender's nonce: a low one is a fresh account
    created: tuple[Created, ...] = ()


@dataclass(frozen=True, slots=True)
class BlockActivity:
    block: BlockRef
    transactions: tuple[TxObserved, ...]
    has_traces: bool = False
    context: dict[str, Any] = field(default_factory=dict)  # e.g. watched addresses, by the pipeline
    # (holder, token or NATIVE) -> balance at the end of the parent block, for the holders flows.candidates names;
    # a pair the node could not answer for is absent
    balances: dict[tuple[str, str], int] = field(default_factory=dict)
    supplies: dict[str, int] = field(default_factory=dict)  # token -> totalSupply at the parent block


def label(entity: str, name: str, confidence: float) -> dict[str, Any]:
    """A label on an address, in Forta's shape (entity, entityType, label, confidence, remove), for
    `evidence["labels"]`: what a finding says an address is, e.g. "attacker", "victim", "exploit-contract"."""
    return {"entity": entity, "entityType": "Address", "label": name, "confidence": round(float(confidence), 3),
            "remove": False}


class Analyzer:
    info: ClassVar[AnalyzerInfo]
    Settings: ClassVar[type[BaseModel]] = NoSettings

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        problems = _problems(cls)
        if problems:
            raise AnalyzerDefinitionError(f"analyzer {cls.__module__}.{cls.__qualname__}: " + "; ".join(problems),
                                          analyzer=cls.__qualname__)

    def __init__(self, settings: BaseModel | None = None) -> None:
        self.settings = settings if settings is not None else self.Settings()

    def analyze(self, activity: BlockActivity) -> list[Finding]:
        raise NotImplementedError


def _problems(cls: type) -> list[str]:
    info = cls.__dict__.get("info")
    if not isinstance(info, AnalyzerInfo):
        return ["declares no `info = AnalyzerInfo(...)`"]
    out = []
    if not _KEBAB.match(info.id or ""):
        out.append(f"id {info.id!r} is not kebab-case (like 'flash-loan')")
    if not info.title.strip() or not info.description.strip():
        out.append("title and description must say what it finds")
    if not isinstance(info.severity, Severity):
        out.append(f"severity {info.severity!r} is not one of {', '.join(s.value for s in Severity)}")
    if not isinstance(info.confidence, (int, float)) or not 0 <= info.confidence <= 1:
        out.append(f"confidence {info.confidence!r} is not within 0..1")
    unknown = set(info.consumes) - EVENTS
    if not info.consumes or unknown:
        out.append(f"consumes {sorted(info.consumes)} must be some of {sorted(EVENTS)}")
    if info.needs_traces and TRACES not in info.consumes:
        out.append("needs_traces without consuming traces")
    settings = cls.__dict__.get("Settings", NoSettings)
    if not (isinstance(settings, type) and issubclass(settings, BaseModel)) or "enabled" not in settings.model_fields:
        out.append("Settings must be a pydantic model with an `enabled` field (subclass NoSettings)")
    if cls.__dict__.get("analyze") is None:
        out.append("does not implement analyze()")
    return out
