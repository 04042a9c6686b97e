"""A property-based fuzzer against the OpenAPI document: schemathesis draws requests from it (valid ones, and ones
that break it) and sends them to the real API on a free port with a key that may do everything. Every answer must
not be a 5xx, must have a documented status, content type and body, a request the document allows must not be
refused as malformed, one it forbids must be refused, and the secured routes must refuse a missing key.

The server runs in a thread with its own event loop (schemathesis sends with `requests`, synchronously), over the
seeded database and, where the npm artifacts are at hand, the stored world of real protocol code, so the graph
and family routes have families to show.

What the document leaves unsaid on purpose (kamiyo/api/openapi.py) is filled in for the valid requests the
fuzzer draws: a cursor is replaced by a real one of that list, a watchlist's chains and channels by ones this
server has configured and granted, and a webhook's URL by one on loopback, which this server's [alerts] allow
(any other host would not resolve here). Requests that break the document are sent as drawn.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from kamiyo.api import create_app, keys, start
from kamiyo.api.openapi import document
from kamiyo.api.routes.service import DOCUMENT as SERVED
from kamiyo.api.routes.watchlists import CHAIN_ID
from kamiyo.config import parse
from kamiyo.storage.engine import create_engine
from tests.api.seed import config_text, seed

MAX_EXAMPLES = 25


class ServerThread:
    """The API on 127.0.0.1 (a free port), served from its own thread and event loop."""

    def __init__(self, settings, secret: str) -> None:
        self.settings = settings
        self.url = ""
        self.secret = secret
        self.document: dict = {}
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="api-fuzz-server", daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"the API did not start: {self._error!r}")
        return self

    def __exit__(self, *_exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        engine = create_engine(self.settings.storage)
        try:
            app = create_app(engine, self.settings, read_only=False)
            self.document = app[SERVED]
            runner = await start(app, "127.0.0.1", 0, shutdown_timeout=1.0)
            host, port = runner.addresses[0][:2]
            self.url = f"http://{host}:{port}"
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread, which raises it
            self._error = exc
            self._ready.set()
            await engine.dispose()
            raise
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()
            await engine.dispose()


CHANNELS = ("fuzz-ops", "fuzz-oncall")  # configured below, granted to the fuzzer's key


def _known_chain(entry: str) -> str:
    """CHAIN:ADDRESS with a chain name the server does not follow: the same entry on eth."""
    rest = entry.lstrip()
    where, _sep, what = rest.partition(":")
    if where == "protocol" or CHAIN_ID.match(where):
        return entry
    return f"{entry[:len(entry) - len(rest)]}eth:{what}"


def configured(body: dict) -> None:
    """A valid watchlist body, made to name only the chains (eth) and channels this server has."""
    if isinstance(body.get("channels"), list):
        body["channels"] = [CHANNELS[i % len(CHANNELS)] for i in range(len(body["channels"]))]
    if isinstance(body.get("entries"), list):
        body["entries"] = [_known_chain(e) if isinstance(e, str) else e for e in body["entries"]]


def _world(folder: Path) -> Path:
    """The stored world's database if its code is at hand, else an empty one; seeded either way."""
    from tests.support.stored_world import build

    try:
        db = asyncio.run(build(folder)).db
    except pytest.skip.Exception:
        db = folder / "kamiyo.db"
    asyncio.run(seed(db))
    return db


GRANTED = """
[[channels]]
name = "{name}"
type = "webhook"
url = "http://127.0.0.1:9/{name}"
secret = "not-a-real-secret"
keys = ["{key}"]
"""


async def _fuzzer_key(db: Path) -> tuple:
    engine = create_engine(parse(config_text(db)).storage)
    try:
        async with engine.begin() as conn:
            return await keys.create(conn, "fuzzer", tier="enterprise", scopes=list(keys.SCOPES))
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = _world(tmp_path_factory.mktemp("fuzz"))
    key, secret = asyncio.run(_fuzzer_key(db))
    grants = "".join(GRANTED.format(name=name, key=key.id) for name in CHANNELS)
    with ServerThread(parse(config_text(db, extra=grants)), secret) as running:

        assert running.document == DOCUMENT
        yield running


@pytest.fixture(scope="module")
def cursors(server) -> dict[str, str]:
    """A real next_cursor of each paged list, by path."""
    found = {}
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {server.secret}"
        for path, query in (("/v1/findings", {}), ("/v1/incidents", {}), ("/v1/deployments", {"chain": 1}),
                            ("/v1/families", {})):
            answer = session.get(server.url + path, params={**query, "limit": 1}, timeout=30).json()
            found[path] = answer["next_cursor"]
    assert all(found.values()), found
    return found


DOCUMENT = document()  # the server is checked to serve exactly this
# not schemathesis.pytest.from_fixture: it breaks on pytest 9; the WebSocket is tested over a WebSocket instead
schema = schemathesis.openapi.from_dict(DOCUMENT).exclude(path="/v1/stream")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_the_api_keeps_to_its_document(case, server, cursors):
    meta = case.meta
    if meta is None or meta.generation.mode.is_positive:
        if isinstance(case.query, dict) and "cursor" in case.query and case.path in cursors:
            case.query["cursor"] = cursors[case.path]
        if case.method == "POST" and case.path == "/v1/watchlists" and isinstance(case.body, dict):
            configured(case.body)
        if case.method == "POST" and case.path == "/v1/webhooks" and isinstance(case.body, dict):
            case.body["url"] = "http://127.0.0.1:9/fuzz"

    case.call_and_validate(base_url=server.url, headers={"Authorization": f"Bearer {server.secret}"}, timeout=60)
