"""Real anvil nodes for integration tests: started on free loopback ports, with chosen chain ids, stopped after.

The binary comes from the npm registry (`@foundry-rs/anvil` in package.json; `make test` runs `npm ci`). The
platform package ships the executable itself, so it is started directly: no node wrapper between the test and
the process it has to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class AnvilUnavailable(RuntimeError):
    """No anvil binary here (npm ci has not run): integration tests skip with this reason."""


def anvil_binary() -> Path:
    for candidate in sorted((REPO / "node_modules" / "@foundry-rs").glob("anvil-*/bin/anvil")):
        if os.access(candidate, os.X_OK):
            return candidate
    raise AnvilUnavailable("no anvil binary under node_modules/@foundry-rs (run `npm ci`)")


def require_anvil() -> Path:
    """The anvil binary, or a pytest skip naming why there is none: the one check every integration test makes."""
    import pytest

    try:
        return anvil_binary()
    except AnvilUnavailable as exc:
        pytest.skip(str(exc))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AnvilNode:
    chain_id: int
    port: int
    process: subprocess.Popen

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def rpc(self, method: str, params: list | None = None):
        """A synchronous JSON-RPC call, for test set-up (mining, snapshots), never for the code under test."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
        request = urllib.request.Request(self.http, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.load(response)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]


def _wait_ready(node: AnvilNode, deadline: float) -> None:
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            raise RuntimeError(f"anvil exited with {node.process.returncode}: {node.process.stdout.read()[-2000:]}")
        with contextlib.suppress(OSError):
            if int(node.rpc("eth_chainId"), 16) == node.chain_id:
                return
        time.sleep(0.05)
    raise RuntimeError(f"anvil on port {node.port} did not answer within the start-up timeout")


@contextlib.contextmanager
def anvil(chain_id: int, block_time: float | None = None, extra: list[str] | None = None) -> Iterator[AnvilNode]:
    """A running anvil. Its persisted states go to a private folder removed afterwards: by default anvil writes
    them under ~/.foundry/anvil/tmp and leaves them there when stopped, which fills a disk over many runs."""
    binary = anvil_binary()
    cache = tempfile.mkdtemp(prefix="kamiyo-anvil-")
    try:
        with _started(binary, chain_id, block_time, extra, cache) as node:
            yield node
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def anvil_fixture(chain_id: int):
    """A pytest fixture giving each test its own fresh anvil with `chain_id`, or skipping it when there is no
    anvil binary. A test module binds it by name: `node = anvil_fixture(31337)`."""
    import pytest

    @pytest.fixture
    def node() -> Iterator[AnvilNode]:
        require_anvil()
        with anvil(chain_id) as running:
            yield running

    return node


@contextlib.contextmanager
def _started(binary: Path, chain_id: int, block_time: float | None, extra: list[str] | None,
             cache: str) -> Iterator[AnvilNode]:
    for attempt in range(3):  # a free port can be taken between probing and binding: try another
        port = free_port()
        args = [str(binary), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(chain_id), "--silent",
                "--cache-path", cache]
        if block_time is not None:
            args += ["--block-time", str(block_time)]
        process = subprocess.Popen(args + (extra or []), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        node = AnvilNode(chain_id, port, process)
        try:
            _wait_ready(node, time.monotonic() + 20)
            break
        except RuntimeError:
            process.kill()
            process.wait()
            if attempt == 2:
                raise
    try:
        yield node
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Poll an async predicate until it returns something truthy (tests only; the product never polls flags)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if result := await predicate():
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)
