"""TOML configuration → validated, immutable settings. Pydantic is used here, at the edge, and nowhere else.

Strict by design: unknown keys are rejected, every problem is reported at once with its key path
(`chains[1].rpc[0]`), and nothing falls back to a default silently. Secrets are written `{ env = "NAME" }` or
`{ file = "PATH" }` wherever a string may hold one (RPC URLs carry API keys, database URLs passwords); they are
resolved at load time and never appear in a repr or a log line.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .errors import KamiyoError

DEFAULT_PATH = Path("/etc/kamiyo/kamiyo.toml")
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\Z")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}\Z")
_KEY_ID = re.compile(r"key_[0-9a-f]{16}\Z")  # kamiyo.api.keys makes ids of this shape


class ConfigError(KamiyoError):
    """The configuration cannot be used. `problems` lists every one, each as "key.path: what is wrong"."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: {len(problems)} problem(s) in the configuration", source=source)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join([self.message, *(f"  {p}" for p in self.problems)])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class _SecretRef(_Strict):
    env: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> _SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError('a secret is written { env = "NAME" } or { file = "PATH" }, exactly one of them')
        return self

    def resolve(self) -> str:
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise ValueError(f"environment variable {self.env} is not set")
            return value.strip()
        try:
            return Path(self.file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read secret file {self.file}: {exc.strerror}") from exc


def _resolve(value: Any) -> Any:
    if isinstance(value, dict):
        return _SecretRef.model_validate(value).resolve()
    return value


def _url_of(*schemes: str):
    def check(url: str) -> str:
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in schemes:
            raise ValueError(f"expected a {' or '.join(s + '://' for s in schemes)} URL")
        return url

    return AfterValidator(check)


# A string that may be written as a secret reference; URLs hold API keys, so they never show in a repr.
MaybeSecret = Annotated[str, BeforeValidator(_resolve), Field(min_length=1)]
HttpUrl = Annotated[MaybeSecret, _url_of("http", "https")]
WsUrl = Annotated[MaybeSecret, _url_of("ws", "wss")]


class StorageSettings(_Strict):
    url: MaybeSecret = Field(repr=False)

    @field_validator("url")
    @classmethod
    def _known_backend(cls, url: str) -> str:
        if not url.startswith(("sqlite://", "sqlite+aiosqlite://", "postgresql://", "postgresql+asyncpg://")):
            raise ValueError("expected a sqlite:/// or postgresql:// URL")
        return url

    @property
    def async_url(self) -> str:
        """The URL SQLAlchemy's async engine takes: plain sqlite:// and postgresql:// get their async drivers."""
        if self.url.startswith("sqlite://"):
            return "sqlite+aiosqlite://" + self.url.removeprefix("sqlite://")
        if self.url.startswith("postgresql://"):
            return "postgresql+asyncpg://" + self.url.removeprefix("postgresql://")
        return self.url


class ChainSettings(_Strict):
    name: str
    chain_id: Annotated[int, Field(gt=0)]
    rpc: list[HttpUrl] = Field(min_length=1, repr=False)
    ws: list[WsUrl] = Field(default=[], repr=False)
    confirmations: Annotated[int, Field(ge=0)] | Literal["safe", "finalized"] = 0
    max_reorg_depth: Annotated[int, Field(ge=1, le=10_000)] = 64
    requests_per_second: Annotated[float, Field(gt=0)] = 50.0
    start_block: Annotated[int, Field(ge=0)] | Literal["latest"] = "latest"
    poll_interval: Annotated[float, Field(gt=0, le=3600)] = 2.0
    # where traces come from: "auto" probes trace_block, then debug_traceBlockByNumber (call tracer); naming one
    # uses only it; "none" reads receipts (top-level deployments only; analyzers needing traces are skipped)
    traces: Literal["auto", "trace_block", "debug_trace", "none"] = "auto"

    @field_validator("name")
    @classmethod
    def _slug(cls, name: str) -> str:
        if not _SLUG.match(name):
            raise ValueError("a chain name is a lowercase slug: letters, digits and dashes")
        return name


class DaemonSettings(_Strict):
    shutdown_grace: Annotated[float, Field(gt=0, le=600)] = 10.0  # seconds to finish the open block on SIGTERM


class MetricsSettings(_Strict):
    listen: str  # "host:port" for Prometheus' /metrics

    @field_validator("listen")
    @classmethod
    def _host_port(cls, listen: str) -> str:
        host, sep, port = listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError('expected "host:port", e.g. "127.0.0.1:9464"')
        return listen

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class _FeedBase(_Strict):
    name: str
    interval: Annotated[float, Field(ge=60, le=7 * 86400)] = 3600.0  # seconds between pulls inside `kamiyo run`
    timeout: Annotated[float, Field(gt=0, le=600)] = 60.0
    max_bytes: Annotated[int, Field(gt=0, le=1 << 30)] = 64 << 20  # a larger answer is refused, not truncated

    @field_validator("name")
    @classmethod
    def _slug(cls, name: str) -> str:
        if not _SLUG.match(name):
            raise ValueError("a feed name is a lowercase slug: letters, digits and dashes")
        return name


FeedUrl = Annotated[MaybeSecret, _url_of("http", "https")]


class _UrlOrPath(_FeedBase):
    url: FeedUrl | None = Field(default=None, repr=False)
    path: str | None = None  # a local file or checkout instead of a URL

    @model_validator(mode="after")
    def _one_location(self):
        if (self.url is None) == (self.path is None):
            raise ValueError("give exactly one of url and path")
        return self


class DefiLlamaFeed(_FeedBase):
    """DeFiLlama's hacks list. The paid API puts the key in the path: write `{api_key}` in the URL."""

    type: Literal["defillama"]
    url: FeedUrl = Field(default="https://api.llama.fi/hacks", repr=False)
    api_key: MaybeSecret | None = Field(default=None, repr=False)

    @model_validator(mode="after")
    def _key_placement(self):
        if ("{api_key}" in self.url) != (self.api_key is not None):
            raise ValueError("an api_key needs a {api_key} placeholder in url, and the placeholder needs the key")
        return self


class DefiHackLabsFeed(_UrlOrPath):
    type: Literal["defihacklabs"]
    poc_index: str | None = None  # the derived index of PoC headers, where the checkout has no PoC files


class RssFeed(_UrlOrPath):
    type: Literal["rss"]


class OsvPackage(_Strict):
    ecosystem: str  # as OSV names them: "npm", "PyPI", "crates.io", "Go", …
    name: str


class OsvFeed(_FeedBase):
    """OSV advisories: one record or a list at `url` / `path`, or the advisories of `packages`, asked of the OSV
    query API (`url` then defaults to https://api.osv.dev/v1/query)."""

    type: Literal["osv"]
    url: FeedUrl | None = Field(default=None, repr=False)
    path: str | None = None
    packages: list[OsvPackage] = []

    @model_validator(mode="after")
    def _one_location(self):
        if self.packages and self.path is not None:
            raise ValueError("packages are asked of the OSV API: give url (or nothing), not path")
        if self.packages and self.url is None:
            return self.model_copy(update={"url": OSV_QUERY_URL})
        if not self.packages and (self.url is None) == (self.path is None):
            raise ValueError("give exactly one of url and path, or packages")
        return self


OSV_QUERY_URL = "https://api.osv.dev/v1/query"


FeedSettings = Annotated[DefiLlamaFeed | DefiHackLabsFeed | RssFeed | OsvFeed, Field(discriminator="type")]


class WatchSettings(_Strict):
    """An address the analyzers are told to watch (`[[watch]]`): on a configured chain, by its name."""

    chain: str
    address: str  # stored lowercase
    label: Annotated[str, Field(min_length=1)] | None = None

    @field_validator("address")
    @classmethod
    def _address(cls, address: str) -> str:
        if not _ADDRESS.match(address):
            raise ValueError("expected an address: 0x and 40 hex digits")
        return address.lower()


class ApiSettings(_Strict):
    """`[api]`: the HTTP / WebSocket API served by `kamiyo run` (and `kamiyo api`, read-only)."""

    listen: str  # "host:port"
    # what a key created without --tier gets; tiers are defined in kamiyo/api/keys.py
    default_tier: Literal["free", "pro", "team", "enterprise"] = "free"
    cors_origins: list[str] = []

    @field_validator("listen")
    @classmethod
    def _host_port(cls, listen: str) -> str:
        host, sep, port = listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError('expected "host:port", e.g. "127.0.0.1:8080"')
        return listen

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class SuppressionSettings(_Strict):
    """`[[alerts.suppress]]`: known noise, silenced on every channel: one finding by fingerprint, or an
    analyzer's findings about (or naming) one address."""

    fingerprint: Annotated[str, Field(min_length=1, max_length=66)] | None = None
    kind: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    address: str | None = None  # lowercase; the finding's subject or any address its evidence names
    reason: Annotated[str, Field(min_length=1, max_length=500)]

    @field_validator("address")
    @classmethod
    def _address(cls, address: str | None) -> str | None:
        if address is not None and not _ADDRESS.match(address):
            raise ValueError("expected 0x and 40 hex digits")
        return address.lower() if address else address

    @model_validator(mode="after")
    def _one_way(self) -> SuppressionSettings:
        by_fingerprint = self.fingerprint is not None
        by_kind = self.kind is not None and self.address is not None
        if by_fingerprint == by_kind or (by_fingerprint and (self.kind or self.address)):
            raise ValueError("a suppression names a fingerprint, or a kind and an address, not both")
        return self


class AlertSettings(_Strict):
    """`[alerts]`: how deliveries are retried, and which non-public networks webhooks may reach."""

    # networks a channel URL may resolve into although they are not public (loopback, private, link-local, cloud
    # metadata are refused otherwise): e.g. ["127.0.0.0/8"] for a receiver on the same host
    allow_networks: list[str] = []
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 12  # then the delivery is a dead letter
    backoff_seconds: Annotated[float, Field(gt=0, le=3600)] = 2.0  # the first retry's delay, doubled each time
    max_backoff_seconds: Annotated[float, Field(gt=0, le=86_400)] = 900.0
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0
    cooldown_seconds: Annotated[float, Field(ge=0, le=86_400)] = 300.0  # the same finding and event again: silent
    suppress: list[SuppressionSettings] = []
    # accounts whose own transactions are known good (a team's keeper, a known arbitrage bot): a finding whose
    # transaction one of them sent, or that labels only them as attacker, is silenced
    allowlist: list[str] = []

    @field_validator("allowlist")
    @classmethod
    def _addresses(cls, addresses: list[str]) -> list[str]:
        bad = [a for a in addresses if not _ADDRESS.match(a)]
        if bad:
            raise ValueError(f"not an address (0x and 40 hex digits): {', '.join(map(repr, bad))}")
        return [a.lower() for a in addresses]

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, networks: list[str]) -> list[str]:
        from .alerts.network import NetworkPolicy  # the one reading of networks, here and when sending

        NetworkPolicy.from_strings(networks)
        return networks


