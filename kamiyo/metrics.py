"""Prometheus metrics: one registry for the process, served at /metrics when `[metrics] listen` is configured.

prometheus-client rather than our own counters: its exposition format, label handling and metric types are what
every scraper expects. What a chain cannot do shows here as well as in the logs: a pipeline that is down or
falling behind, a node without traces (factory-made contracts are then missed, trace analyzers skipped), a reorg,
an endpoint's errors by kind, an analyzer that fails, a feed whose pulls fail.

Counters are declared without `_total`: prometheus-client appends it, so `kamiyo_blocks_committed` is scraped as
`kamiyo_blocks_committed_total`.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .errors import KamiyoError

REGISTRY = CollectorRegistry()

CHAIN_UP = Gauge("kamiyo_chain_up", "1 while the chain's pipeline is following it, 0 while it is failing or stopped",
                 ["chain"], registry=REGISTRY)
CHAIN_HEAD = Gauge("kamiyo_chain_head", "The newest block the chain's pipeline may process (confirmations applied)",
                   ["chain"], registry=REGISTRY)
CHECKPOINT = Gauge("kamiyo_checkpoint_block", "The last block committed", ["chain"], registry=REGISTRY)
CHECKPOINT_LAG = Gauge("kamiyo_checkpoint_lag_blocks",
                       "Blocks the chain's pipeline may process but has not committed yet: kamiyo_chain_head minus "
                       "kamiyo_checkpoint_block (0 while the node is behind the checkpoint)",
                       ["chain"], registry=REGISTRY)
BLOCKS = Counter("kamiyo_blocks_committed",
                 "Blocks committed; blocks per second is rate(kamiyo_blocks_committed_total[1m])",
                 ["chain"], registry=REGISTRY)
DEPLOYMENTS = Counter("kamiyo_deployments", "Deployments stored", ["chain"], registry=REGISTRY)
FINDINGS = Counter("kamiyo_findings", "Findings created (or made active again)", ["chain", "kind"],
                   registry=REGISTRY)
REORGS = Counter("kamiyo_reorgs", "Reorgs rolled back", ["chain"], registry=REGISTRY)
DEPLOYMENT_SOURCE = Gauge(
    "kamiyo_deployment_source",
    "1 for how deployments are found: trace_block, debug_traceBlockByNumber, or receipts (top-level only)",
    ["chain", "method"], registry=REGISTRY)
RPC_ERRORS = Counter("kamiyo_rpc_errors", "RPC failures by endpoint (redacted) and kind", ["endpoint", "kind"],
                     registry=REGISTRY)
ANALYZER_FAILURES = Counter("kamiyo_analyzer_failures",
                            "Blocks on which an analyzer raised or returned something other than its own findings",
                            ["analyzer"], registry=REGISTRY)
ANALYZER_SKIPPED = Counter("kamiyo_analyzer_skipped", "Blocks an analyzer did not run on, by reason (no-traces)",
                           ["analyzer", "reason"], registry=REGISTRY)

FEED_UP = Gauge("kamiyo_feed_up", "1 after the feed's last pull succeeded (updated or unchanged), 0 after it failed",
                ["feed"], registry=REGISTRY)
FEED_LAST_SUCCESS = Gauge("kamiyo_feed_last_success_timestamp_seconds",
                          "Unix time of the feed's last successful pull (at start, as stored by an earlier run)",
                          ["feed"], registry=REGISTRY)
FEED_PULLS = Counter("kamiyo_feed_pulls", "Feed pulls by outcome: updated, unchanged or failed", ["feed", "status"],
                     registry=REGISTRY)
FEED_RECORDS = Gauge("kamiyo_feed_records", "Records in the feed's last parsed payload", ["feed"],
                     registry=REGISTRY)

DELIVERIES = Counter("kamiyo_deliveries", "Alert delivery attempts by channel and outcome (delivered, retry, dead, "
                     "suppressed)", ["channel", "outcome"], registry=REGISTRY)
ANALYZER_SECONDS = Histogram("kamiyo_analyzer_seconds", "CPU time an analyzer took over one block", ["analyzer"],
                             buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0), registry=REGISTRY)
ANALYSIS_SECONDS = Histogram("kamiyo_analysis_seconds",
                             "Wall time of a block's analysis, by step: fetch (its activity, run ahead) and run (the "
                             "analyzers, in block order)",
                             ["chain", "step"], buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
                             registry=REGISTRY)


async def serve(host: str, port: int) -> web.AppRunner:
    """Start the /metrics endpoint; the caller cleans the runner up."""

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise KamiyoError(f"[metrics] listen: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return runner
