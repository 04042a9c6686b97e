"""Fingerprinting throughput: Kamiyo's analyse → sketch → index pipeline against the obvious way to do it.

Three measurements over every contract in the corpus (or a sample of it, for the slow baseline):
- baseline: evmdasm disassembly, opcode-name 5-grams, datasketch MinHash(256) per shingle, MinHashLSH insert;
- product, one core, cold: a fresh interpreter that loads the corpus, then times parse → `ClassTable.analyze`
  (every contract identified; a new exact-clone class analysed and sketched) → `SimilarityIndex.links` +
  `insert` per new class, in input order;
- product, two processes: the same analysis in a pool of two, the index fed in input order in the parent.

It prints a table and appends a dated section to BENCHMARKS.md. It is not a test and asserts nothing; it must
not change anything but BENCHMARKS.md.

    .venv/bin/python bench/fingerprint.py [--data DIR] [--baseline-sample N] [--no-append]
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import resource
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo, for bench.common

from bench.common import DEFAULT_DATA, append_section, machine, print_table  # noqa: E402

TARGET_RATE = 3000  # contracts/s, one core, end to end
TARGET_RATIO = 30  # × the baseline's contracts/s
NGRAM, NUM_PERM = 5, 256
CHUNK = 64  # contracts per pool task: large enough to amortise pickling, small enough to keep both busy
PROGRESS_EVERY = 256  # the progress bar is updated outside the timed region, this often

HEADER = """\
# Benchmarks

Figures recorded by the scripts in `bench/`, newest last. Each section names the date, the machine and the
Python it ran on; compare figures only within one section, since every run measures its own baseline.

Run with `make bench` (which runs `.venv/bin/python bench/fingerprint.py`). Flags: `--data DIR` (default
`../shared/data/bytecode`), `--baseline-sample N` (contracts the slow baseline sees), `--no-append`.
"""


# ---------------------------------------------------------------------------------------------- corpus


def load_corpus(data: Path) -> list[tuple[str, str]]:
    """(id, hex code) for every line of every *.jsonl.gz under `data`, files in name order."""
    rows: list[tuple[str, str]] = []
    for path in sorted(data.glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as fh:
            rows.extend((rec["id"], rec["code"]) for rec in map(json.loads, fh))
    return rows


def rss_mib() -> float:
    """Current resident set size (VmRSS), MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -------------------------------------------------------------------------------------------- baseline


