"""DeFiHackLabs (github.com/SunWeb3Sec/DeFiHackLabs) → `Report`s: the hand-written incident lists (README.md for
the current year, past/YYYY/README.md), the `@KeyInfo` comment headers of the PoC files, and the PoC index derived
from those headers; and the README's view of an incident merged with the header's.

Pure parsing of what is handed in: nothing here fetches a checkout, runs a PoC or touches the database.

What is skipped and what is refused. The README is written by hand, so one heading that cannot be read (an
impossible date such as 20231345, no name) is logged (`defihacklabs.heading_skipped`) and skipped. A payload
that is not a DeFiHackLabs list at all is refused whole with FeedFormatError: not text, over the size limit, no
incident heading, or more unreadable incident headings than readable ones (the format changed under us). The
PoC index is machine-written, so one malformed entry refuses the whole index.

Decisions a reader of the Reports should know:
  * ref is the PoC path ("src/test/2023-03/Euler_exp.sol") when the entry links one, else "YYYY-MM-DD:name".
  * references are every URL of the entry (PoC as a GitHub URL first, then explorer and write-up links).
  * loss_text is the entry's "Lost:" words as written; loss_usd is what `amounts.parse_usd` reads as dollars,
    else the first amount in a USD stablecoin at par (USDT, USDC, BUSD, DAI, …); never a token converted.
  * roles come from the words before an address ("Attacker", "Attack Contract", "Vulnerable Contract",
    "Victim …"). A "Vulnerable Contract" keeps the model's own role `vulnerable_contract` (the contract with the
    bug, what clone detection looks for); only labels that say "victim" (a drained pool or pair) give `victim`.
    An address with no label is `other`. README entries never label theirs, so theirs are `other`.
  * PoC headers are read only for files a README entry links, and only the comment block from `@KeyInfo` on;
    addresses in the Solidity code itself (routers, tokens) are not the incident's and are not taken.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .. import log
from ..chains.registry import chain_id_of, explorer_chain, resolve_chain
from .amounts import parse_usd
from .model import FeedFormatError, Report, RoleAddress

REPO_BLOB = "https://github.com/SunWeb3Sec/DeFiHackLabs/blob/main/"
MAX_README_CHARS = 8 << 20  # the largest real list is ~0.2 MB
MAX_INDEX_BYTES = 32 << 20  # the real derived index is ~0.75 MB
HEADER_BYTES = 64 << 10  # the @KeyInfo block sits at the top of a PoC file

_log = log.get("kamiyo.feeds.defihacklabs")

_CANDIDATE = re.compile(r"###\s+\d")  # every level-3 heading that starts with a digit is meant as an incident
_HEADING = re.compile(r"###\s+(?P<date>\d{8})(?!\d)[\s\-–—]*(?P<rest>.*?)\s*\Z")
_LOST = re.compile(r"(?:#{1,6}\s*(?:total\s+)?lost\b\s*:?|(?:total\s+)?lost\s*:)\s*(?P<text>.*?)\s*\Z", re.I)
_END = re.compile(r"(?:-{3,}|#{1,2}\s.*)\Z")  # a thematic break or a level-1/2 heading closes an entry
_FENCE = re.compile(r"\s*(?:```|~~~)")
_URL = re.compile(r"https?://[^\s<>()\[\]\"'`]+")
_LINK_TARGET = re.compile(r"\]\(\s*<?([^)\s>]+)>?\s*\)")
_TX_IN_URL = re.compile(r"/tx/(?:(?P<chain>[A-Za-z][\w-]*)/)?(?P<hash>0x[0-9a-fA-F]{64})(?![0-9a-fA-F])")
_ADDRESS_IN_URL = re.compile(r"/(?:address|token)/(?P<address>0x[0-9a-fA-F]{40})(?![0-9a-fA-F])")
_TX = re.compile(r"(?<![0-9a-fA-Fx])0x[0-9a-fA-F]{64}(?![0-9a-fA-F])")
_ADDRESS = re.compile(r"(?<![0-9a-fA-Fx])0x[0-9a-fA-F]{40}(?![0-9a-fA-F])")
_STABLE = re.compile(
    r"(?<![\w$.,])(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?!\d|[.,]\d)"
    r"(?:\s?(?P<scale>thousand|million|billion|mn|bn|k|m|b)(?![a-z]))?"
    r"\s?\$?(?:USDT0?|BUSDT|BSC-USD|USDC(?:\.e)?|BUSD|FDUSD|TUSD|USDP|USDS|USDe|LUSD|GUSD|PYUSD|crvUSD|DAI)"
    r"(?![A-Za-z])",
    re.I,
)
_SCALES = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mn": 1e6, "million": 1e6, "b": 1e9, "bn": 1e9, "billion": 1e9}
_NAME_KEY = re.compile(r"[^0-9a-z]+")
_FORK = re.compile(
    r"createSelectFork\(\s*(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)'|[^,)]*)\s*(?:,\s*(?P<arg>[^)]*?))?\s*\)"
)
_BLOCK_ARG = re.compile(r"(?P<n>\d[\d_]*)(?:\s*(?P<op>[-+])\s*(?P<k>\d+))?\Z")
_TAG_ONLY = re.compile(r"@\w+\s*\Z")
_COMMENT_MARKS = re.compile(r"^(?://+|/\*+|\*+(?!/))\s*|\s*\*+/\Z")


# ---------------------------------------------------------------------------------------------------- README


def parse_readme(text: str, source: str) -> list[Report]:
    """One Report per `### YYYYMMDD Name - attack type` heading of a DeFiHackLabs incident list."""
    if len(text) > MAX_README_CHARS:
        raise FeedFormatError(f"DeFiHackLabs README of {len(text):,} characters is over the {MAX_README_CHARS:,} limit",
                              source=source)
    if "\x00" in text:
        raise FeedFormatError("DeFiHackLabs README contains NUL bytes: not a text file", source=source)
    lines = text.splitlines()
    reports, skipped = [], 0
    for number, heading, body in _sections(lines):
        try:
            reports.append(_readme_report(heading, body, source))
        except ValueError as exc:
            skipped += 1
            _log.warning("defihacklabs.heading_skipped", source=source, line=number, heading=heading[:200],
                         reason=str(exc))
    if not reports:
        what = f"{skipped} unreadable incident heading(s)" if skipped else "no `### YYYYMMDD` incident heading"
        raise FeedFormatError(f"not a DeFiHackLabs incident list: {what}", source=source)
    if skipped > len(reports):
        raise FeedFormatError(f"DeFiHackLabs README: {skipped} of {skipped + len(reports)} incident headings are "
                              "unreadable; the format has changed", source=source, skipped=skipped)
    return reports


def _sections(lines: list[str]) -> Iterator[tuple[int, str, list[str]]]:
    """(1-based line number, heading, the entry's lines) for every incident heading, in order. An entry runs to the
    next incident heading, a `---` or a level-1/2 heading outside a code fence (the README's trailing chapters
    such as "View Gas Reports" are not part of the last incident)."""
    current: tuple[int, str, list[str]] | None = None
    fenced = False
    for number, line in enumerate(lines, 1):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and _CANDIDATE.match(line):
            if current:
                yield current
            current = (number, line.strip(), [])
            continue
        elif not fenced and current and _END.match(line.strip()):
            yield current
            current = None
        if current:
            current[2].append(line)
    if current:
        yield current


def _readme_report(heading: str, body: list[str], source: str) -> Report:
    day, name, technique = _heading(heading)
    prose = list(_unfenced(body))
    loss_text = next((m.group("text") for m in map(_LOST.match, (s.strip() for s in prose)) if m), None) or None
    pocs = _dedupe(p for line in prose for p in map(_poc_path, _LINK_TARGET.findall(line)) if p)
    urls = _dedupe(u for line in prose for u in _urls(line))
    found = [_explorer_facts(line, u) for line in prose for u in _urls(line)]
    chains = _dedupe(c for facts in found for c in facts[0])
    return Report(
        source=source,
        ref=pocs[0] if pocs else f"{day.isoformat()}:{name}",
        protocol=name,
        day=day,
        chains=tuple(chains),
        loss_usd=_loss_usd(loss_text),
        loss_text=loss_text,
        technique=technique,
        addresses=_clean_addresses(a for facts in found for a in facts[1]),
        tx_hashes=tuple(_dedupe(h for facts in found for h in facts[2])),
        references=tuple(_dedupe([REPO_BLOB + p for p in pocs] + [u for u in urls if _poc_path(u) is None])),
        raw={"heading": heading, "lines": body},
    )


def _heading(heading: str) -> tuple[date, str, str | None]:
    """(day, name, attack type) of `### 20230313 - EulerFinance - Business Logic Flaw` and its variants: with or
    without a dash after the date, `20240924-MARA---price-manipulation`, no attack type. The name ends at the
    first " - " (names never contain one; attack types may: "Repeated Reward Claim - Logic Flaw")."""
    match = _HEADING.match(heading)
    if not match:
        raise ValueError("the heading does not start with an eight-digit date")
    digits, rest = match.group("date"), match.group("rest")
    try:
        day = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError as exc:
        raise ValueError(f"{digits} is not a date ({exc})") from exc
    parts = rest.split(" - ", 1) if " - " in rest else re.split(r"\s*-{2,}\s*", rest, maxsplit=1)
    name = parts[0].strip()
    technique = parts[1].strip() if len(parts) > 1 and parts[1].strip() else None
    if not name:
        raise ValueError("the heading names no protocol")
    return day, name, technique


def _unfenced(lines: Iterable[str]) -> Iterator[str]:
    fenced = False
    for line in lines:
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            yield line


def _urls(line: str) -> list[str]:
    return [u.rstrip(".,;:!?*_") for u in _URL.findall(line)]


def _poc_path(target: str) -> str | None:
    """"src/test/…" from a README link target ("../../src/test/2023-03/Euler_exp.sol", "/src/test//x.sol", a
    GitHub URL of this repository); None for anything else, including a path that climbs out with "..".
    """
    if target.startswith(("http://", "https://")):
        match = re.match(r"https?://github\.com/SunWeb3Sec/DeFiHackLabs/(?:blob|tree)/[^/]+/(.*)", target)
        if not match:
            return None
        target = match.group(1)
    target = target.split("#", 1)[0].split("?", 1)[0]
    parts = [p for p in PurePosixPath(target).parts if p not in ("/", ".", "..")]
    path = "/".join(parts)
    if not path.startswith("src/test/") or ".." in target.split("src/test/", 1)[-1].split("/"):
        return None
    return path


def _explorer_facts(line: str, url: str) -> tuple[list[int], list[RoleAddress], list[str]]:
    """(chain ids, addresses, tx hashes) an explorer link says. The chain comes from the explorer's host, or for a
    multi-chain tool (Phalcon, BlockSec) from the chain segment of `/tx/<chain>/0x…`; the role from the words
    before the link on its line ("Attacker: https://…")."""
    chain = explorer_chain(url)
    tx = _TX_IN_URL.search(url)
    if chain is None and tx and tx.group("chain"):
        chain = chain_id_of(tx.group("chain"))
    role = _label_role(line[: line.find(url)] if url in line else "")
    addresses = [RoleAddress(role, chain, m.group("address").lower()) for m in _ADDRESS_IN_URL.finditer(url)]
    return ([chain] if chain is not None else []), addresses, ([tx.group("hash").lower()] if tx else [])


def _label_role(prefix: str) -> str:
    """The role the words before an address give it: "Attacker (EOA) :", "- Attack Contract(main):", "Vulnerable
    Contract Code :", "Victim pair :"; `other` for anything else (a tx label, prose). Where a colon ends a label
    only the label counts, so "Attack summary: the attacker sent … 0x…" is no attacker."""
    words = (prefix.split(":", 1)[0] if ":" in prefix else prefix).lower()
    if "vulnerable" in words:
        return "vulnerable_contract"
    if "victim" in words:
        return "victim"
    if "attack" in words and any(w in words for w in ("contract", "helper", "orchestrator")):
        return "attack_contract"
    if "attacker" in words:
        return "attacker"
    return "other"


def _loss_usd(loss_text: str | None) -> float | None:
    """Dollars as `amounts.parse_usd` reads them, else a USD stablecoin amount taken at par when it is the first
    amount written ("~578K USDT"); "2.60 ETH, 4,477.72 USDC, …" is no dollar figure, not a part of one."""
    if not loss_text:
        return None
    usd, _words = parse_usd("Lost: " + loss_text.replace("$~", "~$"))  # the line's own label: "### Lost: …"
    if usd is not None:
        return usd
    stable = _STABLE.search(loss_text)
    if not stable or re.search(r"\d", loss_text[: stable.start()]):
        return None
    value = float(stable.group("num").replace(",", ""))
    return value * _SCALES[stable.group("scale").lower()] if stable.group("scale") else value


# ---------------------------------------------------------------------------------------- PoC index and headers


class _IndexEntry(BaseModel):
    """One incident of poc-index.derived.json. Keys not listed here (readme, refs' origin, explorers, …) are kept
    in the Report's raw, not checked."""

    model_config = ConfigDict(extra="allow")

    date: dt.date
    name: str = Field(min_length=1)
    attack_type: str | None = None
    lost: str | None = None
    poc: str | None = None
    refs: list[str] = []
    key_info: list[str] = []
    addresses: list[str] = []
    tx_hashes: list[str] = []
    fork_chain: str | None = None
    fork_block: str | int | None = None


_INDEX = TypeAdapter(list[_IndexEntry])


def parse_poc_index(payload: bytes, source: str) -> list[Report]:
    """One Report per entry of the derived PoC index (`defihacklabs/poc-index.derived.json`)."""
    if len(payload) > MAX_INDEX_BYTES:
        raise FeedFormatError(f"DeFiHackLabs PoC index of {len(payload):,} bytes is over the {MAX_INDEX_BYTES:,} "
                              "limit", source=source)
    try:
        entries = _INDEX.validate_json(payload, strict=True)
        raws = json.loads(payload)
    except ValidationError as exc:
        problems = [f"[{'.'.join(map(str, e['loc']))}] {e['msg']}" for e in exc.errors()[:3]]
        raise FeedFormatError(f"not a DeFiHackLabs PoC index ({exc.error_count()} problem(s)): {'; '.join(problems)}",
                              source=source) from exc
    except ValueError as exc:  # bytes that are not UTF-8 JSON
        raise FeedFormatError(f"not a DeFiHackLabs PoC index: {exc}", source=source) from exc
    if not entries:
        raise FeedFormatError("DeFiHackLabs PoC index has no entries", source=source)
    return [_index_report(entry, raw, source, position) for position, (entry, raw) in enumerate(zip(entries, raws))]


def _index_report(entry: _IndexEntry, raw: dict, source: str, position: int | str) -> Report:
    for value in entry.tx_hashes:
        if not _TX.fullmatch(value):
            raise FeedFormatError(f"PoC index entry {position}: {value!r:.80} is not a transaction hash", source=source)
    for value in entry.addresses:
        if not _ADDRESS.fullmatch(value):
            raise FeedFormatError(f"PoC index entry {position}: {value!r:.80} is not an address", source=source)
    poc = _poc_path(entry.poc) if entry.poc else None
    fork = resolve_chain(entry.fork_chain) if entry.fork_chain and entry.fork_chain.strip() else None
    fork_id = fork if isinstance(fork, int) else None
    labelled, hashes, urls = _key_info(entry.key_info, fork_id)
    addresses = labelled + [RoleAddress("other", fork_id, a.lower()) for a in entry.addresses]
    chains = ([fork] if fork is not None else []) + [c for u in urls + entry.refs for c in _explorer_facts("", u)[0]]
    return Report(
        source=source,
        ref=poc or f"{entry.date.isoformat()}:{entry.name}",
        protocol=entry.name,
        day=entry.date,
        chains=tuple(_dedupe(chains)),
        loss_usd=_loss_usd(entry.lost),
        loss_text=entry.lost or None,
        technique=entry.attack_type or None,
        addresses=_clean_addresses(addresses),
        tx_hashes=tuple(_dedupe([h.lower() for h in entry.tx_hashes] + hashes)),
        references=tuple(_dedupe(([REPO_BLOB + poc] if poc else []) + entry.refs + urls)),
        raw=raw,
    )


def _key_info(lines: list[str], fork_id: int | None) -> tuple[list[RoleAddress], list[str], list[str]]:
    """(labelled addresses, tx hashes, URLs) of `@KeyInfo` lines such as "Attacker : 0x…" or "Attack Tx :
    https://bscscan.com/tx/0x…". An address takes its explorer link's chain, else the chain the PoC forks."""
    addresses, hashes, urls = [], [], []
    for line in lines:
        found = re.search(r"0x[0-9a-fA-F]|https?://", line)
        role = _label_role(line[: found.start()] if found else line)
        line_urls = _urls(line)
        chain = next((c for u in line_urls if (c := explorer_chain(u)) is not None), fork_id)
        addresses += [RoleAddress(role, chain, a.lower()) for a in _ADDRESS.findall(line)]
        hashes += [h.lower() for h in _TX.findall(line)]
        urls += line_urls
    return addresses, hashes, urls


def read_poc_header(text: str, poc: str, incident: Report) -> dict | None:
    """The index-shaped entry (date, name, attack_type, lost, poc, key_info, addresses, tx_hashes, fork_chain,
    fork_block) a PoC file's comment header gives, or None when it has no `@KeyInfo`. Date, name and attack type
    come from the README entry that links the file; the header has none of them."""
    comments = _header_comments(text)
    if comments is None:
        return None
    key_info = [c for c in comments if ":" in c and not _TAG_ONLY.match(c)]
    lost = next((m.group(1).strip() for c in key_info if (m := re.search(r"total\s+lost\s*:\s*(.*)", c, re.I))), None)
    chain, block, fork_tx = _fork(text)
    block_text = " ".join(comments)
    return {
        "date": incident.day.isoformat() if incident.day else None,
        "name": incident.protocol,
        "attack_type": incident.technique,
        "lost": lost or None,
        "poc": poc,
        "key_info": key_info,
        "addresses": _dedupe(a.lower() for a in _ADDRESS.findall(block_text)),
        "tx_hashes": _dedupe([h.lower() for h in _TX.findall(block_text)] + fork_tx),
        "fork_chain": chain,
        "fork_block": block,
        "file": poc,
    }


def _header_comments(text: str) -> list[str] | None:
    """The comment lines from `@KeyInfo` to the end of that comment block, without comment markers; the block
    continues over blank lines and ends at the first line of code or at `@Analysis` (links to write-ups)."""
    out: list[str] | None = None
    in_block = False
    for line in text.splitlines():
        stripped = line.strip()
        if in_block or stripped.startswith(("//", "/*")):
            in_block = (in_block or stripped.startswith("/*")) and not stripped.endswith("*/")
            comment = _COMMENT_MARKS.sub("", stripped).strip()
        elif not stripped or out is None:
            continue  # blank lines inside the header, code (pragma, imports) before it
        else:
            break  # the first line of code after the header
        if out is None and "@keyinfo" in comment.lower():
            out = []
        if out is not None and comment.lower().startswith("@analysis"):
            break
        if out is not None and comment:
            out.append(comment)
    return out


def _fork(text: str) -> tuple[str | None, str | None, list[str]]:
    """(chain name, block as decimal text, [tx hash]) of the PoC's `vm.createSelectFork("bsc", 31528198 - 1)`;
    a block that is a variable stays None, a fork at a transaction hash gives that hash."""
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("//", "*", "/*")))
    match = _FORK.search(code)
    if not match:
        return None, None, []
    chain = match.group("dq") if match.group("dq") is not None else match.group("sq")
    arg = (match.group("arg") or "").strip()
    if _TX.fullmatch(arg):
        return chain or None, None, [arg.lower()]
    block = _BLOCK_ARG.match(arg)
    if not block:
        return chain or None, None, []
    number = int(block.group("n").replace("_", ""))
    if block.group("op"):
        number += int(block.group("k")) * (1 if block.group("op") == "+" else -1)
    return chain or None, str(number), []


