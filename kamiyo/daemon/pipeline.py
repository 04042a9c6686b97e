"""One chain's pipeline, assembled in one place: source → follower → deployment stage (linking, findings)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from ..chains.deployments import DeploymentFinder
from ..chains.rpc import RpcClient
from ..chains.source import EvmChainSource
from ..config import ChainSettings
from ..analyzers.tx.runner import AnalyzerSet
from .analysis import AnalysisStage
from .deployments import DeploymentStage
from .follower import ChainFollower
from .linking import Linker


def build_pipeline(chain: ChainSettings, client: RpcClient, engine: AsyncEngine, linker: Linker,
                   analyzers: AnalyzerSet | None = None, watched: dict[str, str | None] | None = None,
                   source_types: dict[str, str] | None = None) -> ChainFollower:
    analysis = AnalysisStage(client, analyzers, watched or {}, chain.name) if analyzers is not None else None
    stage = DeploymentStage(DeploymentFinder(client, chain.chain_id, chain.name, chain.traces), linker, engine,
                            analysis=analysis if analysis is not None and analysis.active else None,
                            source_types=source_types)
    return ChainFollower(EvmChainSource(chain, client), engine, work=stage, on_rollback=stage.rollback,
                         after_commit=stage.committed)
