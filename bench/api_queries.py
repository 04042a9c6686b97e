"""Findings queries under load: `kamiyo api` (read-only, its own process) over 24,000 findings, wrk (Debian's
package) with 1,000 concurrent connections and an enterprise key (so quotas are not what is measured):

  /healthz                the server's ceiling without the database (the baseline of the ratios)
  /v1/findings?limit=50   one hot URL
  mix                     a wrk Lua script rotating through ~150 URLs: filters by chain, kind, min_severity, since
                          and status, several limits, and real next_cursor values fetched before the run (deep
                          pages too), so no single answer serves the load

The database is bench/api.py's (`seed`: 20,000 large-outflow findings on chain 1) plus 4,000 findings on four
other chains and of four other kinds, interleaved in time, so that chain and kind filters select something.
wrk and the server share the machine's cores.

`--baseline DIR` also measures a server run from another checkout of the code at the same schema version (e.g.
`git archive HEAD | tar -x -C /tmp/base`, and the compiled extensions copied beside their sources) over the same
database in the same run, the two alternating target by target, and reports the ratio. `--workers N` also
measures this code as `kamiyo api --workers N` (N processes on the one port) beside one process.

    .venv/bin/python bench/api_queries.py [--seconds 15] [--baseline DIR] [--workers N] [--no-append]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import aiohttp
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api import finding, seed, start_server  # noqa: E402
from bench.common import REPO, append_section, machine, print_table  # noqa: E402
from kamiyo.findings import Severity  # noqa: E402
from kamiyo.storage.findings import record_finding  # noqa: E402
from kamiyo.storage.schema import findings  # noqa: E402

SEED = 20_000
OTHERS = 4_000
CHAINS = (56, 137, 42161, 10)
KINDS = ("fork-detected", "flash-loan", "price-manipulation", "admin-change")
CONNECTIONS = 1_000
HOT = "/v1/findings?limit=50"


async def seed_mix(db: Path) -> tuple[str, object]:
    """bench/api.py's database and key, and OTHERS findings of other chains and kinds, spread over the same
    moments as the first SEED (so every filter's pages mix with theirs)."""
    secret, engine = await seed(db, SEED)
    async with engine.connect() as conn:
        first, last = (await conn.execute(select(func.min(findings.c.created_at),
                                                 func.max(findings.c.created_at)))).one()
    span = last - first
    async with engine.begin() as conn:
        for n in range(OTHERS):
            base = finding(n, "mix")
            labels = [{"entity": base.subject, "label": KINDS[n // 4 % 4]}]
            await record_finding(conn, replace(base, chain_id=CHAINS[n % 4], kind=KINDS[n // 4 % 4],
                                               evidence={**base.evidence, "labels": labels},
                                               created_at=first + span * (n / OTHERS)))
    return secret, engine


async def walk_cursors(session, base: str, query: str, pages: int) -> list[str]:
    """The next_cursor of each of the first `pages` pages of `query` (fewer if the list ends first)."""
    cursors, cursor = [], None
    for _ in range(pages):
        url = base + query + (f"&cursor={cursor}" if cursor else "")
        async with session.get(url) as response:
            response.raise_for_status()
            cursor = (await response.json())["next_cursor"]
        if cursor is None:
            break
        cursors.append(cursor)
    return cursors


async def mix_paths(base: str, secret: str, moments: list[str]) -> list[str]:
    """The URLs the Lua script rotates through; each is checked to answer 200 before the run."""
    paths = [HOT, "/v1/findings?limit=100", "/v1/findings?limit=20", "/v1/findings?limit=50&status=all"]
    for chain in (1, *CHAINS):
        paths += [f"/v1/findings?chain={chain}&limit=50", f"/v1/findings?chain={chain}&min_severity=high&limit=20"]
    for kind in ("large-outflow", *KINDS):
        paths += [f"/v1/findings?kind={kind}&limit=50", f"/v1/findings?kind={kind}&chain={CHAINS[0]}&limit=50"]
    for severity in (Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL):
        paths.append(f"/v1/findings?min_severity={severity.value}&limit=50")
    for moment in moments:
        paths += [f"/v1/findings?since={moment}&limit=50", f"/v1/findings?since={moment}&min_severity=critical"
                  "&limit=50", f"/v1/findings?since={moment}&kind={KINDS[1]}&limit=20"]
    headers = {"Authorization": f"Bearer {secret}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        cursors = await walk_cursors(session, base, HOT, 480)  # through the whole list: deep pages too
        paths += [f"{HOT}&cursor={c}" for c in cursors[::8]]
        for query in (f"/v1/findings?chain={CHAINS[1]}&limit=50", "/v1/findings?min_severity=high&limit=100",
                      f"/v1/findings?kind={KINDS[2]}&limit=20"):
            paths += [f"{query}&cursor={c}" for c in (await walk_cursors(session, base, query, 40))[::4]]
        for path in paths:
            async with session.get(base + path) as response:
                if response.status != 200:
                    raise SystemExit(f"{path}: {response.status} {await response.text()}")
    return paths


def lua_script(paths: list[str], folder: Path) -> Path:
    """A wrk script sending `paths` in turn; each wrk thread starts at another point of the list."""
    script = folder / "mix.lua"
    quoted = ",\n".join(f'  "{p}"' for p in paths)
    script.write_text(f"""local paths = {{
{quoted}
}}
local threads = 0
function setup(thread)
  thread:set("offset", threads * 37)
  threads = threads + 1
end
local i = 0
function request()
  i = i + 1
  return wrk.format(nil, paths[(offset + i) % #paths + 1])
end
""")
    return script


_SCALE = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(url: str, secret: str, seconds: float, script: Path | None = None) -> dict:
    """wrk with 2 threads, CONNECTIONS connections, a 10 s timeout and the key as a bearer; `script` a Lua file."""
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{int(seconds)}s", "--latency", "--timeout", "10s",
               "-H", f"Authorization: Bearer {secret}"]
    command += ["-s", str(script)] if script is not None else []
    text = subprocess.run([*command, url], capture_output=True, text=True).stdout

    def quantile(label: str) -> float | None:
        found = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)\b", text)
        return float(found[1]) * _SCALE[found[2]] if found else None

    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(r"Socket errors: (.*)", text)
    return {"rate": float(rate[1]) if rate else 0.0, "p50_ms": quantile("50"), "p99_ms": quantile("99"),
            "non_2xx": int(errors[1]) if errors else 0, "socket_errors": socket_errors[1] if socket_errors else "none"}


def describe(r: dict) -> str:
    def ms(value: float | None) -> str:
        return "?" if value is None else f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"

    return (f"{r['rate']:,.0f} requests/s, p50 {ms(r['p50_ms'])}, p99 {ms(r['p99_ms'])}; non-2xx {r['non_2xx']}; "
            f"socket errors {r['socket_errors']}")


async def measure(servers: dict, secret: str, moments: list[str], work: Path, seconds: float) -> dict:
    """{(target, server label): wrk's figures}, the servers alternating target by target, so that a change of
    load on the machine hits both alike."""
    paths = await mix_paths(servers[""][1], secret, moments)
    script = lua_script(paths, work)
    targets = (("/healthz (baseline: no database)", "/healthz", None), (HOT, HOT, None),
               (f"mix of {len(paths)} URLs (filters, cursors)", HOT, script))
    results = {}
    for name, path, lua in targets:
        for label, (_server, base) in servers.items():
            results[(name, label)] = await asyncio.to_thread(run_wrk, base + path, secret, seconds, lua)
    return results


BASELINE = " [baseline]"


def table(results: dict, labels: list[str], seconds: float) -> list[tuple[str, str]]:
    names = list(dict.fromkeys(name for name, _label in results))
    rows = [(f"wrk, {CONNECTIONS:,} connections, {seconds:.0f} s: {name}{label}", describe(results[(name, label)]))
            for name in names for label in labels]
    for name in names[1:]:
        for label in labels:
            ratio = results[(name, label)]["rate"] / max(results[(names[0], label)]["rate"], 1e-9)
            rows.append((f"{name} / healthz{label}", f"{ratio:.3f}×"))
        one = results[(name, labels[0])]["rate"]  # one process of this code
        for label in labels[1:]:
            other = results[(name, label)]["rate"]
            if label == BASELINE:
                rows.append((f"{name}: this code / baseline", f"{one / max(other, 1e-9):.2f}× requests/s"))
            else:
                rows.append((f"{name}: {label.strip(' []')} / one process", f"{other / max(one, 1e-9):.2f}× requests/s"))
    return rows


async def main_async(args) -> list[tuple[str, str]]:
    codes = {"": (REPO, 1)} | ({f" [--workers {args.workers}]": (REPO, args.workers)} if args.workers > 1 else {}) \
        | ({BASELINE: (args.baseline, 1)} if args.baseline else {})
    with tempfile.TemporaryDirectory(prefix="kamiyo-bench-queries-") as tmp:
        work = Path(tmp)
        db = work / "api.db"
        secret, engine = await seed_mix(db)
        async with engine.connect() as conn:
            times = list((await conn.execute(select(findings.c.created_at).order_by(findings.c.created_at)))
                         .scalars())
        await engine.dispose()
        # since= at each tenth of the findings (a microsecond early, so the one at the mark is on the page)
        moments = [(times[len(times) * k // 10] - timedelta(microseconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                   for k in range(1, 10)]
        servers = {}
        try:
            for label, (code, workers) in codes.items():
                servers[label] = await start_server(code, db, work, workers)
            results = await measure(servers, secret, moments, work, args.seconds)
        finally:
            for server, _base in servers.values():
                server.terminate()
                server.wait(timeout=20)
    return table(results, list(codes), args.seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--baseline", type=Path, metavar="DIR", help="another checkout to measure beside this one")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="also measure `kamiyo api --workers N` (this code) beside one process")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (apt-get install wrk)")
    if args.baseline is not None and not (args.baseline / "kamiyo" / "cli.py").is_file():
        parser.error(f"--baseline {args.baseline}: no kamiyo/cli.py there")
    info = machine()
    rows = asyncio.run(main_async(args))
    print_table("API queries", info, rows, code=True)
    if not args.no_append:
        baseline = (f" --baseline {args.baseline}" if args.baseline else "") + (
            f" --workers {args.workers}" if args.workers > 1 else "")
        append_section("API queries", info, rows, "SQLite in a temp dir; `kamiyo api` as a process of its own; "
                       f"`.venv/bin/python bench/api_queries.py --seconds {args.seconds:.0f}{baseline}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
