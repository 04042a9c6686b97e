"""The well-known EVM chains: id, slug, display name, the names exploit feeds use for them, explorer hosts.

Feeds write chains every way there is ("BSC", "Binance", "bnb-smart-chain", "https://bscscan.com/tx/0x…"); this
module turns those into chain ids. It must not guess: a name it does not know stays a name (`resolve_chain` hands
it back as given and logs it once), it is never dropped nor matched fuzzily to a similar-looking chain. It holds facts
only and talks to no network; RPC endpoints belong in configuration, not here.

The table below is checked when the module is imported (ids, slugs, names and hosts each belong to one chain),
so a mistake in it fails every test and every process start instead of mis-attributing an incident later.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from kamiyo import log
from kamiyo.errors import KamiyoError


@dataclass(frozen=True, slots=True)
class KnownChain:
    chain_id: int
    slug: str
    name: str
    aliases: tuple[str, ...]
    explorers: tuple[str, ...]  # hosts
    testnet: bool = False


class ChainTableError(KamiyoError, ValueError):
    """The chain table contradicts itself; `context["problems"]` lists every mistake found, not just the first."""


def _c(chain_id: int, slug: str, name: str, aliases: str = "", explorers: str = "",
       testnet: bool = False) -> KnownChain:
    """One row: aliases separated by "|" (they contain spaces), explorer hosts by spaces."""
    names = tuple(alias for alias in aliases.split("|") if alias)
    return KnownChain(chain_id, slug, name, names, tuple(explorers.split()), testnet)


# Mainnets first, then testnets. Aliases need not repeat what normalisation already covers (case, spaces,
# dashes, underscores, dots), nor a trailing "Mainnet"/"Network"/"Chain"/"EVM" (see `chain_id_of`).
CHAINS: tuple[KnownChain, ...] = (
    _c(1, "ethereum", "Ethereum", "ETH|Mainnet|Ethereum Mainnet|Homestead|Ether",
       "etherscan.io etherscan.com eth.blockscout.com ethplorer.io"),
    _c(56, "bsc", "BNB Smart Chain", "BSC|Binance|Binance Smart Chain|BNB Chain|BNB", "bscscan.com bsctrace.com"),
    _c(137, "polygon", "Polygon", "Matic|Polygon PoS|POL", "polygonscan.com"),
    _c(42161, "arbitrum", "Arbitrum One", "Arbitrum|Arb", "arbiscan.io arbitrum.blockscout.com"),
    _c(42170, "arbitrum-nova", "Arbitrum Nova", "Arb Nova", "nova.arbiscan.io nova-explorer.arbitrum.io"),
    _c(10, "optimism", "OP Mainnet", "Optimism|OP", "optimistic.etherscan.io optimism.blockscout.com"),
    _c(8453, "base", "Base", "", "basescan.org base.blockscout.com"),
    _c(43114, "avalanche", "Avalanche C-Chain", "Avax|Avalanche|AVAX C-Chain|Avalanche C",
       "snowtrace.io snowscan.xyz avascan.info"),
    _c(250, "fantom", "Fantom", "FTM|Fantom Opera|Opera", "ftmscan.com explorer.fantom.network"),
    _c(100, "gnosis", "Gnosis", "xDai", "gnosisscan.io gnosis.blockscout.com"),
    _c(25, "cronos", "Cronos", "CRO", "cronoscan.com explorer.cronos.org"),
    _c(42220, "celo", "Celo", "", "celoscan.io explorer.celo.org"),
    _c(1284, "moonbeam", "Moonbeam", "GLMR", "moonscan.io"),
    _c(1285, "moonriver", "Moonriver", "MOVR", "moonriver.moonscan.io"),
    _c(1666600000, "harmony", "Harmony", "Harmony One", "explorer.harmony.one"),
    _c(1313161554, "aurora", "Aurora", "", "explorer.aurora.dev aurorascan.dev"),
    _c(1088, "metis", "Metis Andromeda", "Metis", "andromeda-explorer.metis.io explorer.metis.io"),
    _c(288, "boba", "Boba Network", "Boba|Boba ETH", "bobascan.com"),
    _c(2222, "kava", "Kava", "", "kavascan.com explorer.kava.io"),
    _c(8217, "kaia", "Kaia", "Klaytn|Klaytn Cypress|Cypress",
       "kaiascan.io kaiascope.com klaytnscope.com scope.klaytn.com"),
    _c(59144, "linea", "Linea", "", "lineascan.build explorer.linea.build"),
    _c(534352, "scroll", "Scroll", "", "scrollscan.com"),
    _c(324, "zksync-era", "zkSync Era", "zkSync", "era.zksync.network explorer.zksync.io"),
    _c(1101, "polygon-zkevm", "Polygon zkEVM", "", "zkevm.polygonscan.com"),
    _c(5000, "mantle", "Mantle", "", "explorer.mantle.xyz mantlescan.xyz mantlescan.info"),
    _c(81457, "blast", "Blast", "", "blastscan.io blastexplorer.io"),
    _c(34443, "mode", "Mode", "", "explorer.mode.network modescan.io"),
    _c(169, "manta-pacific", "Manta Pacific", "Manta", "pacific-explorer.manta.network"),
    _c(146, "sonic", "Sonic", "", "sonicscan.org"),
    _c(80094, "berachain", "Berachain", "Bera", "berascan.com"),
    _c(1329, "sei", "Sei EVM", "Sei", "seitrace.com"),
    _c(122, "fuse", "Fuse", "", "explorer.fuse.io"),
    _c(9001, "evmos", "Evmos", "", "escan.live"),
    _c(128, "heco", "Heco", "Huobi ECO Chain|Huobi", "hecoinfo.com"),
    _c(66, "okc", "OKC", "OKX Chain|OKExChain|OEC|OKT Chain|OKChain"),
    _c(196, "x-layer", "X Layer"),
    _c(204, "opbnb", "opBNB", "", "opbnb.bscscan.com opbnbscan.com"),
    _c(1116, "core", "Core", "Core DAO|CoreDAO", "scan.coredao.org"),
    _c(1030, "conflux-espace", "Conflux eSpace", "Conflux", "evm.confluxscan.io evm.confluxscan.net"),
    _c(40, "telos", "Telos EVM", "Telos", "teloscan.io"),
    _c(592, "astar", "Astar", "", "astar.blockscout.com"),
    _c(42262, "oasis-emerald", "Oasis Emerald", "Emerald", "explorer.emerald.oasis.dev"),
    _c(106, "velas", "Velas", "", "evmexplorer.velas.com"),
    _c(2001, "milkomeda-c1", "Milkomeda C1", "Milkomeda", "explorer-mainnet-cardano-evm.c1.milkomeda.com"),
    _c(7700, "canto", "Canto", "", "tuber.build"),
    _c(2000, "dogechain", "Dogechain", "", "explorer.dogechain.dog"),
    _c(7777777, "zora", "Zora", "", "explorer.zora.energy"),
    _c(167000, "taiko", "Taiko", "Taiko Alethia", "taikoscan.io"),
    _c(252, "fraxtal", "Fraxtal", "", "fraxscan.com"),
    _c(1625, "gravity", "Gravity Alpha", "Gravity", "explorer.gravity.xyz"),
    _c(130, "unichain", "Unichain", "", "uniscan.xyz"),
    _c(2741, "abstract", "Abstract", "", "abscan.org"),
    _c(57073, "ink", "Ink", "", "explorer.inkonchain.com"),
    _c(480, "world-chain", "World Chain", "", "worldscan.org"),
    _c(1868, "soneium", "Soneium", "", "soneium.blockscout.com"),
    _c(30, "rootstock", "Rootstock", "RSK", "explorer.rsk.co rootstock.blockscout.com"),
    _c(14, "flare", "Flare", "", "flare-explorer.flare.network flarescan.com"),
    _c(19, "songbird", "Songbird", "", "songbird-explorer.flare.network"),
    _c(4689, "iotex", "IoTeX", "", "iotexscan.io"),
    _c(108, "thundercore", "ThunderCore"),
    _c(109, "shibarium", "Shibarium", "", "shibariumscan.io"),
    _c(32520, "bitgert", "Bitgert", "Brise", "brisescan.com"),
    _c(10001, "ethereumpow", "EthereumPoW", "ETHW|ETHPoW"),
    _c(61, "ethereum-classic", "Ethereum Classic", "ETC", "etc.blockscout.com"),
    _c(2020, "ronin", "Ronin", "", "app.roninchain.com"),
    _c(999, "hyperevm", "Hyperliquid EVM", "HyperEVM|Hyperliquid", "hyperevmscan.io"),
    _c(4200, "merlin", "Merlin", "", "scan.merlinchain.io"),
    _c(60808, "bob", "BOB", "Build on Bitcoin", "explorer.gobob.xyz"),
    _c(223, "b2-network", "B² Network", "BSquared|B Squared", "explorer.bsquared.network"),
    _c(200901, "bitlayer", "Bitlayer", "", "btrscan.com"),
    _c(1135, "lisk", "Lisk", "", "blockscout.lisk.com"),
    _c(747474, "katana", "Katana"),
    _c(9745, "plasma", "Plasma"),
    _c(143, "monad", "Monad", "", "monadscan.com"),
    _c(321, "kcc", "KCC", "KuCoin Community Chain|KuCoin", "explorer.kcc.io scan.kcc.io"),
    _c(82, "meter", "Meter", "Meter.io", "scan.meter.io"),
    _c(1111, "wemix", "WEMIX3.0", "Wemix", "explorer.wemix.com"),
    _c(57, "syscoin", "Syscoin NEVM", "Syscoin", "explorer.syscoin.org"),
    _c(10000, "smartbch", "smartBCH", "Smart Bitcoin Cash"),
    _c(248, "oasys", "Oasys", "", "explorer.oasys.games"),
    _c(7000, "zetachain", "ZetaChain", "Zeta"),
    _c(33139, "apechain", "ApeChain", "", "apescan.io"),
    _c(747, "flow-evm", "Flow EVM", "", "evm.flowscan.io"),
    _c(13371, "immutable-zkevm", "Immutable zkEVM", "", "explorer.immutable.com"),
    _c(42793, "etherlink", "Etherlink", "", "explorer.etherlink.com"),
    _c(88888, "chiliz", "Chiliz Chain", "CHZ", "chiliscan.com"),
    _c(23294, "oasis-sapphire", "Oasis Sapphire", "Sapphire"),
    _c(314, "filecoin", "Filecoin", "FEVM", "filfox.info"),
    _c(48900, "zircuit", "Zircuit"),
    _c(20, "elastos", "Elastos Smart Chain", "Elastos|ESC", "esc.elastos.io"),
    _c(246, "energy-web", "Energy Web Chain", "EWC"),
    # testnets and local development chains
    _c(11155111, "sepolia", "Sepolia", "Ethereum Sepolia|Sepolia Testnet", "sepolia.etherscan.io", testnet=True),
    _c(17000, "holesky", "Holesky", "Ethereum Holesky|Holesky Testnet", "holesky.etherscan.io", testnet=True),
    _c(560048, "hoodi", "Hoodi", "Ethereum Hoodi|Hoodi Testnet", "hoodi.etherscan.io", testnet=True),
    _c(5, "goerli", "Goerli", "Ethereum Goerli|Goerli Testnet|Görli", "goerli.etherscan.io", testnet=True),
    _c(97, "bsc-testnet", "BNB Smart Chain Testnet", "BSC Testnet|BNB Testnet|Chapel", "testnet.bscscan.com",
       testnet=True),
    _c(80002, "polygon-amoy", "Polygon Amoy", "Amoy", "amoy.polygonscan.com", testnet=True),
    _c(84532, "base-sepolia", "Base Sepolia", "", "sepolia.basescan.org", testnet=True),
    _c(421614, "arbitrum-sepolia", "Arbitrum Sepolia", "", "sepolia.arbiscan.io", testnet=True),
    _c(11155420, "op-sepolia", "OP Sepolia", "Optimism Sepolia", "sepolia-optimism.etherscan.io", testnet=True),
    _c(43113, "avalanche-fuji", "Avalanche Fuji", "Fuji", "testnet.snowtrace.io testnet.snowscan.xyz", testnet=True),
    _c(31337, "local", "Local (Anvil/Hardhat)", "Anvil|Hardhat|Foundry|Localhost", testnet=True),
)

# Tried only after the whole text failed: "Sonic Network", "BSC Mainnet", "Kava EVM", "Core Chain" name the
# chain the rest names. Never applied to an empty remainder, so "Chain" alone stays unknown.
_GENERIC_SUFFIXES = ("mainnet", "network", "chain", "evm")
_SEPARATORS = re.compile(r"[\s\-_.]+")
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_HOST = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)+")
_HOSTLIKE = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)+(?::\d+)?(?:[/?#].*)?", re.IGNORECASE)
_DECIMAL = re.compile(r"[0-9]+")


def _key(text: str) -> str:
    """The form names are compared in: NFKC (so "B²" == "B2"), case-folded, without spaces, dashes, underscores,
    dots."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", text).casefold())


