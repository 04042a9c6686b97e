"""The chain registry: every way feeds write a chain finds its id, unknown names survive as given, and the table
refuses to contradict itself. The last tests run it over the real shared feed data (DefiLlama, DeFiHackLabs)."""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from structlog.testing import capture_logs

from kamiyo.chains.registry import (
    CHAINS,
    ChainTableError,
    KnownChain,
    by_id,
    chain_id_of,
    explorer_chain,
    resolve_chain,
    validate_table,
)
from kamiyo.errors import KamiyoError

FEEDS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "feeds"

# Chains that are not EVM chains: they have no EVM chain id, so they stay names.
NON_EVM = ("Solana", "Bitcoin", "Tron", "Aptos", "Sui", "Near", "Cosmos", "Terra", "Starknet")


def test_table_holds_at_least_60_chains_with_mainnets_before_testnets():
    assert len(CHAINS) >= 60
    flags = [chain.testnet for chain in CHAINS]
    first_testnet = flags.index(True)
    assert not any(flags[:first_testnet]) and all(flags[first_testnet:])
    assert sum(not flag for flag in flags) >= 60
    assert {11155111, 17000, 97, 80002, 84532, 421614, 11155420, 31337} <= {c.chain_id for c in CHAINS if c.testnet}


def test_every_entry_resolves_to_itself_by_each_of_its_names_hosts_and_id():
    for chain in CHAINS:
        assert by_id(chain.chain_id) is chain
        assert chain_id_of(str(chain.chain_id)) == chain.chain_id
        for name in (chain.slug, chain.name, *chain.aliases):
            assert chain_id_of(name) == chain.chain_id, name
        for host in chain.explorers:
            assert explorer_chain(host) == chain.chain_id, host
            assert chain_id_of(f"https://{host}/tx/0x01") == chain.chain_id, host


@pytest.mark.parametrize(
    ("text", "chain_id"),
    [
        *((name, 56) for name in ("BSC", "Binance", "Binance Smart Chain", "BNB Chain", "BNB", "bnb-smart-chain",
                                  "bsc", "bscscan.com", "BscScan.com")),
        *((name, 1) for name in ("Ethereum", "ETH", "Mainnet", "Ethereum Mainnet", "etherscan.io", "ethereum")),
        *((name, 137) for name in ("Polygon", "Matic", "Polygon PoS", "MATIC")),
        *((name, 43114) for name in ("Avax", "Avalanche", "Avalanche C-Chain", "avalanche-c-chain")),
        *((name, 42161) for name in ("Arbitrum", "Arbitrum One", "arbiscan.io")),
        *((name, 10) for name in ("OP Mainnet", "Optimism", "optimistic.etherscan.io")),
        ("Sonic", 146), ("sonicscan.org", 146), ("Fantom", 250), ("FTM", 250), ("Fantom Opera", 250),
        ("xDai", 100), ("Gnosis", 100), ("Gnosis Chain", 100),
        ("Klaytn", 8217), ("Kaia", 8217),
        ("Harmony One", 1666600000), ("Harmony", 1666600000),
        ("HECO", 128), ("Huobi ECO Chain", 128),
        ("zksync era", 324), ("zkSync", 324), ("zksync", 324), ("zkSync Era", 324),
        ("Polygon zkEVM", 1101), ("polygon_zkevm", 1101), ("zkevm.polygonscan.com", 1101),
        ("Arbitrum Nova", 42170), ("nova.arbiscan.io", 42170),
        ("Moonriver", 1285), ("moonriver.moonscan.io", 1285), ("moonscan.io", 1284),
        ("Sei", 1329), ("Sei EVM", 1329), ("Mantle", 5000), ("mantlescan.info", 5000),
        ("Ronin", 2020), ("Ronin Network", 2020), ("OKC", 66), ("OKX Chain", 66),
        ("B² Network", 223), ("B2 Network", 223), ("opBNB", 204), ("Hyperliquid", 999), ("HyperEVM", 999),
        ("Anvil", 31337), ("hardhat", 31337), ("Sepolia", 11155111), ("BSC Testnet", 97),
        ("56", 56), (" 1 ", 1), ("8453", 8453),
    ],
)
def test_names_aliases_and_hosts_feeds_use_resolve(text, chain_id):
    assert chain_id_of(text) == chain_id
    assert resolve_chain(text) == chain_id