def baseline(rows: list[tuple[str, str]], sample: int) -> dict:
    """The obvious pipeline on every Nth contract; returns its per-contract rate and where its time went."""
    import evmdasm
    from datasketch import MinHash, MinHashLSH

    # evmdasm logs every PUSH truncated by the end of code (metadata trailers end mid-PUSH all the time).
    logging.getLogger("evmdasm").setLevel(logging.CRITICAL)
    step = max(1, len(rows) // max(1, sample))
    picked = rows[::step][:sample]
    lsh = MinHashLSH(threshold=0.5, num_perm=NUM_PERM)
    disasm_s = sketch_s = insert_s = 0.0
    for i, (_, code) in enumerate(tqdm(picked, desc="baseline", unit="contract", file=sys.stderr)):
        t0 = time.perf_counter()
        names = [ins.name for ins in evmdasm.EvmBytecode(code).disassemble()]
        t1 = time.perf_counter()
        m = MinHash(num_perm=NUM_PERM)
        for j in range(len(names) - NGRAM + 1):
            m.update(" ".join(names[j : j + NGRAM]).encode())
        t2 = time.perf_counter()
        lsh.insert(str(i), m)
        t3 = time.perf_counter()
        disasm_s, sketch_s, insert_s = disasm_s + t1 - t0, sketch_s + t2 - t1, insert_s + t3 - t2
    total = disasm_s + sketch_s + insert_s
    # The baseline sketches every contract; what it covered, in the product's terms, is the sample's
    # exact-clone classes (counted outside the timed loop).
    from kamiyo.analyzers.bytecode.analysis import identify, parse_hex

    classes = len({identify(parse_hex(code)).skeleton_hash for _, code in picked})
    return {
        "contracts": len(picked),
        "classes": classes,
        "step": step,
        "seconds": total,
        "rate": len(picked) / total,
        "disasm_s": disasm_s,
        "sketch_s": sketch_s,
        "insert_s": insert_s,
        "kib_per_contract": sum(len(code) - 2 for _, code in picked) / 2 / len(picked) / 1024,
    }


# ---------------------------------------------------------------------------------------------- worker
# Runs in a fresh interpreter (see `run_worker`), so no caches are warm and the peak RSS is its own.


def _index_memory(profiles: list) -> dict:
    """Build the index a second time under tracemalloc; what it still holds afterwards is its cost.

    Each profile is rebuilt with a copy of its sketch inside the traced region, since in the daemon the
    analysis is dropped and the profile (sketch included) lives on only in the index.
    """
    import tracemalloc

    from kamiyo.analyzers.bytecode.index import SimilarityIndex
    from kamiyo.analyzers.bytecode.similarity import ClassProfile

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    index = SimilarityIndex()
    for p in profiles:
        index.insert(ClassProfile.of(p.key, p.sketch.copy(), p.selectors, p.topics))
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return {"index_bytes": held, "bytes_per_class": held / max(1, len(index))}


class _Feeder:
    """The parent's half of the pipeline: new classes are queried against the index, then inserted."""

    def __init__(self) -> None:
        from kamiyo.analyzers.bytecode.index import SimilarityIndex
        from kamiyo.analyzers.bytecode.similarity import ClassProfile

        self.of = ClassProfile.of
        self.index = SimilarityIndex()
        self.seen: set[str] = set()
        self.profiles: list = []
        self.links = {"clone": 0, "fork": 0}
        self.no_sketch = 0
        self.query_s = self.insert_s = 0.0

    def feed(self, key: str, sketch, selectors, topics) -> None:
        if key in self.seen:
            return
        self.seen.add(key)
        if sketch is None:
            self.no_sketch += 1
            return
        profile = self.of(key, sketch, selectors, topics)
        t0 = time.perf_counter()
        for link in self.index.links(profile):
            self.links[link.relation] += 1
        t1 = time.perf_counter()
        self.index.insert(profile)
        self.insert_s += time.perf_counter() - t1
        self.query_s += t1 - t0
        self.profiles.append(profile)


def worker_serial(rows: list[tuple[str, str]]) -> dict:
    from kamiyo.analyzers.bytecode.analysis import ClassTable, parse_hex

    feeder = _Feeder()
    table = ClassTable()
    rss_before = rss_mib()
    analysis_s = index_s = 0.0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    bar = tqdm(total=len(rows), desc="product, 1 core", unit="contract", file=sys.stderr)
    for i, (_, code) in enumerate(rows):
        t0 = time.perf_counter()
        a, _new = table.analyze(parse_hex(code))
        t1 = time.perf_counter()
        feeder.feed(a.skeleton_hash, a.sketch, a.selectors, a.event_topics)
        t2 = time.perf_counter()
        analysis_s, index_s = analysis_s + t1 - t0, index_s + t2 - t1
        if i % PROGRESS_EVERY == PROGRESS_EVERY - 1:
            bar.update(PROGRESS_EVERY)
    bar.update(len(rows) - bar.n)
    bar.close()
    # CPU time well below wall time means the worker was waiting for a core: the machine was not idle.
    cpu_share = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    rss_after = rss_mib()
    total = analysis_s + index_s
    out = {
        "contracts": len(rows),
        "seconds": total,
        "analysis_s": analysis_s,
        "index_s": index_s,
        "cpu_share": cpu_share,
        "classes": len(feeder.seen),
        "indexed": len(feeder.index),
        "no_sketch": feeder.no_sketch,
        "query_s": feeder.query_s,
        "insert_s": feeder.insert_s,
        "links": feeder.links,
        "rss_before_mib": rss_before,
        "rss_after_mib": rss_after,
        "peak_rss_mib": peak_rss_mib(),
    }
    out.update(_index_memory(feeder.profiles))
    return out


_TABLE = None  # one ClassTable per pool process, kept across chunks


def _analyze_chunk(codes: list[str]) -> list[tuple]:
    """Pool task: only what the index needs crosses back, to keep pickling off the critical path."""
    global _TABLE
    from kamiyo.analyzers.bytecode.analysis import ClassTable, parse_hex

    if _TABLE is None:
        _TABLE = ClassTable()
    out = []
    for code in codes:
        a, _new = _TABLE.analyze(parse_hex(code))
        out.append((a.skeleton_hash, a.sketch, a.selectors, a.event_topics))
    return out


def worker_parallel(rows: list[tuple[str, str]], processes: int) -> dict:
    from concurrent.futures import ProcessPoolExecutor

    feeder = _Feeder()
    chunks = [[code for _, code in rows[i : i + CHUNK]] for i in range(0, len(rows), CHUNK)]
    bar = tqdm(total=len(rows), desc=f"product, {processes} processes", unit="contract", file=sys.stderr)
    index_s = 0.0
    t0 = time.perf_counter()  # end to end: pool start-up, pickling and the in-order index feed included
    with ProcessPoolExecutor(processes) as pool:
        for results in pool.map(_analyze_chunk, chunks):
            t1 = time.perf_counter()
            for item in results:
                feeder.feed(*item)
            index_s += time.perf_counter() - t1
            bar.update(len(results))
    seconds = time.perf_counter() - t0
    bar.close()
    return {
        "contracts": len(rows),
        "processes": processes,
        "seconds": seconds,
        "index_s": index_s,
        "classes": len(feeder.seen),
        "indexed": len(feeder.index),
        "links": feeder.links,
        "peak_rss_mib": peak_rss_mib(),
    }


def worker_main(data: Path, mode: str, processes: int) -> None:
    rows = load_corpus(data)
    result = worker_serial(rows) if mode == "serial" else worker_parallel(rows, processes)
    json.dump(result, sys.stdout)


def run_worker(data: Path, mode: str, processes: int = 1) -> dict:
    cmd = [sys.executable, __file__, "--worker", mode, "--data", str(data), "--processes", str(processes)]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # stderr (the progress bar) passes through
    if done.returncode != 0:
        sys.exit(f"bench worker ({mode}) failed with exit status {done.returncode}")
    return json.loads(done.stdout)


# --------------------------------------------------------------------------------------------- report


def summarize(base: dict, serial: dict, parallel: dict) -> list[tuple[str, str]]:
    rate = serial["contracts"] / serial["seconds"]
    ratio = rate / base["rate"]
    lk = serial["links"]
    return [
        ("baseline (evmdasm + datasketch MinHash + LSH)",
         f"{base['rate']:,.1f} contracts/s (sample of {base['contracts']}, step {base['step']}; "
         f"disassembly {base['disasm_s'] / base['seconds']:.0%}, MinHash {base['sketch_s'] / base['seconds']:.0%}, "
         f"LSH insert {base['insert_s'] / base['seconds']:.0%})"),
        ("product, 1 core, cold", f"{rate:,.0f} contracts/s, median of {serial['repeat']} cold runs "
         f"(range {serial['range'][0]:,.0f}–{serial['range'][1]:,.0f}; {serial['contracts']:,} contracts in "
         f"{serial['seconds']:.2f} s; worker on a core {serial['cpu_share']:.0%} of the wall time)"),
        ("unique classes/s", f"{serial['classes'] / serial['seconds']:,.0f} ({serial['classes']:,} skeleton hashes; "
         f"{serial['indexed']:,} indexed, {serial['no_sketch']} without a sketch)"),
        ("baseline unique classes/s", f"{base['classes'] / base['seconds']:,.1f} ({base['classes']} classes in the sample)"),
        ("ratio product / baseline", f"{ratio:,.0f}× contracts/s, "
         f"{(serial['classes'] / serial['seconds']) / (base['classes'] / base['seconds']):,.0f}× unique classes/s"),
        ("time split", f"analysis {serial['analysis_s'] / serial['seconds']:.0%} ({serial['analysis_s']:.2f} s), "
         f"index {serial['index_s'] / serial['seconds']:.0%} ({serial['index_s']:.2f} s: links query "
         f"{serial['query_s']:.2f} s, insert {serial['insert_s']:.2f} s)"),
        (f"product, {parallel['processes']} processes, end to end",
         f"{parallel['contracts'] / parallel['seconds']:,.0f} contracts/s ({parallel['seconds']:.2f} s; "
         f"parent spent {parallel['index_s']:.2f} s feeding the index)"),
        ("peak RSS (1-core worker)", f"{serial['peak_rss_mib']:,.0f} MiB (corpus loaded: {serial['rss_before_mib']:,.0f} MiB, "
         f"after the timed run: {serial['rss_after_mib']:,.0f} MiB)"),
        ("bytes per indexed class", f"{serial['bytes_per_class']:,.0f} B (tracemalloc, index rebuilt after timing; "
         f"{serial['index_bytes'] / 2**20:,.1f} MiB for {serial['indexed']:,} classes)"),
        ("links found (1-core run)", f"{lk['clone']:,} clone, {lk['fork']:,} fork"),
        (f"target ≥ {TARGET_RATE:,} contracts/s, 1 core", "met" if rate >= TARGET_RATE else "NOT met"),
        (f"target ≥ {TARGET_RATIO}× baseline", "met" if ratio >= TARGET_RATIO else "NOT met"),
    ]


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="directory of *.jsonl.gz bytecode files")
    ap.add_argument("--baseline-sample", type=int, default=300, metavar="N", help="contracts the baseline sees")
    ap.add_argument("--no-append", action="store_true", help="print only; leave BENCHMARKS.md alone")
    ap.add_argument("--repeat", type=int, default=3, metavar="N", help="cold one-core runs; the median is reported")
    ap.add_argument("--worker", choices=("serial", "parallel"), help=argparse.SUPPRESS)
    ap.add_argument("--processes", type=int, default=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    data = args.data.resolve()
    if not data.is_dir() or not any(data.glob("*.jsonl.gz")):
        print(f"fingerprint bench: no *.jsonl.gz bytecode files in {data} (pass --data DIR)", file=sys.stderr)
        return 2
    if args.worker:
        worker_main(data, args.worker, args.processes)
        return 0
    if args.baseline_sample < 1 or args.repeat < 1:
        print("fingerprint bench: --baseline-sample and --repeat must be at least 1", file=sys.stderr)
        return 2

    info = machine()
    base = baseline(load_corpus(data), args.baseline_sample)
    # Each cold run is a fresh process; this VM's speed drifts by several percent between runs, so the median
    # of a few runs is reported, with their range.
    runs = sorted((run_worker(data, "serial") for _ in range(args.repeat)), key=lambda r: r["seconds"])
    serial = runs[len(runs) // 2]
    serial["range"] = [r["contracts"] / r["seconds"] for r in (runs[-1], runs[0])]
    serial["repeat"] = len(runs)
    parallel = run_worker(data, "parallel", args.processes)
    lines = summarize(base, serial, parallel)
    print_table("fingerprint", info, lines)
    if not args.no_append:
        append_section("fingerprint", info, lines, f"corpus `{data.name}/*.jsonl.gz`.", header=HEADER)
    return 0


if __name__ == "__main__":
    sys.exit(main())