# ------------------------------------------------------------------------------------------ checkout and merge


def read_checkout(path: Path, source: str, *, poc_index: Path | None = None) -> list[Report]:
    """Every incident of a DeFiHackLabs checkout: README.md and past/*/README.md, merged with the `@KeyInfo`
    headers of the PoC files they link (when src/test is there) and with the derived index at `poc_index`. A
    file's own header is newer than the index derived from it, so it wins for that PoC."""
    readme_paths = [path / "README.md", *sorted(path.glob("past/*/README.md"), reverse=True)]
    if not readme_paths[0].is_file():
        raise FeedFormatError(f"{path} is not a DeFiHackLabs checkout: no README.md", source=source)
    reports = [r for p in readme_paths for r in parse_readme(_read_text(p, source), source)]
    details = _checkout_headers(path, reports, source) if (path / "src" / "test").is_dir() else []
    if poc_index is not None:
        covered = {r.ref for r in details}
        details += [r for r in parse_poc_index(poc_index.read_bytes(), source) if r.ref not in covered]
    return merge_readme_and_index(reports, details)


def _read_text(path: Path, source: str) -> str:
    with path.open("rb") as fh:
        payload = fh.read(MAX_README_CHARS + 1)
    if len(payload) > MAX_README_CHARS:  # characters never outnumber bytes, so this is the same limit
        raise FeedFormatError(f"{path} is over the {MAX_README_CHARS:,} byte limit", source=source)
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FeedFormatError(f"{path} is not UTF-8 text: {exc}", source=source) from exc