class _Channel(_Strict):
    """What every channel has: a unique name, and which findings it takes."""

    name: str
    min_severity: Literal["critical", "high", "medium", "low", "info"] = "low"
    kinds: list[str] = []  # finding kinds to send; empty: every kind
    rate_per_minute: Annotated[float, Field(gt=0, le=60_000)] = 60.0
    watchlists_only: bool = False  # true: only the findings a watchlist routes here, not every finding
    # API keys (their ids, key_…) whose watchlists may route findings here; the operator's own watchlists (the
    # CLI's) may name every channel. A key without a grant registers its own webhooks (POST /v1/webhooks).
    keys: list[str] = []

    @field_validator("keys")
    @classmethod
    def _key_ids(cls, ids: list[str]) -> list[str]:
        bad = [i for i in ids if not _KEY_ID.match(i)]
        if bad:
            raise ValueError(f"not an API key id (key_ and 16 hex digits, see `kamiyo apikey list`): "
                             f"{', '.join(map(repr, bad))}")
        return ids


class WebhookChannel(_Channel):
    """A generic webhook: JSON body, HMAC-SHA256 signature over timestamp + "." + body with the channel's secret."""

    type: Literal["webhook"]
    url: HttpUrl = Field(repr=False)
    secret: MaybeSecret = Field(repr=False)


