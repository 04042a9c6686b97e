"""`make demo`: the daemon on three local anvil chains, finding forks of real protocol code across them.

- chain "mainnet-sim" (chain id 1): Uniswap V2's factory, and pairs created through it;
- chain "bsc-sim" (56): the PancakeSwap fork (factory and pairs), deployed by another team while the daemon runs;
- chain "l2-sim" (10), also while it runs: SushiSwap's pair (recompiled Uniswap V2), an ERC-20 implementation with EIP-1167 clones
  made by a factory, and Uniswap V3's factory, which is unrelated code.
The daemon follows all three over WebSocket into an embedded SQLite database under out/demo/, and reads one feed:
a local DeFiHackLabs checkout whose only entry says one of the Uniswap pairs on mainnet was drained. Alerts go to
two local webhook receivers that check every signature: the security team's channel takes every high finding,
and the Uniswap team's takes only what its watchlist (its pair, and so the pair's fork family) routes to it. The
demo prints the families found across chains, the findings (third parties' copies, and every copy of the drained
code at risk), the incident and the alerts received, and writes the fork graph. Ctrl-C, or the end, stops
everything it started.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.alerts.receiver import Receiver  # noqa: E402
from tests.support import npm_artifacts  # noqa: E402  (the demo reuses the test chain kit)
from tests.support.anvil import anvil  # noqa: E402
from tests.support.defihacklabs import write_checkout  # noqa: E402
from tests.support.scenarios import run_reentrancy_drain  # noqa: E402
from kamiyo.reports.table import render_table  # noqa: E402
from tests.support.contracts import (  # noqa: E402
    clone_factory_creation, create_pair, creation_code, deploy, make_clone, runtime_deployer, word,
)

OUT = REPO / "out" / "demo"
KAMIYO = [sys.executable, "-m", "kamiyo.cli"]
TOKENS = ["0x" + f"{n:02x}" * 20 for n in range(0x11, 0x16)]  # pairs only need distinct addresses


def say(text: str) -> None:
    print(f"\033[1m==>\033[0m {text}" if sys.stdout.isatty() else f"==> {text}", flush=True)


SECRET = "demo-webhook-secret"


class Receivers:
    """Two signature-checking webhook receivers on loopback, served from a thread of their own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="demo-receivers", daemon=True).start()
        self.soc, self.team = (self._call(Receiver(SECRET).start()) for _ in range(2))

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def close(self) -> None:
        for receiver in (self.soc, self.team):
            self._call(receiver.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)


def config(chains: dict[str, object], receivers: Receivers) -> str:
    text = (f'# written by demo/daemon_demo.py\n[storage]\nurl = "sqlite:///{OUT / "kamiyo.db"}"\n\n'
            f'[daemon]\nshutdown_grace = 5\n\n[[feeds]]\nname = "defihacklabs"\ntype = "defihacklabs"\n'
            f'path = "{OUT / "defihacklabs"}"\ninterval = 3600\n\n'
            '[alerts]\nallow_networks = ["127.0.0.0/8"]  # the receivers are on this host\n')
    for name, receiver, extra in (("soc", receivers.soc, 'min_severity = "high"\n'),
                                  ("uniswap-team", receivers.team, "watchlists_only = true\n")):
        text += (f'\n[[channels]]\ntype = "webhook"\nname = "{name}"\nurl = "{receiver.url}"\n'
                 f'secret = "{SECRET}"\n{extra}')
    for name, node in chains.items():
        text += (f'\n[[chains]]\nname = "{name}"\nchain_id = {node.chain_id}\nrpc = ["{node.http}"]\n'
                 f'ws = ["{node.ws}"]\nstart_block = 0\npoll_interval = 1.0\nrequests_per_second = 2000\n')
    return text


def checkpoints() -> dict[int, int]:
    try:
        with sqlite3.connect(OUT / "kamiyo.db") as con:
            return dict(con.execute("SELECT chain_id, number FROM checkpoints"))
    except sqlite3.OperationalError:
        return {}


def wait_caught_up(nodes, daemon, timeout: float = 120) -> None:
    want = {n.chain_id: int(n.rpc("eth_blockNumber"), 16) for n in nodes}
    deadline = time.monotonic() + timeout
    while any(checkpoints().get(c, -1) < b for c, b in want.items()):
        if daemon.poll() is not None:
            raise SystemExit(f"the daemon exited ({daemon.returncode}); see {OUT / 'daemon.log'}")
        if time.monotonic() > deadline:
            raise SystemExit(f"the daemon did not catch up: {checkpoints()} < {want}")
        time.sleep(0.1)


def wait_delivered(timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(OUT / "kamiyo.db") as con:
            if not con.execute("SELECT count(*) FROM deliveries WHERE status = 'pending'").fetchone()[0]:
                return
        time.sleep(0.2)


def wait_findings_settle(quiet: float = 1.0, timeout: float = 20) -> None:
    """The feed's join records its findings a moment after the chains are caught up: wait until none arrive."""
    deadline, last, since = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(OUT / "kamiyo.db") as con:
                count = con.execute("SELECT count(*) FROM findings").fetchone()[0]
        except sqlite3.OperationalError:
            count = -1
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.1)


def deploy_uniswap(node, team: str) -> list[str]:
    factory = deploy(node, team, creation_code("uniswap-v2-factory"), word(team))
    pairs = [create_pair(node, team, factory, TOKENS[0], token) for token in TOKENS[1:4]]
    say(f"mainnet-sim: Uniswap V2 factory {factory} and 3 pairs created through it")
    return pairs