def _checkout_headers(root: Path, reports: list[Report], source: str) -> list[Report]:
    out = []
    tests = (root / "src" / "test").resolve()
    for report in reports:
        for poc in _pocs_of(report):
            file = (root / poc).resolve()
            if not file.is_relative_to(tests) or not file.is_file():
                continue
            with file.open("rb") as fh:
                text = fh.read(HEADER_BYTES).decode("utf-8", errors="replace")
            entry = read_poc_header(text, poc, report)
            if entry is None:
                _log.debug("defihacklabs.header_missing", source=source, poc=poc)
                continue
            model = _IndexEntry.model_validate(entry)
            out.append(_index_report(model, entry, source, poc))
    return out


def merge_readme_and_index(readme_reports: list[Report], index_reports: list[Report]) -> list[Report]:
    """README incidents with the index's (or headers') view of each folded in: the same PoC path, else the same
    day and normalised name when that pair is unique on the README side. A merged Report keeps the README's
    name, day, attack type and loss (the index's loss where the README has none), the union of chains,
    addresses, tx hashes and references, and raw {"readme": …, "index": [entries]}. Index entries that match no
    README incident are appended as they are."""
    by_poc: dict[str, int] = {}
    by_name: dict[tuple[date | None, str], list[int]] = defaultdict(list)
    for i, report in enumerate(readme_reports):
        for poc in _pocs_of(report):
            by_poc.setdefault(poc, i)
        by_name[(report.day, _name_key(report.protocol))].append(i)
    matched: dict[int, list[Report]] = defaultdict(list)
    unmatched = []
    for other in index_reports:
        i = next((by_poc[p] for p in _pocs_of(other) if p in by_poc), None)
        if i is None and len(same := by_name.get((other.day, _name_key(other.protocol)), [])) == 1:
            i = same[0]
        (matched[i] if i is not None else unmatched).append(other)
    merged = [_merge(r, matched[i]) if i in matched else r for i, r in enumerate(readme_reports)]
    return merged + unmatched


