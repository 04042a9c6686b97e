"""Shared fixtures: the real bytecode corpus in ../shared/data and real protocol artifacts from npm."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS_DIR = REPO.parent / "shared" / "data" / "bytecode"


def load_corpus(name: str) -> list[dict]:
    path = CORPUS_DIR / f"{name}.jsonl.gz"
    if not path.exists():
        pytest.skip(f"real bytecode corpus not found at {path}")
    with gzip.open(path, "rt") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="session")
def corpus() -> list[dict]:
    """Every contract of the shared corpus once (the datasets overlap), rows {id, code, …} with `raw` bytes."""
    rows: dict[str, dict] = {}
    for name in ("elipmoc-contracts", "metadata-dataset1", "solc08-over5k", "viair-march23"):
        for row in load_corpus(name):
            row["raw"] = bytes.fromhex(row["code"][2:])
            row["dataset"] = name
            rows.setdefault(row["id"], row)
    return list(rows.values())


@pytest.fixture(scope="session")
def labeled_corpus() -> list[dict]:
    """metadata-dataset1: rows carry ABI-derived `selectors` and `events` (ground truth)."""
    rows = load_corpus("metadata-dataset1")
    for row in rows:
        row["raw"] = bytes.fromhex(row["code"][2:])
    return rows


@pytest.fixture(scope="session")
def npm_artifact():
    """`npm_artifact(name)` -> runtime bytes of a real protocol artifact; skips when the registry is unreachable."""
    from tests.support import npm_artifacts

    def get(name: str) -> bytes:
        try:
            return npm_artifacts.artifact(name)
        except npm_artifacts.ArtifactUnavailable as exc:
            pytest.skip(f"npm artifact {name} unavailable: {exc}")

    return get


@pytest.fixture(scope="session")
def sushiswap_pair() -> bytes:
    from tests.support import npm_artifacts

    try:
        return npm_artifacts.sushiswap_pair_runtime()
    except npm_artifacts.ArtifactUnavailable as exc:
        pytest.skip(f"SushiSwap pair could not be compiled here: {exc}")
