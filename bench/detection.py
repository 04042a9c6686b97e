"""Detection and false positives of the transaction analyzers, on the anvil scenarios and ordinary traffic.

Every scenario of tests/support/scenarios.py (and tests/support/heldout.py, when present: attacks and look-alikes
the analyzers were not tuned on) is played on one anvil, then `--ordinary` ordinary transactions (another seed
than the tests use), then the daemon follows the chain from genesis with every analyzer at its defaults and the
scenarios' contracts under `[[watch]]`. Reported: for each attack, the loudest finding on the transactions that
took the funds (and which analyzers fired); for the benign activity, the findings by analyzer and severity per
transaction. A false positive here is any finding on benign activity; the issue's bar is none high or critical.

    .venv/bin/python bench/detection.py [--ordinary 5000] [--no-append]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import append_section, machine, print_table  # noqa: E402
from tests.support.anvil import anvil  # noqa: E402
from tests.support.daemon import follow_scenarios  # noqa: E402
from tests.support.scenarios import ATTACKS, NEGATIVES, ordinary_activity  # noqa: E402

CHAIN_ID = 31337
RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def scenario_sets() -> tuple[dict, dict, bool]:
    try:
        from tests.support.heldout import HELDOUT_ATTACKS, HELDOUT_NEGATIVES
    except ImportError:
        return dict(ATTACKS), dict(NEGATIVES), False
    return {**ATTACKS, **HELDOUT_ATTACKS}, {**NEGATIVES, **HELDOUT_NEGATIVES}, True


def play(ordinary: int, workdir: Path):
    attacks, negatives, heldout = scenario_sets()
    with anvil(CHAIN_ID) as node:
        runs = [play_fn(node) for play_fn in (*attacks.values(), *negatives.values())]
        runs.append(ordinary_activity(node, transactions=ordinary, seed=2026))
        findings, _ = follow_scenarios(node, workdir, runs, timeout=600)
    return runs, findings, heldout, set(attacks)


def within(run, findings):
    return [f for f in findings if run.first_block <= f["block"] <= run.last_block]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ordinary", type=int, default=5000)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    info = machine()
    with tempfile.TemporaryDirectory(prefix="kamiyo-bench-detection-") as tmp:
        runs, findings, heldout, attack_names = play(args.ordinary, Path(tmp))
    rows = []
    for run in (r for r in runs if r.name in attack_names):
        on_key = [f for f in within(run, findings) if f["tx_hash"] in run.key_txs]
        exploit = [f for f in on_key if f["type"] == "exploit"]
        loudest = max(exploit, key=lambda f: RANK[f["severity"]], default=None)
        fired = ", ".join(sorted({f"{f['kind']} {f['severity']}" for f in on_key})) or "nothing"
        verdict = f"detected ({loudest['severity']} exploit)" if loudest and RANK[loudest["severity"]] >= 3 \
            else "MISSED"
        rows.append((f"attack {run.name}", f"{verdict}; on its key transactions: {fired}"))
    benign = [r for r in runs if r.name not in attack_names]
    txs = sum(len(r.txs) for r in benign)
    counts = Counter(f["severity"] for r in benign for f in within(r, findings))
    by_analyzer = Counter((f["kind"], f["severity"]) for r in benign for f in within(r, findings))
    rows.append(("benign transactions (look-alikes with their set-up, and ordinary traffic)",
                 f"{txs:,} in {len(benign)} scenarios"))
    rows.append(("false positives by severity",
                 ", ".join(f"{s} {counts.get(s, 0)}" for s in ("critical", "high", "medium", "low", "info"))))
    rows.append(("false positives by analyzer", ", ".join(f"{k} {s} {n}" for (k, s), n in sorted(by_analyzer.items()))
                 or "none"))
    for run in benign:
        found = Counter((f["kind"], f["severity"]) for f in within(run, findings))
        rows.append((f"benign {run.name} ({len(run.txs):,} txs)",
                     ", ".join(f"{k} {s} ×{n}" for (k, s), n in sorted(found.items())) or "nothing"))
    print_table("Detection", info, rows, code=True)
    if not args.no_append:
        append_section("Detection and false positives", info, rows,
                       f"one anvil, every scenario then {args.ordinary:,} ordinary transactions (seed 2026), the "
                       "daemon from genesis with every analyzer at its defaults and the scenarios' contracts "
                       f"watched{'; held-out scenarios included' if heldout else ''}; "
                       "`.venv/bin/python bench/detection.py`",
                       notes="A false positive is any finding on benign activity, set-up transactions included "
                             "(deploying, funding, approving). The bar is none high or critical.\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
