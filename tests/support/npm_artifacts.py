"""Real compiled protocol contracts, fetched from the npm registry, for tests.

Provides the deployed (runtime) bytecode of well-known contracts at pinned package versions: the artifacts
that Uniswap, PancakeSwap and OpenZeppelin publish, and SushiSwap's pair compiled here from its published
sources with solc-js. Everything lands in one cache folder and a warm call touches neither npm nor node.

Two exceptions, on purpose: `ArtifactUnavailable` means this machine cannot get the artifact (no npm or
node, registry unreachable), so a fixture may skip; any other `ArtifactError` means the pin, the artifact
or the compile is wrong, and a test must fail. This module must not reach anything but the npm registry,
and must never write outside the cache folder and the repository's node_modules.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

# Exact versions, so every machine analyses the same bytes. npm versions are immutable once published.
PINNED: dict[str, str] = {
    "@uniswap/v2-core": "1.0.1",
    "@pancakeswap-libs/pancake-swap-core": "0.1.0",
    "@uniswap/v3-core": "1.0.1",
    "@pancakeswap/v3-core": "1.0.2",
    "@openzeppelin/contracts": "3.4.2",
    # 1.4.2 is the newest release with contracts/uniswapv2/ (2.0.0 canaries are a different project). Its
    # build/ holds ABIs only; 1.2.1 and 1.4.0 ship truffle builds made with the optimizer *off*, which is
    # not what SushiSwap deployed, so the pair is compiled here instead.
    "@sushiswap/core": "1.4.2",
    # Uniswap V2 forks the engine was not tuned on, kept as a held-out check of the linking rules.
    "@bscswap/contracts": "1.0.2",
    "@swapr/core": "0.3.20",
}

# name -> (package, artifact path inside the package)
ARTIFACTS: dict[str, tuple[str, str]] = {
    "uniswap-v2-pair": ("@uniswap/v2-core", "build/UniswapV2Pair.json"),
    "uniswap-v2-factory": ("@uniswap/v2-core", "build/UniswapV2Factory.json"),
    "uniswap-v2-erc20": ("@uniswap/v2-core", "build/UniswapV2ERC20.json"),
    "pancake-v2-pair": ("@pancakeswap-libs/pancake-swap-core", "build/PancakePair.json"),
    "pancake-v2-factory": ("@pancakeswap-libs/pancake-swap-core", "build/PancakeFactory.json"),
    "uniswap-v3-pool": ("@uniswap/v3-core", "artifacts/contracts/UniswapV3Pool.sol/UniswapV3Pool.json"),
    "uniswap-v3-factory": ("@uniswap/v3-core", "artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json"),
    "pancake-v3-pool": ("@pancakeswap/v3-core", "artifacts/contracts/PancakeV3Pool.sol/PancakeV3Pool.json"),
    "pancake-v3-factory": (
        "@pancakeswap/v3-core",
        "artifacts/contracts/PancakeV3Factory.sol/PancakeV3Factory.json",
    ),
    "oz-erc20": ("@openzeppelin/contracts", "build/contracts/ERC20.json"),
    "oz-erc721": ("@openzeppelin/contracts", "build/contracts/ERC721.json"),
    "bscswap-pair": ("@bscswap/contracts", "build/BSCswapPair.json"),
    "bscswap-factory": ("@bscswap/contracts", "build/BSCswapFactory.json"),
    "swapr-pair": ("@swapr/core", "build/DXswapPair.json"),
    "swapr-factory": ("@swapr/core", "build/DXswapFactory.json"),
}
ARTIFACT_NAMES: tuple[str, ...] = tuple(ARTIFACTS)

# The solc-js build in package.json (an npm alias) and the settings SushiSwap deployed its pair with.
# The package ships no hardhat/truffle config; optimizer on with 200 runs is what reproduces the pair code
# embedded in SushiSwap's mainnet factory (5000 and off both differ); istanbul is 0.6.12's default target.
SUSHI_SOLC_PACKAGE = "solc-0.6.12"
SUSHI_SOLC_VERSION = "0.6.12"
SUSHI_PAIR_SOURCE = "contracts/uniswapv2/UniswapV2Pair.sol"
SUSHI_PAIR_CONTRACT = "UniswapV2Pair"
SUSHI_SETTINGS: dict[str, Any] = {"optimizer": {"enabled": True, "runs": 200}, "evmVersion": "istanbul"}

_NPM_ENV_DEFAULTS = {
    "npm_config_fetch_retries": "1",
    "npm_config_fetch_retry_mintimeout": "2000",
    "npm_config_fetch_retry_maxtimeout": "10000",
    "npm_config_fetch_timeout": "60000",
}
_NPM_ENV_FORCED = {"npm_config_update_notifier": "false", "npm_config_fund": "false", "npm_config_audit": "false"}
NPM_TIMEOUT_S = 300
COMPILE_TIMEOUT_S = 300
MAX_UNPACKED_BYTES = 256 * 1024 * 1024

_HERE = Path(__file__).resolve().parent
_COMPILE_SCRIPT = _HERE / "compile_solc.js"
_SPEC = re.compile(r"^(?P<name>(?:@[a-z0-9][\w.-]*/)?[a-z0-9][\w.-]*)(?:@(?P<version>.+))?$")
_EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$")
# npm error codes that mean the request itself is wrong (a bad pin), not that the registry is out of reach.
_NPM_REQUEST_ERRORS = frozenset({"E404", "ETARGET", "EINVALIDTAGNAME", "EINVALIDPACKAGENAME", "EBADSEMVER"})


class ArtifactError(RuntimeError):
    """An artifact is wrong or could not be produced: a bad pin, a malformed file, a failed compile."""


class ArtifactUnavailable(ArtifactError):
    """This machine cannot get the artifact (npm or node missing, registry unreachable). Safe to skip on."""


def repo_root() -> Path:
    """The folder holding package.json, found by walking up from this file."""
    for folder in (_HERE, *_HERE.parents):
        if (folder / "package.json").is_file():
            return folder
    return _HERE.parents[1]


def cache_dir() -> Path:
    """`$KAMIYO_TEST_CACHE` if set, else `<repo>/.cache/npm`. Read on every call so tests may redirect it."""
    configured = os.environ.get("KAMIYO_TEST_CACHE")
    path = Path(configured) if configured else repo_root() / ".cache" / "npm"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------------------------- npm pack


def npm_pack(spec: str) -> Path:
    """Fetch one package tarball with `npm pack` and unpack it; return the folder holding its package.json.

    `spec` is `name@exact-version`, or a bare name from PINNED. The result is cached in
    `<cache>/<name>@<version>/`; when that folder exists npm is not run at all.
    """
    name, version = _parse_spec(spec)
    dest = cache_dir() / f"{name}@{version}"
    if (dest / "package.json").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    npm = _require_tool("npm")
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".pack-") as work:
        unpacked = _download(npm, f"{name}@{version}", Path(work))
        try:
            # A rename is atomic, so a reader never sees half a package; a concurrent winner is kept.
            os.rename(unpacked, dest)
        except OSError as exc:
            if not (dest / "package.json").is_file():
                raise ArtifactError(f"cannot move {spec} into {dest} (remove that folder): {exc}") from exc
    return dest


def _download(npm: str, spec: str, workdir: Path) -> Path:
    """`npm pack` one exact spec into `workdir` and unpack it there; return the unpacked folder."""
    registry = _registry_key()
    if registry in _unreachable:
        raise ArtifactUnavailable(f"{spec} not fetched: {_unreachable[registry]}")
    try:
        proc = _run(
            [npm, "pack", spec, "--pack-destination", str(workdir), "--json", "--ignore-scripts", "--prefer-offline"],
            cwd=repo_root(),
            timeout=NPM_TIMEOUT_S,
            what=f"npm pack {spec}",
        )
        info = _pack_info(proc, spec)
    except ArtifactUnavailable as exc:
        # Remember it, so the next package does not wait out the same network failure again.
        _unreachable[registry] = str(exc)
        raise
    tarball = workdir / str(info.get("filename", ""))
    if not tarball.is_file():
        found = sorted(workdir.glob("*.tgz"))
        if len(found) != 1:
            raise ArtifactError(f"npm pack {spec} left no single tarball in {workdir}")
        tarball = found[0]
    unpacked = workdir / "unpacked"
    safe_extract(tarball, unpacked)
    if not (unpacked / "package.json").is_file():
        raise ArtifactError(f"{tarball.name} has no package.json at its top level")
    provenance = {"spec": spec, "integrity": info.get("integrity"), "shasum": info.get("shasum")}
    (unpacked / ".kamiyo-npm.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return unpacked


# Registry failures seen in this process, keyed by the npm settings in force (tests may point elsewhere).
_unreachable: dict[tuple[tuple[str, str], ...], str] = {}


def _registry_key() -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k.lower(), v) for k, v in os.environ.items() if k.lower().startswith("npm_config_")))


def _parse_spec(spec: str) -> tuple[str, str]:
    match = _SPEC.match(spec.strip())
    if not match:
        raise ValueError(f"not an npm package spec: {spec!r}")
    name, version = match["name"], match["version"]
    if version is None:
        if name not in PINNED:
            raise ValueError(f"{name} has no pinned version; pass name@exact-version")
        version = PINNED[name]
    if not _EXACT_VERSION.match(version):
        raise ValueError(f"{spec!r}: only exact versions are cached reproducibly, not ranges or tags")
    return name, version


def _pack_info(proc: subprocess.CompletedProcess[str], spec: str) -> dict[str, Any]:
    try:
        payload = json.loads(proc.stdout or "null")
    except json.JSONDecodeError:
        payload = None
    if isinstance(payload, dict) and "error" in payload:
        error = payload["error"] or {}
        code, summary = str(error.get("code", "")), str(error.get("summary", "")).strip()
        reason = f"npm pack {spec} failed ({code or 'no code'}): {summary or _tail(proc.stderr)}"
        if code in _NPM_REQUEST_ERRORS:
            raise ArtifactError(reason)
        raise ArtifactUnavailable(reason)
    if proc.returncode != 0 or not isinstance(payload, list) or not payload or not isinstance(payload[0], dict):
        raise ArtifactUnavailable(f"npm pack {spec} failed (exit {proc.returncode}): {_tail(proc.stderr)}")
    return payload[0]


def safe_extract(tarball: Path, dest: Path) -> None:
    """Unpack an npm tarball into `dest`, dropping its top folder (`package/`).

    Only regular files and folders are written; links, devices and any member whose path is absolute or
    climbs out with `..` are refused, so a hostile tarball cannot write outside `dest`.
    """
    dest.mkdir(parents=True, exist_ok=False)
    root = dest.resolve()
    total = 0
    try:
        with tarfile.open(tarball, "r:*") as archive:
            for member in archive:
                parts = PurePosixPath(member.name.replace("\\", "/")).parts
                if not parts or member.name.startswith("/") or ".." in parts:
                    raise ArtifactError(f"{tarball.name}: unsafe member path {member.name!r}")
                relative = parts[1:]  # npm puts everything under one top folder, usually package/
                if not relative or not (member.isfile() or member.isdir()):
                    continue
                target = root.joinpath(*relative)
                if not target.resolve().is_relative_to(root):
                    raise ArtifactError(f"{tarball.name}: member {member.name!r} escapes the target folder")
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                total += member.size
                if total > MAX_UNPACKED_BYTES:
                    raise ArtifactError(f"{tarball.name} unpacks to more than {MAX_UNPACKED_BYTES} bytes")
                target.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                if source is None:
                    continue
                with source, open(target, "wb") as sink:
                    shutil.copyfileobj(source, sink)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArtifactError(f"cannot unpack {tarball.name}: {exc}") from exc


# ------------------------------------------------------------------------------------------- artifacts


def runtime_code(package_dir: Path, relpath: str) -> bytes:
    """The deployed (runtime) bytecode in a solc, waffle, truffle or hardhat artifact JSON.

    Reads `deployedBytecode` (a hex string, or an object with `object`) or `evm.deployedBytecode.object`.
    Creation code (`bytecode`) is never returned. Library link placeholders are zero-filled.
    """
    path = Path(package_dir) / relpath
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read artifact {path}: {exc}") from exc
    hexcode = _deployed_hex(data)
    if hexcode is None:
        raise ArtifactError(f"{path} has no deployed bytecode (only creation code, or not an artifact)")
    code = decode_hex_code(hexcode, where=str(path))
    if not code:
        raise ArtifactError(f"{path} has empty runtime code (an interface or abstract contract?)")
    return code


def _deployed_hex(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    candidates = [data.get("deployedBytecode"), (data.get("evm") or {}).get("deployedBytecode")]
    for candidate in candidates:
        if isinstance(candidate, dict):
            candidate = candidate.get("object")
        if isinstance(candidate, str):
            return candidate
    return None


def decode_hex_code(hexcode: str, where: str = "bytecode") -> bytes:
    """Hex (with or without 0x) to bytes, zero-filling 40-character link placeholders.

    Placeholders are `__$<34 hex>$__` (solc >= 0.5) or `__<name padded with _>__` (older). Hex has no `_`,
    so every `_` starts one; each must sit on a byte boundary and span exactly 40 characters.
    """
    text = hexcode.strip()
    if text[:2] in ("0x", "0X"):
        text = text[2:]
    pieces, pos = [], 0
    while (start := text.find("_", pos)) >= 0:
        placeholder = text[start : start + 40]
        if start % 2 or len(placeholder) != 40 or not (placeholder.startswith("__") and placeholder.endswith("__")):
            raise ArtifactError(f"{where}: malformed link placeholder at character {start}")
        pieces += [text[pos:start], "0" * 40]
        pos = start + 40
    pieces.append(text[pos:])
    try:
        return bytes.fromhex("".join(pieces))
    except ValueError as exc:
        raise ArtifactError(f"{where}: not hex bytecode: {exc}") from exc


def artifact_path(name: str) -> Path:
    """Fetch (cached) the package behind a named artifact and return the artifact file's path."""
    package, relpath = _lookup(name)
    return npm_pack(f"{package}@{PINNED[package]}") / relpath


