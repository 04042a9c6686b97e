"""Reading contract code for `kamiyo families`: JSON-lines corpora, folders of .hex files, compiler artifacts.

Every problem is an InputError naming the file (and line), so the CLI prints one clear line, never a traceback.
Contract ids must be printable text: they end up in GraphML, DOT and terminal tables.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from ...errors import InputError
from .analysis import parse_hex

_PLACEHOLDER = re.compile(r"__\$[0-9a-fA-F]{34}\$__|__[A-Za-z0-9_.:/$-]{36}__")
_READ_ERRORS = (OSError, EOFError, UnicodeDecodeError, zlib.error)  # gzip.BadGzipFile is an OSError


def _checked_id(cid: str, where: str) -> str:
    if not cid or not cid.isprintable() or any(0xD800 <= ord(c) <= 0xDFFF for c in cid):
        raise InputError(f"{where}: contract id {cid!r} must be non-empty printable text")
    return cid


def _json(text: str) -> object:
    """json.loads, with every way hostile text fails it turned into ValueError."""
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc  # JSONDecodeError and the int digit limit are ValueErrors


def _jsonl(path: Path) -> Iterator[tuple[str, bytes, str]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    row = _json(line)
                except ValueError as exc:
                    raise InputError(f"{where}: not a JSON line ({getattr(exc, 'msg', exc)})") from exc
                if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not isinstance(row.get("code"), str):
                    raise InputError(f'{where}: expected an object with string "id" and "code"')
                try:
                    yield _checked_id(row["id"], where), parse_hex(row["code"]), where
                except InputError as exc:
                    raise InputError(exc.message if exc.message.startswith(where) else f"{where}: {exc}") from exc
    except _READ_ERRORS as exc:
        raise InputError(f"{path}: cannot read ({exc})") from exc


def runtime_of_artifact(data: object) -> list[tuple[str | None, str | None]] | None:
    """(contract name or None, runtime hex or None) for every contract an artifact JSON describes;
    None when the JSON is not a compiler artifact at all."""
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("contracts"), dict):  # solc --combined-json or standard-json output
        out = []
        for source, entry in data["contracts"].items():
            if isinstance(entry, dict) and ("bin-runtime" in entry or "evm" in entry or "deployedBytecode" in entry):
                out.append((source, _runtime_hex(entry)))
            elif isinstance(entry, dict):
                out.extend((f"{source}:{name}", _runtime_hex(c)) for name, c in entry.items() if isinstance(c, dict))
        return out or None
    if not any(key in data for key in ("deployedBytecode", "bin-runtime", "evm", "bytecode", "abi")):
        return None
    return [(None, _runtime_hex(data))]


def _runtime_hex(entry: object) -> str | None:
    if not isinstance(entry, dict):
        return None
    evm = entry.get("evm")
    for value in (
        entry.get("deployedBytecode"),
        entry.get("bin-runtime"),
        evm.get("deployedBytecode") if isinstance(evm, dict) else None,
    ):
        if isinstance(value, dict):
            value = value.get("object")
        if isinstance(value, str) and value.removeprefix("0x"):
            return value
    return None


def _source_stem(source: str) -> str:
    return PurePosixPath(source).stem or source


def _source_path(source: str) -> str:
    path = PurePosixPath(source)
    return str(path.with_suffix("")) if path.suffix else source


def _artifact(path: Path, ident: str, skipped: list[str]) -> Iterator[tuple[str, bytes, str]]:
    try:
        data = _json(path.read_text(encoding="utf-8"))
    except (*_READ_ERRORS, ValueError) as exc:
        raise InputError(f"{path}: not a readable JSON artifact ({exc})") from exc
    contracts = runtime_of_artifact(data)
    if contracts is None:
        skipped.append(f"{path}: not a compiler artifact (no contracts or bytecode keys), skipped")
        return
    # "path/File.sol:Contract" -> "File:Contract", unless two sources share a stem: then the path is kept
    def short(name: str) -> str:
        source, contract = name.rsplit(":", 1)
        return f"{_source_stem(source)}:{contract}"

    counts = Counter(short(n) for n, _ in contracts if n and ":" in n)
    for name, runtime in contracts:
        if name is None:
            cid = ident
        elif ":" in name:
            cid = short(name)
            if counts[cid] > 1:
                source, contract = name.rsplit(":", 1)
                cid = f"{_source_path(source)}:{contract}"
        else:
            cid = f"{ident}:{name}"
        cid = _checked_id(cid, str(path))
        if runtime is None:
            skipped.append(f"{path}: {cid} has no runtime bytecode (abstract contract or interface?), skipped")
            continue
        try:
            yield cid, parse_hex(_PLACEHOLDER.sub("0" * 40, runtime)), str(path)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from exc


def _hex_file(path: Path) -> bytes:
    try:
        return parse_hex(path.read_text(encoding="utf-8"))
    except _READ_ERRORS as exc:
        raise InputError(f"{path}: cannot read ({exc})") from exc
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from exc


def _read_one(path: Path, skipped: list[str]) -> Iterator[tuple[str, bytes, bool, str]]:
    """(id, code, whether the user named the id, where it came from) from one input path."""
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_dir():
        for f in sorted([*path.rglob("*.jsonl"), *path.rglob("*.jsonl.gz")]):
            yield from ((cid, code, True, where) for cid, code, where in _jsonl(f))
        for f in sorted(path.rglob("*.hex")):
            yield _checked_id(f.stem, str(f)), _hex_file(f), False, str(f)
        jsons = sorted(f for f in path.rglob("*.json") if not f.name.endswith(".dbg.json"))  # hardhat debug files
        stems = Counter(f.stem for f in jsons)
        for f in jsons:
            ident = f.stem if stems[f.stem] == 1 else str(f.relative_to(path).with_suffix(""))
            yield from ((cid, code, False, where) for cid, code, where in _artifact(f, ident, skipped))
    elif path.name.endswith((".jsonl", ".jsonl.gz")):
        yield from ((cid, code, True, where) for cid, code, where in _jsonl(path))
    elif path.suffix == ".json":
        yield from ((cid, code, False, where) for cid, code, where in _artifact(path, path.stem, skipped))
    elif path.suffix == ".hex":
        yield _checked_id(path.stem, str(path)), _hex_file(path), False, str(path)
    else:
        raise InputError(f"{path}: unsupported input (expected .jsonl, .jsonl.gz, .json, .hex or a directory)")


def read_inputs(paths: list[Path], skipped: list[str]) -> Iterator[tuple[str, bytes]]:
    """(id, runtime code) from every input path, each id once; notes on what was skipped go to `skipped`.

    A contract listed twice with the same code (corpora overlap) is read once. Ids that come from file names
    (.hex files, artifacts) can collide across inputs, say two build folders that both hold Math.json: a later
    one with other code is renamed "<input>/<id>" and noted. Ids written in a JSON-lines file are the user's
    own: one of them naming two different codes is an error.
    """
    seen: dict[str, bytes] = {}
    for path in paths:
        for cid, code, named, where in _read_one(path, skipped):
            if cid in seen and seen[cid] != code:
                if named:
                    raise InputError(f"{where}: contract id {cid!r} appears twice with different code")
                renamed = f"{path}/{cid}"
                skipped.append(f"{where}: id {cid!r} is taken by other code from an earlier input; renamed {renamed!r}")
                cid = renamed
            if cid in seen:
                continue
            seen[cid] = code
            yield cid, code
