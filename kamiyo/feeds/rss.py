"""RSS 2.0 and Atom feeds of incident write-ups (Rekt News' `/rss/feed.xml`) → `Report`s, through feedparser.

An item, and what is taken from it (RSS 2.0 element / Atom element → Report):

  title / title                          `protocol`, less a trailing Rekt marker (below)
  link, else guid / link, else id        `ref`, and the first reference
  pubDate / published, else updated      `day` (UTC)
  description / summary and content      the loss (`amounts.parse_usd` over title and text), addresses, tx
                                         hashes, and its http(s) links as further references
  enclosure, category, … / the rest      `raw` only

The Rekt marker: at the end of the title, a dash, en dash, em dash, `|` or `:`, then "rekt" in any case, then an
optional sequel number ("2", "II"). "Euler Finance - REKT", "Ronin Network – Rekt" and "Balancer - REKT 2" give
"Euler Finance", "Ronin Network" and "Balancer"; a title without the marker, or that is nothing but it, is kept
whole.

Addresses (0x + 40 hex) and tx hashes (0x + 64 hex) are read from the text and from every link. An address in an
explorer link ("https://bscscan.com/address/0x…") gets that explorer's chain (`chains.registry.explorer_chain`);
elsewhere its chain is None. `chains` are the chains of the explorer links, in order. All addresses have role
"other": prose does not say reliably who is who. `raw` is the entry as feedparser read it, less the derived
`*_parsed` dates, so it stays JSON.

Hostile XML is refused before feedparser sees it: defusedxml refuses a DOCTYPE that declares an entity, internal
("billion laughs") or external (a file or URL read into the feed), and any external reference; feedparser on its
own expands internal entities. feedparser is handed a stream, never the bytes themselves, which it
would try to open as a file name.

All or nothing: the payload is refused whole (`FeedFormatError`) when it is not well-formed XML (truncated, HTML,
undeclared entities or namespaces), declares entities, is not RSS or Atom, or feedparser flags it (`bozo`) for
anything but a wrong declared encoding; or when an item has no title, neither link nor id, or a title or link past
its length limit. One field, the item kept: a date feedparser cannot read gives `day` None; no readable loss gives
`loss_usd` None.
"""

from __future__ import annotations

import io
import re
from datetime import date
from html.parser import HTMLParser
from typing import Any
from xml.etree.ElementTree import ParseError

import defusedxml
import defusedxml.ElementTree
import feedparser

from ..chains.registry import explorer_chain
from .amounts import parse_usd
from .model import INCIDENT, FeedFormatError, Report, RoleAddress
from .payload import ADDRESS, TX_HASH

MAX_TITLE, MAX_LINK = 500, 2048
_REKT = re.compile(r"\s*[-–—|:]\s*rekt(?:\s+(?:\d+|[ivx]+))?\s*$", re.IGNORECASE)


def parse(payload: bytes, source: str) -> list[Report]:
    _refuse_hostile_xml(payload, source)
    feed = feedparser.parse(io.BytesIO(payload))
    if feed.bozo and not isinstance(feed.bozo_exception, feedparser.CharacterEncodingOverride):
        raise FeedFormatError(f"{source}: feed is not well-formed: {feed.bozo_exception}", source=source)
    version = feed.get("version") or ""
    if not version.startswith(("rss", "atom")):
        raise FeedFormatError(f"{source}: not an RSS or Atom feed (feedparser: {version or 'unknown format'})",
                              source=source)
    return [_report(entry, index, source) for index, entry in enumerate(feed.entries)]


