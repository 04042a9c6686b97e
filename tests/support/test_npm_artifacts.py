"""Tests for the npm artifact helpers: real packages from the registry, plus offline checks of the parsing.

Tests that need the registry skip (with npm's reason) when this machine cannot reach it; a wrong pin, a
malformed artifact or a failed compile fails.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import evmole
import pytest
from eth_utils import function_abi_to_4byte_selector

from tests.support import npm_artifacts as na

T = TypeVar("T")

# One function every named artifact must expose, so a mix-up between two artifacts is caught too.
EXPECTED_SELECTOR = {
    "uniswap-v2-pair": "0902f1ac",  # getReserves()
    "uniswap-v2-factory": "c9c65396",  # createPair(address,address)
    "uniswap-v2-erc20": "d505accf",  # permit(...)
    "pancake-v2-pair": "0902f1ac",
    "pancake-v2-factory": "c9c65396",
    "uniswap-v3-pool": "3850c7bd",  # slot0()
    "uniswap-v3-factory": "a1671295",  # createPool(address,address,uint24)
    "pancake-v3-pool": "3850c7bd",
    "pancake-v3-factory": "a1671295",
    "oz-erc20": "a9059cbb",  # transfer(address,uint256)
    "oz-erc721": "42842e0e",  # safeTransferFrom(address,address,uint256)
    "bscswap-pair": "0902f1ac",
    "bscswap-factory": "c9c65396",
    "swapr-pair": "0902f1ac",
    "swapr-factory": "c9c65396",
}

# The runtime size of the pair that SushiSwap's mainnet factory deploys (its creation code copies 0x2377
# bytes). Optimizer off gives 15136, 5000 runs 9936: this length pins the compile settings.
SUSHI_PAIR_RUNTIME_LEN = 0x2377


def fetch(getter: Callable[..., T], *args: Any) -> T:
    try:
        return getter(*args)
    except na.ArtifactUnavailable as exc:
        pytest.skip(f"npm artifact unavailable: {exc}")


def code_selectors(code: bytes) -> set[str]:
    return {function.selector for function in evmole.contract_info(code, selectors=True).functions}


def abi_selectors(abi: list[dict[str, Any]]) -> set[str]:
    return {function_abi_to_4byte_selector(entry).hex() for entry in abi if entry.get("type") == "function"}


# ------------------------------------------------------------------------------------ registry-backed


@pytest.mark.npm
@pytest.mark.parametrize("name", na.ARTIFACT_NAMES)
def test_named_artifact_is_the_contracts_runtime_code(name: str) -> None:
    code = fetch(na.artifact, name)
    assert code[:5] in (bytes.fromhex("6080604052"), bytes.fromhex("6060604052"))
    assert len(code) > 1024
    # Creation code dispatches no functions, so an exact match with the ABI proves this is runtime code,
    # and of this contract.
    selectors = code_selectors(code)
    assert selectors == abi_selectors(fetch(na.artifact_abi, name))
    assert EXPECTED_SELECTOR[name] in selectors


@pytest.mark.npm
def test_artifacts_of_different_contracts_differ() -> None:
    codes = {name: fetch(na.artifact, name) for name in na.ARTIFACT_NAMES}
    assert len(set(codes.values())) == len(codes)


@pytest.mark.npm
def test_sushiswap_pair_compiles_to_the_uniswap_v2_pair_interface() -> None:
    sushi = fetch(na.sushiswap_pair_runtime)
    uniswap = fetch(na.artifact, "uniswap-v2-pair")
    assert sushi[:5] == bytes.fromhex("6080604052")
    assert len(sushi) == SUSHI_PAIR_RUNTIME_LEN
    assert code_selectors(sushi) == code_selectors(uniswap)
    assert "0902f1ac" in code_selectors(sushi)
    # Same interface, yet its own code: SushiSwap's first-mint migrator hook calls factory.migrator().
    migrator_call = bytes.fromhex("63" "7cd07e47")  # PUSH4 migrator()
    assert migrator_call in sushi and b"Bad desired liquidity" in sushi
    assert migrator_call not in uniswap
    shipped_abi = json.loads((fetch(na.npm_pack, "@sushiswap/core") / "build/abi/UniswapV2Pair.json").read_text())
    assert code_selectors(sushi) == abi_selectors(shipped_abi)


@pytest.mark.npm
def test_warm_calls_run_neither_npm_nor_node(monkeypatch: pytest.MonkeyPatch) -> None:
    package_dir = fetch(na.npm_pack, "@uniswap/v2-core@1.0.1")
    pair = fetch(na.sushiswap_pair_runtime)

    def no_subprocess(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a cached call ran a process: {args}")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    monkeypatch.setenv("PATH", "")
    assert na.npm_pack("@uniswap/v2-core@1.0.1") == package_dir
    assert na.artifact("uniswap-v2-pair") == na.runtime_code(package_dir, "build/UniswapV2Pair.json")
    assert na.sushiswap_pair_runtime() == pair


@pytest.mark.npm
def test_a_version_that_does_not_exist_fails_rather_than_skips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAMIYO_TEST_CACHE", str(tmp_path))
    try:
        na.npm_pack("@uniswap/v2-core@99.0.0")
    except na.ArtifactUnavailable as exc:
        pytest.skip(f"npm registry unavailable: {exc}")
    except na.ArtifactError as exc:
        assert "ETARGET" in str(exc)
    else:
        pytest.fail("npm pack of a missing version succeeded")


# ------------------------------------------------------------------------------------------- offline


def test_missing_npm_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAMIYO_TEST_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(na.ArtifactUnavailable, match="npm is not on PATH"):
        na.npm_pack("@uniswap/v2-core@1.0.1")


def test_unreachable_registry_is_unavailable_and_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAMIYO_TEST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm"))  # nothing to fall back on
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")  # discard port: refused at once
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    fetch(na._require_tool, "npm")
    with pytest.raises(na.ArtifactUnavailable, match="ECONNREFUSED"):
        na.npm_pack("@uniswap/v2-core@1.0.1")
    # The second package fails at once with the same reason instead of waiting on the network again.
    with pytest.raises(na.ArtifactUnavailable, match="ECONNREFUSED"):
        na.npm_pack("@uniswap/v3-core@1.0.1")
    assert not any(path.name.endswith(".tgz") for path in tmp_path.rglob("*"))


def test_spec_must_be_exact_or_pinned() -> None:
    assert na._parse_spec("@uniswap/v2-core") == ("@uniswap/v2-core", "1.0.1")
    assert na._parse_spec("solc@0.6.12") == ("solc", "0.6.12")
    for bad in ("@uniswap/v2-core@^1.0.0", "@uniswap/v2-core@latest", "left-pad", "../etc@1.0.0"):
        with pytest.raises(ValueError):
            na._parse_spec(bad)


def test_runtime_code_reads_each_artifact_layout(tmp_path: Path) -> None:
    layouts = {
        "hardhat.json": {"bytecode": "0x6001", "deployedBytecode": "0x6080604052"},
        "foundry.json": {"bytecode": {"object": "0x6001"}, "deployedBytecode": {"object": "0x6080604052"}},
        "waffle.json": {"bytecode": "6001", "evm": {"deployedBytecode": {"object": "6080604052"}}},
    }
    for filename, content in layouts.items():
        (tmp_path / filename).write_text(json.dumps(content))
        assert na.runtime_code(tmp_path, filename) == bytes.fromhex("6080604052"), filename


def test_runtime_code_never_falls_back_to_creation_code(tmp_path: Path) -> None:
    (tmp_path / "creation.json").write_text(json.dumps({"abi": [], "bytecode": "0x6080604052"}))
    (tmp_path / "interface.json").write_text(json.dumps({"abi": [], "deployedBytecode": "0x"}))
    with pytest.raises(na.ArtifactError, match="no deployed bytecode"):
        na.runtime_code(tmp_path, "creation.json")
    with pytest.raises(na.ArtifactError, match="empty runtime code"):
        na.runtime_code(tmp_path, "interface.json")


def test_link_placeholders_are_zero_filled() -> None:
    modern = "__$" + "ab" * 17 + "$__"
    legacy = "__contracts/Lib.sol:Lib".ljust(38, "_") + "__"
    assert len(modern) == len(legacy) == 40
    code = na.decode_hex_code(f"0x73{modern}60{legacy}00")
    assert code == bytes.fromhex("73" + "00" * 20 + "60" + "00" * 20 + "00")
    with pytest.raises(na.ArtifactError, match="placeholder"):
        na.decode_hex_code("73__$abc$__00")
    with pytest.raises(na.ArtifactError, match="placeholder"):
        na.decode_hex_code("7" + modern + "0")  # off a byte boundary


def _tarball(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for info, data in members:
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def test_extract_strips_the_top_folder_and_drops_links(tmp_path: Path) -> None:
    tarball = _tarball(
        tmp_path / "ok.tgz",
        [
            (_member("package/package.json"), b'{"name": "x"}'),
            (_member("package/build/A.json"), b"{}"),
            (_member("package/evil-link", tarfile.SYMTYPE, "/etc/passwd"), b""),
            (_member("package/hard-link", tarfile.LNKTYPE, "package/package.json"), b""),
        ],
    )
    na.safe_extract(tarball, tmp_path / "out")
    found = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*"))
    assert found == ["build", "build/A.json", "package.json"]


@pytest.mark.parametrize("name", ["package/../../escape.txt", "/abs/escape.txt", "../escape.txt"])
def test_extract_refuses_paths_that_leave_the_folder(tmp_path: Path, name: str) -> None:
    tarball = _tarball(tmp_path / "evil.tgz", [(_member(name), b"pwned")])
    with pytest.raises(na.ArtifactError, match="unsafe member path"):
        na.safe_extract(tarball, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path.parent / "escape.txt").exists()


def test_collect_sources_follows_imports_and_stays_inside(tmp_path: Path) -> None:
    contracts = tmp_path / "contracts"
    (contracts / "lib").mkdir(parents=True)
    (contracts / "Main.sol").write_text(
        'import "./lib/A.sol";\nimport {B} from "./lib/B.sol";\n// import "./Missing.sol";\n'
    )
    (contracts / "lib" / "A.sol").write_text('import * as B from "./B.sol";\n')
    (contracts / "lib" / "B.sol").write_text("contract B {}\n")
    assert sorted(na.collect_sources(tmp_path, "contracts/Main.sol")) == [
        "contracts/Main.sol",
        "contracts/lib/A.sol",
        "contracts/lib/B.sol",
    ]
    (contracts / "Escape.sol").write_text('import "../../outside.sol";\n')
    with pytest.raises(na.ArtifactError, match="outside the package"):
        na.collect_sources(tmp_path, "contracts/Escape.sol")
