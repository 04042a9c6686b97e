"""The enabled analyzers of a configuration, run over one block's activity at a time.

`AnalyzerSet` owns the isolation the house rules ask for: an analyzer that raises, returns something other than
findings, or returns a finding of another kind is logged with its context and counted in
`kamiyo_analyzer_failures`, and the others run as if nothing happened; `run` never raises for an analyzer's
sake. An analyzer that needs traces is skipped (and counted) on blocks fetched without them, so a node without
tracing degrades it visibly instead of feeding it half the picture. This module must not fetch anything: what the
set needs (`needs_traces`, `consumes`) is for the pipeline to act on before calling `run`.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ... import log
from ...errors import KamiyoError
from ...findings import Finding
from ...metrics import ANALYZER_FAILURES, ANALYZER_SECONDS, ANALYZER_SKIPPED
from .base import Analyzer, BlockActivity
from .registry import effective_settings, load_registry

if TYPE_CHECKING:
    from ...config import Settings

NO_TRACES = "no-traces"

_log = log.get("kamiyo.analyzers")
# ids already reported as skipped for want of traces: the condition lasts as long as the node, so say it once
_TRACELESS_REPORTED: set[str] = set()


class AnalyzerOutputError(KamiyoError):
    """An analyzer returned something that is not a finding of its own kind (never raised out of `run`)."""


class AnalyzerSet:
    """Analyzer instances, run in id order."""

    def __init__(self, analyzers: Iterable[Analyzer]) -> None:
        self.analyzers: tuple[Analyzer, ...] = tuple(sorted(analyzers, key=lambda a: a.info.id))
        ids = [a.info.id for a in self.analyzers]
        if len(set(ids)) != len(ids):
            raise KamiyoError(f"an analyzer set holds one id twice: {', '.join(ids)}", analyzers=ids)

    @classmethod
    def from_settings(cls, settings: Settings,
                      registry: Mapping[str, type[Analyzer]] | None = None) -> AnalyzerSet:
        """Every registered analyzer whose settings (`[analyzers.<id>]`, else its defaults) leave it enabled.

        The tables were checked when the configuration was loaded; they are checked again here against this
        registry, with every analyzer's defaults too, so one with a required setting left out is refused now,
        with its key path, rather than being constructed half-configured.
        """
        registry = load_registry() if registry is None else registry
        models = effective_settings(registry, settings.analyzers)
        return cls(registry[analyzer_id](model) for analyzer_id, model in models.items() if model.enabled)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(a.info.id for a in self.analyzers)

    @property
    def needs_traces(self) -> bool:
        """Whether any analyzer here needs traces: the pipeline fetches them only then."""
        return any(a.info.needs_traces for a in self.analyzers)

    @property
    def consumes(self) -> frozenset[str]:
        return frozenset().union(*(a.info.consumes for a in self.analyzers))

    def run(self, activity: BlockActivity) -> list[Finding]:
        """The findings of every analyzer that could run on this block, analyzer by analyzer in id order."""
        findings: list[Finding] = []
        for analyzer in self.analyzers:
            if analyzer.info.needs_traces and not activity.has_traces:
                _skipped_for_traces(analyzer, activity)
                continue
            started = time.process_time()
            try:
                produced = list(analyzer.analyze(activity))  # list(): a generator raises while it is consumed
            except Exception as exc:  # an analyzer's bug costs its own findings of this block, nothing more
                _failed(analyzer, activity, exc)
                continue
            finally:
                ANALYZER_SECONDS.labels(analyzer=analyzer.info.id).observe(time.process_time() - started)
            findings.extend(_own_findings(analyzer, activity, produced))
        return findings


def _own_findings(analyzer: Analyzer, activity: BlockActivity, produced: list) -> list[Finding]:
    """The findings an analyzer may report. A finding's kind is its analyzer's id (that is what suppression,
    routing and the API select on), so anything else is dropped and counted as that analyzer failing; its
    well-formed findings of the same block are kept."""
    own = [f for f in produced if isinstance(f, Finding) and f.kind == analyzer.info.id]
    if len(own) < len(produced):
        wrong = sorted({repr(f.kind) if isinstance(f, Finding) else type(f).__name__
                        for f in produced if not (isinstance(f, Finding) and f.kind == analyzer.info.id)})
        _failed(analyzer, activity, AnalyzerOutputError(
            f"returned {len(produced) - len(own)} result(s) that are not findings of kind {analyzer.info.id!r} "
            f"({', '.join(wrong)}); they were dropped"))
    return own


def _failed(analyzer: Analyzer, activity: BlockActivity, exc: BaseException) -> None:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else None
    block = activity.block
    _log.error("analyzer.failed", analyzer=analyzer.info.id, chain_id=block.chain_id, block=block.number,
               block_hash=block.hash, error_type=type(exc).__name__, error=str(exc), where=where)
    ANALYZER_FAILURES.labels(analyzer=analyzer.info.id).inc()


def _skipped_for_traces(analyzer: Analyzer, activity: BlockActivity) -> None:
    ANALYZER_SKIPPED.labels(analyzer=analyzer.info.id, reason=NO_TRACES).inc()
    if analyzer.info.id not in _TRACELESS_REPORTED:
        _TRACELESS_REPORTED.add(analyzer.info.id)
        _log.warning("analyzer.skipped", analyzer=analyzer.info.id, reason=NO_TRACES,
                     chain_id=activity.block.chain_id, block=activity.block.number,
                     note="the block was fetched without traces; said once per analyzer, counted every block in "
                          "kamiyo_analyzer_skipped")