class SlackChannel(_Channel):
    """A Slack incoming webhook (https://hooks.slack.com/services/…): a message with the finding's summary."""

    type: Literal["slack"]
    url: HttpUrl = Field(repr=False)


class DiscordChannel(_Channel):
    """A Discord webhook (https://discord.com/api/webhooks/…): an embed with the finding's summary."""

    type: Literal["discord"]
    url: HttpUrl = Field(repr=False)


class TelegramChannel(_Channel):
    """A Telegram bot's sendMessage to one chat."""

    type: Literal["telegram"]
    bot_token: MaybeSecret = Field(repr=False)
    chat_id: str | int
    api_url: HttpUrl = "https://api.telegram.org"  # another Bot API server (or a test's)


class EmailChannel(_Channel):
    """Email over SMTP with STARTTLS (aiosmtplib). The server is the operator's, from this file only."""

    type: Literal["email"]
    host: str
    port: Annotated[int, Field(gt=0, lt=65536)] = 587
    username: str | None = None
    password: MaybeSecret | None = Field(default=None, repr=False)
    sender: str  # the From address
    to: Annotated[list[str], Field(min_length=1)]
    starttls: bool = True  # refuse to send in the clear unless this is false (a local relay)
    ca_file: str | None = None  # a CA bundle to verify the server's certificate with, instead of the system's