def test_case_spaces_dashes_underscores_and_dots_are_ignored():
    spellings = ("BNB Chain", "bnb-chain", "bnbchain", "BNB_CHAIN", "bnb.chain", "  Bnb  Chain ")
    assert {chain_id_of(text) for text in spellings} == {56}


def test_a_generic_trailing_word_is_dropped_only_when_the_whole_name_is_unknown():
    assert chain_id_of("BSC Mainnet") == 56
    assert chain_id_of("Sonic Network") == 146
    assert chain_id_of("Core Chain") == 1116
    assert chain_id_of("Kava EVM") == 2222
    assert chain_id_of("Arbitrum Nova") == 42170  # not Arbitrum One
    for word in ("Chain", "Network", "EVM", "Solana Mainnet", "Tron Network"):
        assert chain_id_of(word) is None, word


def test_sonic_is_not_fantom():
    assert chain_id_of("Sonic") == 146 and chain_id_of("Fantom") == 250
    assert by_id(146).name == "Sonic" and "Sonic" not in by_id(250).aliases


def test_explorer_subdomains_belong_to_their_own_chain():
    assert explorer_chain("optimistic.etherscan.io") == 10
    assert explorer_chain("sepolia.etherscan.io") == 11155111
    assert explorer_chain("testnet.bscscan.com") == 97
    assert explorer_chain("https://sepolia.basescan.org/address/0xabc") == 84532
    assert explorer_chain("https://bscscan.com/tx/0xabc") == 56
    assert chain_id_of("https://bscscan.com/tx/0xabc") == 56
    assert explorer_chain("https://www.etherscan.io/address/0xabc#code") == 1
    assert explorer_chain("HTTPS://ETHERSCAN.IO:443/tx/0x01") == 1
    assert explorer_chain("etherscan.io/tx/0x01") == 1
    assert explorer_chain("api-sepolia.etherscan.io") == 11155111
    assert explorer_chain("api-optimistic.etherscan.io") == 10
    assert explorer_chain("api.bscscan.com") == 56


def test_only_hosts_count_for_explorer_chain_and_look_alikes_do_not_match():
    assert explorer_chain("Ethereum") is None
    assert explorer_chain("https://etherscan.io.attacker.example/tx/0x01") is None
    assert explorer_chain("https://fake-etherscan.io/tx/0x01") is None
    assert explorer_chain("https://explorer.phalcon.xyz/tx/bsc/0x01") is None  # multi-chain tool
    assert explorer_chain("io") is None and explorer_chain("") is None and explorer_chain("http://[::1") is None
    assert chain_id_of("https://api.zan.top/bsc-mainnet") is None  # an RPC URL is not an explorer


def test_decimal_ids_count_only_for_chains_in_the_table():
    assert chain_id_of("56") == 56
    assert chain_id_of("987654321") is None
    assert chain_id_of("9" * 10_000) is None  # hostile input: no ValueError from int()'s digit limit
    assert chain_id_of("") is None and chain_id_of("   ") is None


def test_unknown_names_are_kept_as_given_and_logged_once_per_process():
    name = f"Nowhere {uuid.uuid4().hex}"
    with capture_logs() as logs:
        assert resolve_chain(f"  {name} ") == name
        assert resolve_chain(name) == name
        assert resolve_chain(name.upper().replace(" ", "-")) == name.upper().replace(" ", "-")  # same name
        assert resolve_chain("BSC") == 56
    unknown = [entry for entry in logs if entry["event"] == "chains.unknown_name"]
    assert [(entry["name"], entry["log_level"]) for entry in unknown] == [(name, "warning")]


def test_non_evm_chains_stay_unknown():
    for name in NON_EVM:
        assert chain_id_of(name) is None, name


def _chain(chain_id, slug, name, aliases=(), explorers=()):
    return KnownChain(chain_id, slug, name, tuple(aliases), tuple(explorers))


def test_the_real_table_validates():
    validate_table(CHAINS)


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ((_chain(1, "one", "One"), _chain(1, "uno", "Uno")), "chain id 1 appears twice"),
        ((_chain(1, "one", "One"), _chain(2, "one", "Two")), "slug 'one' belongs to both 1 and 2"),
        ((_chain(56, "bsc", "BNB Chain"), _chain(204, "opbnb", "opBNB", ["bnb-chain"])), "'bnb-chain'"),
        ((_chain(1, "one", "One", explorers=["scan.example"]), _chain(2, "two", "Two", explorers=["scan.example"])),
         "explorer host 'scan.example' belongs to both 1 and 2"),
        ((_chain(1, "One Chain", "One"),), "slug 'One Chain'"),
        ((_chain(1, "one", "One", ["42"]),), "alias '42'"),
        ((_chain(1, "one", "One", explorers=["https://scan.example/"]),), "explorer 'https://scan.example/'"),
    ],
)
def test_validation_rejects_a_contradictory_table(table, problem):
    with pytest.raises(ChainTableError) as caught:
        validate_table(table)
    assert problem in str(caught.value)
    assert isinstance(caught.value, KamiyoError) and isinstance(caught.value, ValueError)