def artifact(name: str) -> bytes:
    """Runtime bytecode of a named artifact, e.g. `artifact("uniswap-v2-pair")`; see ARTIFACT_NAMES."""
    package, relpath = _lookup(name)
    return runtime_code(npm_pack(f"{package}@{PINNED[package]}"), relpath)


def artifact_abi(name: str) -> list[dict[str, Any]]:
    """The ABI stored beside a named artifact's bytecode."""
    path = artifact_path(name)
    abi = json.loads(path.read_text()).get("abi")
    if not isinstance(abi, list):
        raise ArtifactError(f"{path} has no ABI list")
    return abi


def _lookup(name: str) -> tuple[str, str]:
    try:
        return ARTIFACTS[name]
    except KeyError:
        raise KeyError(f"unknown artifact {name!r}; known: {', '.join(ARTIFACT_NAMES)}") from None


# ------------------------------------------------------------------------------------------- compiling


def sushiswap_pair_runtime() -> bytes:
    """Runtime bytecode of SushiSwap's UniswapV2Pair, compiled from @sushiswap/core with SUSHI_SETTINGS."""
    package_dir = npm_pack(f"@sushiswap/core@{PINNED['@sushiswap/core']}")
    return compile_runtime(
        package_dir,
        SUSHI_PAIR_SOURCE,
        SUSHI_PAIR_CONTRACT,
        settings=SUSHI_SETTINGS,
        solc_package=SUSHI_SOLC_PACKAGE,
        solc_version=SUSHI_SOLC_VERSION,
    )