ChannelSettings = Annotated[WebhookChannel | SlackChannel | DiscordChannel | TelegramChannel | EmailChannel,
                            Field(discriminator="type")]


class Settings(_Strict):
    storage: StorageSettings
    daemon: DaemonSettings = DaemonSettings()
    metrics: MetricsSettings | None = None
    chains: list[ChainSettings] = []
    feeds: list[FeedSettings] = []
    analyzers: dict[str, dict] = {}  # [analyzers.<id>] as written, each checked against that analyzer's Settings
    watch: list[WatchSettings] = []
    alerts: AlertSettings = AlertSettings()
    channels: list[ChannelSettings] = []
    api: ApiSettings | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _cross_checked(cls, data: Any, handler) -> Settings:
        """The checks that need more than one key: analyzer tables against the analyzers' own models, watched
        chains against [[chains]]. They run even when the rest failed, so every problem is listed at once."""
        errors: list[dict] = []
        try:
            settings = handler(data)
        except ValidationError as exc:
            errors.extend(line_errors(exc))
            settings = None
        if isinstance(data, dict):
            errors.extend(_analyzer_errors(data.get("analyzers")))
            errors.extend(_watch_errors(data.get("chains"), data.get("watch")))
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return settings

    @model_validator(mode="after")
    def _unique(self) -> Settings:
        for what, items, attrs in (("chains", self.chains, ("name", "chain_id")), ("feeds", self.feeds, ("name",)),
                                   ("channels", self.channels, ("name",))):
            for attr in attrs:
                seen: set = set()
                for item in items:
                    value = getattr(item, attr)
                    if value in seen:
                        raise ValueError(f"two {what} share the {attr} {value!r}")
                    seen.add(value)
        return self

    def feed(self, name: str):
        for feed in self.feeds:
            if feed.name == name:
                return feed
        raise KeyError(name)

    def chain(self, name: str) -> ChainSettings:
        for chain in self.chains:
            if chain.name == name:
                return chain
        raise KeyError(name)

    def watched(self, chain: str) -> dict[str, str | None]:
        """The [[watch]] addresses on one chain (by name), lowercase address -> label (None without one)."""
        return {w.address: w.label for w in self.watch if w.chain == chain}