def _build(chains: Iterable[KnownChain]) -> tuple[dict[int, KnownChain], dict[str, int], dict[str, int]]:
    """The three lookups (by id, by name key, by explorer host), or ChainTableError listing every conflict."""
    by_id: dict[int, KnownChain] = {}
    by_key: dict[str, int] = {}  # slugs are names too, so two chains cannot share one
    by_host: dict[str, int] = {}
    problems: list[str] = []

    def claim(table: dict, key: str, chain_id: int, what: str) -> None:
        owner = table.setdefault(key, chain_id)
        if owner != chain_id:
            problems.append(f"{what} belongs to both {owner} and {chain_id}")

    for chain in chains:
        cid = chain.chain_id
        if isinstance(cid, bool) or not isinstance(cid, int) or cid <= 0:
            problems.append(f"chain id {cid!r} is not a positive integer")
        if cid in by_id:
            problems.append(f"chain id {cid} appears twice ({by_id[cid].slug!r} and {chain.slug!r})")
        by_id.setdefault(cid, chain)
        if not _SLUG.fullmatch(chain.slug):
            problems.append(f"slug {chain.slug!r} of {cid} is not lowercase letters, digits and dashes")
        for kind, name in (("slug", chain.slug), ("name", chain.name), *(("alias", a) for a in chain.aliases)):
            key = _key(name)
            if not key or _DECIMAL.fullmatch(key):
                problems.append(f"{kind} {name!r} of {cid} is empty or a number once normalised")
                continue
            claim(by_key, key, cid, f"{kind} {name!r}" + ("" if key == name else f" (as {key!r})"))
        for host in chain.explorers:
            if not _HOST.fullmatch(host):
                problems.append(f"explorer {host!r} of {cid} is not a lowercase host name")
            claim(by_host, host, cid, f"explorer host {host!r}")
    if problems:
        raise ChainTableError(f"chain table: {'; '.join(problems)}", problems=problems)
    return by_id, by_key, by_host