def compile_runtime(
    package_dir: Path,
    source: str,
    contract: str,
    *,
    settings: dict[str, Any],
    solc_package: str,
    solc_version: str,
) -> bytes:
    """Compile `source` (and the imports it reaches inside `package_dir`) and return `contract`'s runtime code.

    The result is cached under `<cache>/solc/`, keyed by a hash of the full standard-JSON input and the
    compiler version, so changed sources or settings can never be served a stale build.
    """
    sources = collect_sources(Path(package_dir), source)
    solc_input = {
        "language": "Solidity",
        "sources": {path: {"content": text} for path, text in sorted(sources.items())},
        "settings": {**settings, "outputSelection": {source: {contract: ["evm.deployedBytecode.object"]}}},
    }
    blob = json.dumps(solc_input, sort_keys=True, separators=(",", ":"))
    key = hashlib.sha256(f"{solc_package}\n{solc_version}\n{blob}".encode()).hexdigest()
    cached = cache_dir() / "solc" / f"{key}.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return bytes.fromhex(json.loads(cached.read_text())["runtime"])

    output = _run_solc(blob, solc_package, solc_version)
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        messages = "\n".join(e.get("formattedMessage") or e.get("message", "?") for e in errors)
        raise ArtifactError(f"solc {solc_version} failed on {source}:\n{messages}")
    try:
        hexcode = output["contracts"][source][contract]["evm"]["deployedBytecode"]["object"]
    except (KeyError, TypeError) as exc:
        raise ArtifactError(f"solc output has no runtime code for {source}:{contract}") from exc
    code = decode_hex_code(hexcode, where=f"{source}:{contract}")
    if not code:
        raise ArtifactError(f"{source}:{contract} compiled to empty runtime code (abstract contract?)")
    record = {"runtime": code.hex(), "source": source, "contract": contract, "solc": solc_version, "settings": settings}
    _atomic_write(cached, json.dumps(record, indent=1) + "\n")
    return code


