"""The `kamiyo` command. Subcommands parse arguments and delegate; a user mistake exits 2 with one line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from . import log
from .errors import InputError, KamiyoError

SCHEMA_VERSION = 1


def _read_code_argument(value: str) -> bytes:
    from .analyzers.bytecode.analysis import parse_hex

    if value.startswith("@"):
        path = Path(value[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror if isinstance(exc, OSError) else exc})") from exc
        try:
            return parse_hex(text)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from exc
    return parse_hex(value)


def cmd_analyze(args: argparse.Namespace) -> int:
    from .analyzers.bytecode.analysis import analyze_code
    from .analyzers.bytecode.decode import disassemble

    code = _read_code_argument(args.code)
    result = analyze_code(code).to_json()
    if args.disasm:
        result["disassembly"] = disassemble(code)
    if args.format == "json":
        print(json.dumps(result, indent=2))
        return 0
    meta = result["metadata"]
    rows = [
        ("size", f"{result['size']} bytes"),
        ("kind", result["kind"] + (f" ({result['proxy_standard']})" if result["proxy_standard"] else "")),
        ("implementation", result["implementation"] or "-"),
        ("compiler", f"{meta['compiler'] or '-'} {meta['version'] or ''}".strip()),
        ("metadata trailers", str(len(meta["trailers"]))),
        ("skeleton hash", result["skeleton_hash"]),
        ("instructions", f"{result['instructions']} ({result['reachable_instructions']} reachable)"),
        ("selectors", ", ".join(result["selectors"]) or "-"),
        ("event topics", "\n".join(result["event_topics"]) or "-"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        lines = value.split("\n")
        print(f"{key:<{width}}  {lines[0]}")
        for more in lines[1:]:
            print(f"{'':<{width}}  {more}")
    if args.disasm:
        print()
        print("\n".join(result["disassembly"]))
    return 0


def cmd_families(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .analyzers.bytecode.analysis import ClassTable
    from .analyzers.bytecode.families import build_families
    from .analyzers.bytecode.graph import FORMATS

    for fmt in [args.format] + [f for f, _ in args.export]:
        if fmt not in ("json", "text", "png") and fmt not in FORMATS:
            raise InputError(f"unknown format {fmt!r}; expected one of: json, text, png, {', '.join(FORMATS)}")
    from .analyzers.bytecode.inputs import read_inputs

    skipped: list[str] = []
    items = []
    table = ClassTable()
    with tqdm(desc="analysing", unit=" contracts", delay=1.0, file=sys.stderr) as bar:
        for cid, code in read_inputs([Path(p) for p in args.input], skipped):
            items.append((cid, table.analyze(code)[0]))
            bar.update()
    for line in skipped:
        print(f"kamiyo: {line}", file=sys.stderr)
    started = time.perf_counter()
    with tqdm(desc="linking", unit=" classes", delay=1.0, file=sys.stderr) as bar:

        def advance(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = build_families(items, progress=advance)
    link_seconds = time.perf_counter() - started
    outputs = [(args.format, args.out)] + list(args.export)
    for fmt, target in outputs:
        payload = _render(fmt, result, skipped)
        if target:
            try:
                Path(target).write_bytes(payload)
            except OSError as exc:
                raise InputError(f"{target}: cannot write ({exc.strerror})") from exc
        else:
            sys.stdout.buffer.write(payload)
    log.get("kamiyo.families").info(
        "families.written", contracts=len(items), classes=len(result.classes), links=len(result.links),
        families=len(set(result.family_of.values())), link_seconds=round(link_seconds, 3),
        outputs=[target or "-" for _, target in outputs],
    )
    return 0


def _render(fmt: str, result, skipped: list[str]) -> bytes:
    from .analyzers.bytecode.families import to_graph
    from .analyzers.bytecode.graph import export_graph

    if fmt == "json":
        return json.dumps(families_json(result, skipped), indent=2).encode() + b"\n"
    if fmt == "text":
        return families_text(families_json(result, skipped), result).encode()
    if fmt == "png":
        from .analyzers.bytecode.picture import render_png

        return render_png(to_graph(result))
    return export_graph(to_graph(result), fmt)


def _export_spec(value: str) -> tuple[str, str]:
    fmt, sep, target = value.partition("=")
    if not sep or not target:
        raise argparse.ArgumentTypeError(f"expected FORMAT=FILE, got {value!r}")
    return fmt, target


def families_json(result, skipped: list[str]) -> dict:
    families = result.families()
    kinds: dict[str, int] = {}
    for cls in result.classes.values():
        kinds[cls.analysis.kind] = kinds.get(cls.analysis.kind, 0) + len(cls.members)
    relations: dict[str, int] = {}
    for link in result.links:
        relations[link.relation] = relations.get(link.relation, 0) + 1
    return {
        "families": [{"id": fid, "members": members} for fid, members in families.items()],
        "classes": [{"skeleton_hash": key, "members": c.members} for key, c in result.classes.items()],
        "edges": [
            {"a": l.a, "b": l.b, "relation": l.relation, "similarity": l.similarity, "evidence": l.evidence}
            for l in result.links
        ],
        "stats": {
            "contracts": sum(len(c.members) for c in result.classes.values()),
            "classes": len(result.classes),
            "families": len(families),
            "multi_class_families": sum(1 for n in Counter(result.family_of.values()).values() if n > 1),
            "largest_family": max((len(m) for m in families.values()), default=0),
            "kinds": kinds,
            "edges": relations,
            "delegations": len(result.delegations),
            "skipped": len(skipped),
        },
        "schema_version": SCHEMA_VERSION,
    }


def families_text(summary: dict, result, top: int = 15) -> str:
    """A readable report: totals, then the largest families with their make-up."""
    stats = summary["stats"]
    lines = [
        f"{stats['contracts']} contracts in {stats['classes']} exact-clone classes and {stats['families']} families "
        f"({stats['multi_class_families']} with more than one class)",
        "kinds: " + ", ".join(f"{k} {v}" for k, v in sorted(stats["kinds"].items(), key=lambda kv: -kv[1])),
        "links: " + (", ".join(f"{k} {v}" for k, v in sorted(stats["edges"].items())) or "none"),
        "",
        f"{'family':<34}  {'members':>7}  {'classes':>7}  {'kind':<9}  {'clone':>5}  {'fork':>5}  example member",
    ]
    classes_in: Counter = Counter(result.family_of.values())
    edges_in: dict[str, Counter] = {}
    for link in result.links:
        if result.family_of[link.a] == result.family_of[link.b]:
            edges_in.setdefault(result.family_of[link.a], Counter())[link.relation] += 1
    families = sorted(summary["families"], key=lambda f: (-len(f["members"]), f["id"]))[:top]
    for fam in families:
        kind = result.classes[fam["id"]].analysis.kind
        edges = edges_in.get(fam["id"], Counter())
        lines.append(
            f"{fam['id']:<34}  {len(fam['members']):>7}  {classes_in[fam['id']]:>7}  {kind:<9}  "
            f"{edges['clone']:>5}  {edges['fork']:>5}  {fam['members'][0]}"
        )
    return "\n".join(lines) + "\n"


def cmd_check_config(args: argparse.Namespace) -> int:
    from .config import config_path, load

    settings = load(args.config)
    chains = ", ".join(f"{c.name} ({c.chain_id}, {len(c.rpc)} rpc{', ws' if c.ws else ''})" for c in settings.chains)
    backend = settings.storage.url.split(":", 1)[0]
    print(f"{config_path(args.config)}: ok — storage {backend}; {len(settings.chains)} chain(s){': ' + chains if chains else ''}")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    import asyncio

    from .config import load
    from .storage.engine import create_engine
    from .storage.migrations import current_version, upgrade

    settings = load(args.config)

    async def run() -> tuple[list, int]:
        engine = create_engine(settings.storage)
        try:
            return await upgrade(engine), await current_version(engine)
        finally:
            await engine.dispose()

    applied, version = asyncio.run(run())
    for migration in applied:
        print(f"applied {migration.version}: {migration.description}")
    print(f"schema at version {version}" + ("" if applied else " (already current)"))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from .config import load
    from .daemon.supervisor import run, single_daemon

    settings = load(args.config)
    with single_daemon(settings.storage):
        asyncio.run(run(settings, load_settings=lambda: load(args.config)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kamiyo", description="On-chain security monitoring: forks and clones of EVM contracts.")
    sub = parser.add_subparsers(dest="command", required=True)

    analyze = sub.add_parser("analyze", help="analyse one runtime bytecode")
    analyze.add_argument("code", metavar="HEX_OR_@FILE", help="0x-hex runtime code, or @path to a file holding it")
    analyze.add_argument("--format", choices=("json", "text"), default="json")
    analyze.add_argument("--disasm", action="store_true", help="include a disassembly listing")
    analyze.set_defaults(func=cmd_analyze)

    families = sub.add_parser("families", help="group contracts into clone and fork families")
    families.add_argument("--input", action="append", required=True, metavar="PATH",
                          help=".jsonl/.jsonl.gz of {id, code}, a folder of .hex files, or solc/hardhat artifacts (repeatable)")
    families.add_argument("--format", default="json", help="json | text | node-link | graphml | gexf | csv | dot | png")
    families.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    families.add_argument("--export", action="append", default=[], type=_export_spec, metavar="FORMAT=FILE",
                          help="also write FORMAT to FILE (repeatable), from the same run")
    families.set_defaults(func=cmd_families)

    check = sub.add_parser("check-config", help="validate a configuration file and list every problem")
    check.add_argument("--config", metavar="PATH", help="default: $KAMIYO_CONFIG, then /etc/kamiyo/kamiyo.toml")
    check.set_defaults(func=cmd_check_config)

    db = sub.add_parser("db", help="database maintenance").add_subparsers(dest="db_command", required=True)
    db_upgrade = db.add_parser("upgrade", help="create the schema, or apply pending migrations")
    db_upgrade.add_argument("--config", metavar="PATH", help="default: $KAMIYO_CONFIG, then /etc/kamiyo/kamiyo.toml")
    db_upgrade.set_defaults(func=cmd_db_upgrade)

    from .commands import alerts, analyzers, api, feeds, ops, query, watchlists

    ops.register(sub, db)
    query.register(sub)
    feeds.register(sub)
    analyzers.register(sub)
    alerts.register(sub)
    watchlists.register(sub)
    api.register(sub)

    run = sub.add_parser("run", help="follow the configured chains until SIGTERM or SIGINT")
    run.add_argument("--config", metavar="PATH", help="default: $KAMIYO_CONFIG, then /etc/kamiyo/kamiyo.toml")
    run.set_defaults(func=cmd_run)
    return parser


def allow_evm_depth() -> None:
    """A call trace nests up to the EVM's 1,024 frames, two JSON levels each; Python's default recursion limit
    (1,000) would refuse decoding such a node answer. Frames live on the heap since 3.11, so this is cheap."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log.configure()
    allow_evm_depth()
    try:
        return args.func(args)
    except KamiyoError as exc:
        print(f"kamiyo: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