def validate_table(chains: Iterable[KnownChain]) -> None:
    """Raise ChainTableError if `chains` gives an id, slug, normalised name or explorer host to two chains."""
    _build(chains)


_BY_ID, _BY_KEY, _BY_HOST = _build(CHAINS)

_log = log.get("kamiyo.chains")
_reported: set[str] = set()
_reported_lock = threading.Lock()
_REPORTED_MAX = 10_000  # feeds are untrusted: past this many distinct names, log without remembering


def by_id(chain_id: int) -> KnownChain | None:
    return _BY_ID.get(chain_id)


def explorer_chain(url: str) -> int | None:
    """The chain of an explorer URL or bare host ("https://bscscan.com/tx/0x…", "sepolia.etherscan.io").

    The longest registered suffix of the host wins, so "optimistic.etherscan.io" is OP Mainnet, not Ethereum,
    and "www." or an unlisted subdomain of a chain's own explorer still finds that chain. An Etherscan-style
    API host ("api-sepolia.etherscan.io") counts as the explorer it serves. Multi-chain tools (Phalcon,
    Tenderly, Blockscout's own root) are deliberately absent: their host says nothing about the chain."""
    text = url.strip()
    if "://" not in text:
        if not _HOSTLIKE.fullmatch(text):
            return None
        text = "//" + text
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return None
    if not host:
        return None
    labels = host.rstrip(".").split(".")
    if labels[0].startswith("api-"):
        labels[0] = labels[0].removeprefix("api-")
    for start in range(len(labels) - 1):  # never a bare top-level domain
        chain_id = _BY_HOST.get(".".join(labels[start:]))
        if chain_id is not None:
            return chain_id
    return None