_IMPORT = re.compile(r"""\bimport\b[^;"']*["']([^"']+)["']""")
_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)


def collect_sources(package_dir: Path, entry: str) -> dict[str, str]:
    """`entry` and every file it imports, transitively, keyed by their path inside `package_dir`.

    Relative imports resolve against the importing file; other paths against the package root. An import
    that leaves the package or names a missing file is an error: nothing is read from elsewhere on disk.
    """
    root = package_dir.resolve()
    sources: dict[str, str] = {}
    pending = [str(PurePosixPath(entry))]
    while pending:
        unit = pending.pop()
        if unit in sources:
            continue
        path = (root / unit).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise ArtifactError(f"import {unit!r} is not a file inside {root}")
        text = path.read_text(encoding="utf-8")
        sources[unit] = text
        for target in _IMPORT.findall(_COMMENT.sub("", text)):
            if target.startswith(("./", "../")):
                target = os.path.normpath(str(PurePosixPath(unit).parent / target))
            if target.startswith("..") or os.path.isabs(target):
                raise ArtifactError(f"{unit} imports {target!r}, outside the package")
            pending.append(target)
    return sources


def _run_solc(blob: str, solc_package: str, solc_version: str) -> dict[str, Any]:
    _ensure_node_modules(solc_package, solc_version)
    node = _require_tool("node")
    proc = _run(
        [node, str(_COMPILE_SCRIPT), solc_package],
        cwd=repo_root(),
        timeout=COMPILE_TIMEOUT_S,
        what=f"compiling with {solc_package}",
        stdin=blob,
    )
    if proc.returncode != 0:
        raise ArtifactError(f"{_COMPILE_SCRIPT.name} exited {proc.returncode}: {_tail(proc.stderr)}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{_COMPILE_SCRIPT.name} printed no JSON: {_tail(proc.stdout)}") from exc