def _merge(readme: Report, others: list[Report]) -> Report:
    every = [readme, *others]
    loss = readme if readme.loss_text else next((o for o in others if o.loss_text), readme)
    return replace(
        readme,
        chains=tuple(_dedupe(c for r in every for c in r.chains)),
        loss_usd=loss.loss_usd,
        loss_text=loss.loss_text,
        technique=readme.technique or next((o.technique for o in others if o.technique), None),
        addresses=_clean_addresses(a for r in every for a in r.addresses),
        tx_hashes=tuple(_dedupe(h for r in every for h in r.tx_hashes)),
        references=tuple(_dedupe(u for r in every for u in r.references)),
        raw={"readme": readme.raw, "index": [o.raw for o in others]},
    )


def _pocs_of(report: Report) -> list[str]:
    return [u.removeprefix(REPO_BLOB) for u in report.references if u.startswith(REPO_BLOB + "src/test/")]


def _name_key(name: str) -> str:
    return _NAME_KEY.sub("", name.lower())


def _clean_addresses(addresses: Iterable[RoleAddress]) -> tuple[RoleAddress, ...]:
    """Each address once per role, a known chain preferred to none, and `other` dropped where a role is known."""
    found = _dedupe(addresses)
    chained = {(a.address, a.role) for a in found if a.chain_id is not None}
    named = {a.address for a in found if a.role != "other"}
    return tuple(
        a for a in found
        if not (a.role == "other" and a.address in named)
        and not (a.chain_id is None and (a.address, a.role) in chained)
    )


def _dedupe(items: Iterable) -> list:
    return list(dict.fromkeys(items))