def line_error(loc: tuple, message: str, value: Any = None, kind: str = "config") -> dict:
    """One pydantic line error at `loc`, for ValidationError.from_exception_data (the message goes in as
    context: as a template its braces would be read as placeholders)."""
    return {"type": PydanticCustomError(kind, "{message}", {"message": message}), "loc": loc, "input": value}


def line_errors(exc: ValidationError, prefix: tuple = ()) -> list[dict]:
    """The errors of `exc`, under `prefix`, in the shape that builds a ValidationError again: what pydantic
    reports cannot be passed back as it is (a custom error type is not a known one), so each keeps its type
    name and message."""
    return [line_error((*prefix, *e["loc"]), e["msg"], e.get("input"), e["type"])
            for e in exc.errors(include_url=False)]


def _analyzer_errors(tables: Any) -> list[dict]:
    """Each [analyzers.<id>] table against that analyzer's Settings (a plugin's too). The registry is imported
    here, not at module level, so importing the configuration never imports every analyzer."""
    if not isinstance(tables, dict):
        return []  # absent, or not a table: the field's own validation says so
    tables = {key: table for key, table in tables.items() if isinstance(table, dict)}
    if not tables:
        return []
    from .analyzers.tx.registry import AnalyzerRegistryError, analyzer_settings, load_registry

    try:
        analyzer_settings(load_registry(), tables)
    except AnalyzerRegistryError as exc:
        return [line_error(("analyzers",), str(exc), tables)]
    except ValidationError as exc:
        return line_errors(exc)
    return []


def _watch_errors(chains: Any, watch: Any) -> list[dict]:
    if not isinstance(watch, list):
        return []
    names = {c["name"].strip() for c in chains if isinstance(c, dict) and isinstance(c.get("name"), str)} \
        if isinstance(chains, list) else set()
    errors, seen = [], set()
    for i, entry in enumerate(watch):
        if not isinstance(entry, dict) or not isinstance(entry.get("chain"), str):
            continue
        chain = entry["chain"].strip()
        if chain not in names:
            known = ", ".join(sorted(names)) or "none"
            errors.append(line_error(("watch", i, "chain"),
                                     f"no [[chains]] entry is named {chain!r} (configured: {known})", chain))
        address = entry.get("address")
        if isinstance(address, str):
            key = (chain, address.strip().lower())
            if key in seen:
                errors.append(line_error(("watch", i), f"{key[1]} on {chain} is watched twice", entry))
            seen.add(key)
    return errors


_FEED_TYPES = ("defillama", "defihacklabs", "rss", "osv")


def _key_path(loc: tuple) -> str:
    path = ""
    for i, part in enumerate(loc):
        if part in _FEED_TYPES and i >= 2 and loc[i - 2] == "feeds":
            continue  # the discriminated union's branch (the feed's type), not a key of the file
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("function-after", "function-before", "int", "float", "str", "literal['latest']",
                      "literal['safe','finalized']", "constrained-int", "constrained-float") or "[" in str(part):
            continue  # pydantic's names for the union branch tried, not keys of the file
        else:
            path += ("." if path else "") + str(part)
    return path or "(top level)"


def _problems(error: ValidationError) -> list[str]:
    seen: dict[str, list[str]] = {}
    for item in error.errors(include_url=False, include_input=False):
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing":
            message = "required key is missing"
        seen.setdefault(_key_path(item["loc"]), [])
        if message not in seen[_key_path(item["loc"])]:
            seen[_key_path(item["loc"])].append(message)
    # a union (e.g. confirmations = int | "safe" | "finalized") fails once per branch: say it once
    return [f"{path}: {'; or '.join(messages)}" for path, messages in seen.items()]


def parse(text: str, source: str = "<config>") -> Settings:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from exc
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc)) from exc


def config_path(explicit: str | None) -> Path:
    """--config, else $KAMIYO_CONFIG, else /etc/kamiyo/kamiyo.toml."""
    return Path(explicit or os.environ.get("KAMIYO_CONFIG") or DEFAULT_PATH)


def load(explicit: str | None = None) -> Settings:
    path = config_path(explicit)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(str(path), [f"cannot read the configuration file ({reason})"]) from exc
    return parse(text, str(path))