_install_lock = threading.Lock()
_install_failure: ArtifactError | None = None


def _ensure_node_modules(solc_package: str, solc_version: str) -> None:
    """Install the repository's npm dev tools (`npm ci`) if the wanted solc is missing; tried once per process."""
    global _install_failure
    manifest = repo_root() / "node_modules" / solc_package / "package.json"
    if not manifest.is_file():
        with _install_lock:
            if _install_failure is not None:
                raise _install_failure
            with _file_lock(cache_dir() / ".npm-install.lock"):
                if not manifest.is_file():  # another process may have installed while we waited
                    try:
                        _npm_install()
                    except ArtifactError as exc:
                        _install_failure = exc
                        raise
    try:
        installed = json.loads(manifest.read_text()).get("version")
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{solc_package} is not installed under node_modules after npm install") from exc
    if installed != solc_version:
        raise ArtifactError(f"node_modules/{solc_package} is solc {installed}, expected {solc_version}: run npm ci")


def _npm_install() -> None:
    npm = _require_tool("npm")
    root = repo_root()
    verb = "ci" if (root / "package-lock.json").is_file() else "install"
    proc = _run(
        [npm, verb, "--no-audit", "--no-fund", "--prefer-offline"],
        cwd=root,
        timeout=NPM_TIMEOUT_S,
        what=f"npm {verb}",
    )
    if proc.returncode != 0:
        raise ArtifactUnavailable(f"npm {verb} in {root} failed (exit {proc.returncode}): {_tail(proc.stderr)}")


# ----------------------------------------------------------------------------------------------- helpers


def _require_tool(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise ArtifactUnavailable(f"{tool} is not on PATH")
    return found


def _run(
    argv: list[str], *, cwd: Path, timeout: float, what: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    # npm's own defaults wait about 70 s per package for a refused connection and 5 min for a silent one;
    # fail sooner unless the caller configured these. Lower-case names: npm reads both spellings.
    given = {key.lower() for key in os.environ}
    env = {key: value for key, value in _NPM_ENV_DEFAULTS.items() if key not in given}
    env.update(os.environ)
    env.update(_NPM_ENV_FORCED)
    try:
        return subprocess.run(
            argv, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise ArtifactUnavailable(f"{what}: {argv[0]} not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise ArtifactUnavailable(f"{what} took longer than {timeout:.0f} s") from exc


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _tail(text: str | None, lines: int = 6) -> str:
    kept = [line for line in (text or "").strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "(no output)"