def deploy_pancake(node, team: str) -> None:
    factory = deploy(node, team, creation_code("pancake-v2-factory"), word(team))
    for token in TOKENS[1:3]:
        create_pair(node, team, factory, TOKENS[0], token)
    say(f"bsc-sim: PancakeSwap factory {factory} and 2 pairs, by another team, while the daemon runs")


def deploy_l2(node, team: str, user: str) -> None:
    sushi = deploy(node, team, runtime_deployer(npm_artifacts.sushiswap_pair_runtime().hex()))
    token = deploy(node, team, creation_code("uniswap-v2-erc20"))
    clone_factory = deploy(node, team, clone_factory_creation(token))
    clones = [make_clone(node, user, clone_factory) for _ in range(5)]
    v3 = deploy(node, team, creation_code("uniswap-v3-factory"))
    say(f"l2-sim: SushiSwap pair {sushi}; token {token} with {len(clones)} EIP-1167 clones from factory "
        f"{clone_factory}; Uniswap V3 factory {v3} (unrelated)")


def kamiyo(*args: str) -> str:
    done = subprocess.run([*KAMIYO, *args, "--config", str(OUT / "kamiyo.toml")], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"kamiyo {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def report_alerts(receivers: Receivers) -> None:
    say("alerts received by the two webhooks (each signature checked: HMAC-SHA256 over timestamp and body)")
    rows = [(name, r.event, r.finding["severity"], r.finding["kind"], r.finding["subject"],
             "ok" if r.signed else "BAD")
            for name, receiver in (("soc", receivers.soc), ("uniswap-team", receivers.team))
            for r in receiver.received]
    print(render_table(("channel", "event", "severity", "kind", "subject", "signature"), rows))


def report(uniswap_pair: str) -> None:
    say("fork families the daemon found (kamiyo graph export --format text)")
    print(kamiyo("graph", "export", "--format", "text", "--out", "-"))
    say(f"what Uniswap's pair {uniswap_pair} is related to, on every chain (kamiyo forks)")
    print(kamiyo("forks", f"mainnet-sim:{uniswap_pair}", "--format", "text"))
    say("findings: third parties' copies, every copy of the drained pair's code, and the attack seen on chain "
        "(kamiyo findings)")
    print(kamiyo("findings", "--format", "text"))
    say("incidents: the feed's, and the one the daemon saw itself (kamiyo incidents --format text)")
    print(kamiyo("incidents", "--format", "text"))


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for stale in OUT.glob("kamiyo.db*"):
        stale.unlink()
    shutil.rmtree(OUT / "defihacklabs", ignore_errors=True)
    say("fetching protocol artifacts from the npm registry (cached after the first run)")
    for name in ("uniswap-v2-factory", "pancake-v2-factory", "uniswap-v2-erc20", "uniswap-v3-factory"):
        npm_artifacts.artifact_path(name)
    npm_artifacts.sushiswap_pair_runtime()
    with ExitStack() as stack:
        nodes = {name: stack.enter_context(anvil(chain_id))
                 for name, chain_id in (("mainnet-sim", 1), ("bsc-sim", 56), ("l2-sim", 10))}
        say("three anvil chains: " + ", ".join(f"{n} ({node.chain_id}, port {node.port})" for n, node in nodes.items()))
        accounts = nodes["mainnet-sim"].rpc("eth_accounts")
        uniswap_team, pancake_team, l2_team, user = (a.lower() for a in accounts[:4])
        uniswap_pair, drained = deploy_uniswap(nodes["mainnet-sim"], uniswap_team)[:2]
        write_checkout(OUT / "defihacklabs", drained, int(nodes["mainnet-sim"].rpc("eth_blockNumber"), 16),
                       name="UniswapPairDemo")
        say(f"feed: a DeFiHackLabs entry says the Uniswap pair {drained} on mainnet was drained")
        receivers = Receivers()
        stack.callback(receivers.close)
        (OUT / "kamiyo.toml").write_text(config(nodes, receivers))
        kamiyo("watchlist", "add", "uniswap pairs", "--entry", f"mainnet-sim:{uniswap_pair}",
               "--channel", "uniswap-team")
        say(f"watchlist: the Uniswap team watches its pair {uniswap_pair}; its fork family comes with it")
        log = stack.enter_context(open(OUT / "daemon.log", "w"))
        daemon = subprocess.Popen([*KAMIYO, "run", "--config", str(OUT / "kamiyo.toml")], stderr=log,
                                  stdout=subprocess.DEVNULL)
        try:
            say(f"kamiyo run: following the three chains (JSON log lines in {OUT / 'daemon.log'})")
            wait_caught_up(nodes.values(), daemon)
            deploy_pancake(nodes["bsc-sim"], pancake_team)
            deploy_l2(nodes["l2-sim"], l2_team, user)
            say("an attack while the daemon watches: a vault on mainnet-sim drained by re-entrancy")
            attack = run_reentrancy_drain(nodes["mainnet-sim"])
            say(f"  attack transaction {attack.key_txs[0]} took the funds of {attack.roles['victim']}")
            wait_caught_up(nodes.values(), daemon)
            wait_findings_settle()
            wait_delivered()
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
        say(f"daemon stopped (exit {daemon.returncode})")
        report_alerts(receivers)
    report(uniswap_pair)
    written = (("json", "forks.json"), ("graphml", "forks.graphml"), ("dot", "forks.dot"), ("png", "forks.png"))
    for fmt, name in written:
        kamiyo("graph", "export", "--format", fmt, "--out", str(OUT / name))
    say(f"wrote the fork graph to {', '.join(str(OUT / n) for _, n in written)} (json is networkx node-link; "
        f"forks.png is a picture); the database is {OUT / 'kamiyo.db'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # everything started was stopped on the way out
        sys.exit(130)
