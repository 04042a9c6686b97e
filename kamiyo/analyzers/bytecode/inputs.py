"""Reading contract code for `kamiyo families`: JSON-lines corpora, folders of .hex files, compiler artifacts.

Every problem is an InputError naming the file (and line), so the CLI prints one clear line, never a traceback.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from ...errors import InputError
from .analysis import parse_hex

_PLACEHOLDER = re.compile(r"__\$[0-9a-fA-F]{34}\$__|__[A-Za-z0-9_.:/$-]{36}__")


def _jsonl(path: Path) -> Iterator[tuple[str, bytes]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{where}: not a JSON line ({exc.msg})") from exc
                if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not isinstance(row.get("code"), str):
                    raise InputError(f'{where}: expected an object with string "id" and "code"')
                try:
                    yield row["id"], parse_hex(row["code"])
                except InputError as exc:
                    raise InputError(f"{where}: {exc}") from exc
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from exc


def runtime_of_artifact(data: object) -> list[tuple[str | None, str | None]]:
    """(contract name or None, runtime hex or None) for every contract an artifact JSON describes."""
    if not isinstance(data, dict):
        return []
    if isinstance(data.get("contracts"), dict):  # solc --combined-json or standard-json output
        out = []
        for source, entry in data["contracts"].items():
            if isinstance(entry, dict) and ("bin-runtime" in entry or "evm" in entry or "deployedBytecode" in entry):
                out.append((source, _runtime_hex(entry)))
            elif isinstance(entry, dict):
                out.extend((f"{source}:{name}", _runtime_hex(c)) for name, c in entry.items())
        return out
    return [(None, _runtime_hex(data))]


def _runtime_hex(entry: object) -> str | None:
    if not isinstance(entry, dict):
        return None
    for value in (
        entry.get("deployedBytecode"),
        entry.get("bin-runtime"),
        (entry.get("evm") or {}).get("deployedBytecode") if isinstance(entry.get("evm"), dict) else None,
    ):
        if isinstance(value, dict):
            value = value.get("object")
        if isinstance(value, str) and value.removeprefix("0x"):
            return value
    return None


def _artifact(path: Path, ident: str) -> Iterator[tuple[str, bytes]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable JSON artifact ({exc})") from exc
    contracts = runtime_of_artifact(data)
    # "path/File.sol:Contract" -> "File:Contract", unless two sources share a stem: then the path is kept
    short = Counter(f"{Path(n.rsplit(':', 1)[0]).stem}:{n.rsplit(':', 1)[1]}" for n, _ in contracts if n and ":" in n)
    for name, runtime in contracts:
        if name is None:
            cid = ident
        elif ":" in name:
            source, contract = name.rsplit(":", 1)
            cid = f"{Path(source).stem}:{contract}"
            if short[cid] > 1:
                cid = f"{Path(source).with_suffix('')}:{contract}"
        else:
            cid = f"{ident}:{name}"
        if runtime is None:
            yield cid, None  # reported and skipped by the caller
            continue
        try:
            yield cid, parse_hex(_PLACEHOLDER.sub("0" * 40, runtime))
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from exc


def read_inputs(paths: list[Path], skipped: list[str]) -> Iterator[tuple[str, bytes]]:
    """(id, runtime code) from every input path; artifacts without runtime code are appended to `skipped`.

    Ids that come from file names (.hex files, artifacts) can collide across inputs, say two build folders that
    both hold Math.json: a later one with other code is renamed to "<input>/<id>" and noted in `skipped`.
    Ids written in a JSON-lines file are the user's own and are never renamed.
    """
    derived: dict[str, bytes] = {}
    for path in paths:
        for cid, code, named in _read_one(path, skipped):
            if not named:
                if cid in derived and derived[cid] != code:
                    renamed = f"{path}/{cid}"
                    skipped.append(f"{path}: id {cid!r} is taken by other code from an earlier input; renamed {renamed!r}")
                    cid = renamed
                derived.setdefault(cid, code)
            yield cid, code


def _read_one(path: Path, skipped: list[str]) -> Iterator[tuple[str, bytes, bool]]:
    """(id, code, whether the id was given by the user) from one input path."""
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_dir():
        for f in sorted([*path.rglob("*.jsonl"), *path.rglob("*.jsonl.gz")]):
            yield from ((cid, code, True) for cid, code in _jsonl(f))
        hexes = sorted(path.rglob("*.hex"))
        jsons = sorted(f for f in path.rglob("*.json") if not f.name.endswith(".dbg.json"))  # hardhat debug files
        for f in hexes:
            yield f.stem, _hex_file(f), False
        stems = Counter(f.stem for f in jsons)
        for f in jsons:
            ident = f.stem if stems[f.stem] == 1 else str(f.relative_to(path).with_suffix(""))
            yield from ((cid, code, False) for cid, code in _skip_missing(_artifact(f, ident), f, skipped))
    elif path.name.endswith((".jsonl", ".jsonl.gz")):
        yield from ((cid, code, True) for cid, code in _jsonl(path))
    elif path.suffix == ".json":
        yield from ((cid, code, False) for cid, code in _skip_missing(_artifact(path, path.stem), path, skipped))
    elif path.suffix == ".hex":
        yield path.stem, _hex_file(path), False
    else:
        raise InputError(f"{path}: unsupported input (expected .jsonl, .jsonl.gz, .json, .hex or a directory)")


def _hex_file(path: Path) -> bytes:
    try:
        return parse_hex(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from exc
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from exc


def _skip_missing(rows, path: Path, skipped: list[str]):
    for cid, code in rows:
        if code is None:
            skipped.append(f"{path}: {cid} has no runtime bytecode (abstract contract or interface?), skipped")
        else:
            yield cid, code
