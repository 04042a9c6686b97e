"""A chain's first RPC endpoint misbehaves (HTTP 429 with Retry-After, HTTP 503, a JSON-RPC error inside an HTTP
200, a dead port): the daemon rotates to the next one and the chain keeps progressing to the node's head."""

from __future__ import annotations

import subprocess

import pytest
from aiohttp import web

from tests.support.anvil import anvil, free_port, require_anvil
from tests.support.daemon import chain_toml, log_events, running_daemon_async, storage_toml, wait_checkpoint_async


class BadEndpoint:
    """A real HTTP server in front of nothing: every answer is the failure under test."""

    def __init__(self, mode: str) -> None:
        self.mode, self.hits = mode, 0

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        body = await request.json()
        if self.mode == "429":
            return web.Response(status=429, headers={"Retry-After": "30"}, text="slow down")
        if self.mode == "503":
            return web.Response(status=503, text="upstream unavailable")
        items = body if isinstance(body, list) else [body]  # "rpc-error": a provider's limit inside an HTTP 200
        errors = [{"jsonrpc": "2.0", "id": i.get("id"), "error": {"code": -32005, "message": "limit exceeded"}}
                  for i in items]
        return web.json_response(errors if isinstance(body, list) else errors[0])


@pytest.mark.parametrize("mode", ["429", "503", "rpc-error", "dead"])
async def test_a_failing_first_endpoint_is_rotated_away_from_and_the_chain_progresses(tmp_path, mode):
    require_anvil()
    bad = BadEndpoint(mode)
    app = web.Application()
    app.router.add_post("/", bad.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    if mode != "dead":
        await web.TCPSite(runner, "127.0.0.1", port).start()
    db = tmp_path / "k.db"
    try:
        with anvil(1001) as node:
            node.rpc("anvil_mine", ["0x30"])
            (tmp_path / "k.toml").write_text(
                storage_toml(db) + chain_toml("alpha", node, rpc=[f"http://127.0.0.1:{port}/", node.http]))
            async with running_daemon_async(tmp_path / "k.toml", stdout=subprocess.DEVNULL) as daemon:
                for target in (48, 60):
                    await wait_checkpoint_async(db, 1001, target, timeout=30)
                    node.rpc("anvil_mine", ["0xc"])  # still progressing as new blocks come
    finally:
        await runner.cleanup()
    assert daemon.returncode == 0
    events = log_events(daemon.stderr_text)
    rotations = [e for e in events if e["event"] == "rpc.endpoint_rotated"]
    assert rotations and rotations[0]["to_endpoint"] == node.http.removesuffix("/")
    if mode != "dead":
        assert bad.hits >= 1
    if mode == "429":  # Retry-After is honoured: the throttling endpoint is not asked again within its 30 s
        assert bad.hits <= 2
    assert not [e for e in events if e["event"] == "chain.stopped"]