def chain_id_of(text: str) -> int | None:
    """The chain a name, alias, slug, decimal chain id, explorer host or explorer URL stands for; None if unknown.

    Names compare ignoring case, spaces, dashes, underscores and dots ("BNB Chain" == "bnb-chain" == "bnbchain");
    a trailing "Mainnet", "Network", "Chain" or "EVM" is dropped if the whole name is not known. A decimal id
    counts only for a chain in the table. A URL is looked at only as an explorer URL."""
    text = text.strip()
    if not text:
        return None
    if _DECIMAL.fullmatch(text):  # bounded: int() of thousands of digits is slow, and refused since 3.11
        return int(text) if len(text) <= 20 and int(text) in _BY_ID else None
    if "://" in text:
        return explorer_chain(text)
    if _HOSTLIKE.fullmatch(text):
        found = explorer_chain(text)
        if found is not None:
            return found
    key = _key(text)
    while key:
        if key in _BY_KEY:
            return _BY_KEY[key]
        key = next((key.removesuffix(end) for end in _GENERIC_SUFFIXES if key.endswith(end)), "")
    return None


def resolve_chain(text: str) -> int | str:
    """The chain id where known, else the text as given (stripped). Each unknown name is logged once per
    process (`chains.unknown_name`; spellings that compare equal count as one), so an alias worth adding shows
    up without flooding the log. An empty text is returned as "" and not logged."""
    found = chain_id_of(text)
    if found is not None:
        return found
    name = text.strip()
    if name:
        key = _key(name)
        with _reported_lock:
            first = key not in _reported
            if first and len(_reported) < _REPORTED_MAX:
                _reported.add(key)
        if first:
            _log.warning("chains.unknown_name", name=name)
    return name