def _refuse_hostile_xml(payload: bytes, source: str) -> None:
    """Parse once with defusedxml, which forbids entity declarations and external references and reports the
    first such thing by name; also refuses what is not XML at all, with expat's line and column."""
    try:
        defusedxml.ElementTree.fromstring(payload, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except defusedxml.EntitiesForbidden as exc:
        where = f" ({exc.sysid})" if exc.sysid else ""
        raise FeedFormatError(f"{source}: feed declares the XML entity {exc.name!r}{where}; entity declarations "
                              "are refused (entity expansion, external entities)", source=source) from exc
    except defusedxml.ExternalReferenceForbidden as exc:
        raise FeedFormatError(f"{source}: feed refers to an external XML resource ({exc.sysid}); refused",
                              source=source) from exc
    except defusedxml.DefusedXmlException as exc:  # DTDForbidden, NotSupportedError
        raise FeedFormatError(f"{source}: feed uses refused XML features: {exc}", source=source) from exc
    except ParseError as exc:
        raise FeedFormatError(f"{source}: feed is not well-formed XML: {exc}", source=source) from exc


def _report(entry: Any, index: int, source: str) -> Report:
    title = (_get(entry, "title") or "").strip()
    link = (_get(entry, "link") or "").strip()
    ref = link or (_get(entry, "id") or "").strip()
    if not title:
        raise FeedFormatError(f"{source}: item {index} has no title", source=source, index=index)
    if not ref:
        raise FeedFormatError(f"{source}: item {index} ({title[:60]!r}) has neither a link nor an id",
                              source=source, index=index)
    if len(title) > MAX_TITLE or len(ref) > MAX_LINK:
        raise FeedFormatError(f"{source}: item {index} has a title or link past {MAX_TITLE}/{MAX_LINK} characters",
                              source=source, index=index)
    text, hrefs = _text_and_links(entry)
    links = [link, *hrefs] if link else hrefs
    loss_usd, loss_text = parse_usd(f"{title}\n{text}")
    addresses, chains = _addresses(text, links)
    return Report(
        source=source,
        ref=ref,
        protocol=_REKT.sub("", title) or title,
        day=_day(entry),
        kind=INCIDENT,
        chains=chains,
        loss_usd=loss_usd,
        loss_text=loss_text,
        addresses=addresses,
        tx_hashes=tuple(dict.fromkeys(m.group(0).lower() for m in TX_HASH.finditer("\n".join([text, *links])))),
        references=tuple(dict.fromkeys(url for url in links if url.startswith(("https://", "http://")))),
        raw=_jsonable(entry),
    )


def _day(entry: Any) -> date | None:
    parsed = _get(entry, "published_parsed") or _get(entry, "updated_parsed")  # UTC, normalised by feedparser
    return date(*parsed[:3]) if parsed else None


def _get(entry: Any, key: str) -> Any:
    """The key itself: FeedParserDict.get maps some keys to others (`updated` → `published`, with a warning)."""
    return dict.get(entry, key)


class _Text(HTMLParser):
    """The readable text of an HTML fragment, and the targets of its links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.parts.append(" ")  # "<p>a</p><p>b</p>" is two words
        if tag == "a":
            self.hrefs.extend(value.strip() for name, value in attrs if name == "href" and value)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _text_and_links(entry: Any) -> tuple[str, list[str]]:
    reader = _Text()
    for fragment in [_get(entry, "summary") or "", *(_get(c, "value") or "" for c in _get(entry, "content") or ())]:
        reader.feed(fragment)
        reader.feed(" ")
    reader.close()
    return re.sub(r"\s+", " ", "".join(reader.parts)).strip(), reader.hrefs


def _addresses(text: str, links: list[str]) -> tuple[tuple[RoleAddress, ...], tuple[int, ...]]:
    """Addresses in explorer links with the explorer's chain, then every other address mentioned, without one;
    an address that some explorer link placed on a chain is not repeated chainless."""
    found: dict[tuple[int | None, str], None] = {}
    chains: dict[int, None] = {}
    for url in links:
        chain_id = explorer_chain(url)
        if chain_id is not None:
            chains[chain_id] = None
            found.update(((chain_id, m.group(0).lower()), None) for m in ADDRESS.finditer(url))
    located = {address for _, address in found}
    for match in ADDRESS.finditer("\n".join([text, *links])):
        if match.group(0).lower() not in located:
            found[(None, match.group(0).lower())] = None
    return tuple(RoleAddress("other", chain_id, address) for chain_id, address in found), tuple(chains)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items() if not str(k).endswith("_parsed")}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)