def test_validation_lists_every_problem_at_once():
    table = (
        _chain(1, "one", "One", explorers=["a.example"]),
        _chain(1, "uno", "Uno"),
        _chain(2, "one", "Two", explorers=["a.example"]),
    )
    with pytest.raises(ChainTableError) as caught:
        validate_table(table)
    problems = caught.value.context["problems"]
    assert len(problems) == 3  # the id, the slug and the host
    assert all(problem in str(caught.value) for problem in problems)


# --- the shared feed data -------------------------------------------------------------------------------------

_TOOLS = {  # multi-chain tracers: the chain is in the path or the page, never in the host
    "app.blocksec.com", "explorer.phalcon.xyz", "phalcon.xyz", "phalcon.blocksec.com", "tools.blocksec.com",
    "versatile.blocksecteam.com", "skylens.certik.com", "dashboard.tenderly.co",
}
_TYPOS = {"getherscan.io"}  # past/2023/README.md links "https://getherscan.io/tx/0x1106…"
_LINK = re.compile(r"https?://[^\s)\]\"'<>`]+/(?:tx|address|token|block)/[^\s)\]\"'<>`]*")


def _load(name: str):
    path = FEEDS / name
    if not path.exists():
        pytest.skip(f"shared feed data not found at {path}")
    return path


@pytest.fixture(scope="module")
def defillama() -> list[dict]:
    return json.loads(_load("defillama-hacks-subset.json").read_text())


@pytest.fixture(scope="module")
def poc_index() -> list[dict]:
    return json.loads(_load("defihacklabs/poc-index.derived.json").read_text())


@pytest.fixture(scope="module")
def readme_hosts() -> set[str]:
    root = _load("defihacklabs")
    text = "\n".join(path.read_text() for path in sorted(root.rglob("README.md")))
    return {urlsplit(link).hostname for link in _LINK.findall(text)}


def test_every_chain_name_in_the_shared_feeds_resolves_except_non_evm_ones(defillama, poc_index):
    names = {name for record in defillama for name in record["chain"]}
    fork_chains = {record["fork_chain"] for record in poc_index if record.get("fork_chain")}
    rpc_urls = {value for value in fork_chains if "://" in value}
    names |= fork_chains - rpc_urls
    unresolved = sorted(name for name in names if chain_id_of(name) is None)
    print("chain names that do not resolve:", unresolved)
    assert unresolved == ["Solana"]
    assert set(unresolved) <= set(NON_EVM)
    assert rpc_urls == {"https://api.zan.top/bsc-mainnet"}  # a fork from an RPC URL, not a chain name
    assert {chain_id_of(name) for name in ("bsc", "mainnet", "arbitrum", "base", "sei", "zksync")} == {
        56, 1, 42161, 8453, 1329, 324}


def test_every_explorer_host_in_the_shared_feeds_resolves_except_multi_chain_tools(poc_index, readme_hosts):
    hosts = readme_hosts | {host for record in poc_index for host in record.get("explorers", ())}
    unresolved = sorted(host for host in hosts if explorer_chain(host) is None)
    print("explorer hosts that do not resolve:", unresolved)
    assert set(unresolved) == _TOOLS | _TYPOS
    assert len(hosts) - len(unresolved) >= 15


def test_explorer_hosts_agree_with_the_chains_the_pocs_fork(poc_index):
    """A host cited by PoCs must map to the chain most of those PoCs fork: a wrong host mapping shows up here
    even though single incidents legitimately cite another chain's explorer (multi-chain attacks)."""
    forks: dict[str, Counter] = {}
    for record in poc_index:
        fork = chain_id_of(record.get("fork_chain") or "")
        for host in record.get("explorers", ()):
            if fork is not None and explorer_chain(host) is not None:
                forks.setdefault(host, Counter())[fork] += 1
    assert len(forks) >= 12
    for host, counts in forks.items():
        top = max(counts.values())
        assert counts[explorer_chain(host)] == top, (host, counts)
