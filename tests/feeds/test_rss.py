"""RSS 2.0 and Atom: Rekt-shaped items read to protocol, day, loss, addresses and links; hostile XML (entity
expansion, external entities) refused before feedparser sees it; truncated XML, HTML and items without identity
refused whole."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from kamiyo.feeds import rss
from kamiyo.feeds.model import INCIDENT, FeedFormatError, RoleAddress

FIXTURES = Path(__file__).parent / "fixtures"
ETHEREUM, ARBITRUM, BASE, AVALANCHE = 1, 42161, 8453, 43114


def rss_of(*items: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Rekt</title>'
            f'<link>https://rekt.news/</link>{"".join(items)}</channel></rss>').encode()


def item(title: str = "Example - REKT", link: str = "https://rekt.news/example-rekt/", extra: str = "") -> str:
    return f"<item><title>{title}</title><link>{link}</link>{extra}</item>"


@pytest.fixture(scope="module")
def rekt() -> list:
    return rss.parse((FIXTURES / "rekt-rss.xml").read_bytes(), "rekt")


def test_rekt_items(rekt):
    assert [(r.ref, r.protocol, r.day, r.loss_usd, r.loss_text) for r in rekt] == [
        ("https://rekt.news/balancer-rekt2/", "Balancer", date(2025, 11, 3), 128e6, "$128 million"),
        ("https://rekt.news/euler-rekt/", "Euler Finance", date(2023, 3, 14), 197e6, "$197 million"),
        ("https://rekt.news/ronin-rekt/", "Ronin Network", date(2022, 3, 30), 624e6, "US$624 million"),
        ("https://rekt.news/editorial-board/", "The Editorial Board", None, None, None),  # no date, no loss
    ]
    assert {(r.source, r.kind) for r in rekt} == {("rekt", INCIDENT)}


def test_explorer_links_give_chains_addresses_and_hashes(rekt):
    balancer, euler, ronin, _ = rekt
    assert balancer.chains == (ARBITRUM, BASE)
    assert balancer.addresses == (RoleAddress("other", ARBITRUM, "0x506d1f9efe24f0d47853adca907eb8d89ae03207"),)
    assert balancer.tx_hashes == ("0x6ed07db1a9fe5c0794d44cd36081d6a6df103fab868cdd75d581e3bd23bc9742",)
    assert balancer.references == (
        "https://rekt.news/balancer-rekt2/",
        "https://arbiscan.io/address/0x506d1f9efe24f0d47853adca907eb8d89ae03207",
        "https://basescan.org/tx/0x6ed07db1a9fe5c0794d44cd36081d6a6df103fab868cdd75d581e3bd23bc9742",
    )
    # Euler's exploiter is named in the prose only: an address, but no chain for it.
    assert euler.addresses == (RoleAddress("other", None, "0xb66cd966670d962c227b3eaba30a872dbfb995db"),)
    assert euler.chains == (ETHEREUM,)  # from the etherscan link of the attack transaction
    assert euler.tx_hashes == ("0xc310a0affe2169d1f6feec1c63dbc7f7c62a887fa48795d327d4d2da2d6b111d",)
    assert (ronin.addresses, ronin.tx_hashes, ronin.references) == ((), (), ("https://rekt.news/ronin-rekt/",))


def test_raw_is_the_item_and_stays_json(rekt):
    balancer = rekt[0]
    assert balancer.raw["title"] == "Balancer - REKT 2"
    assert balancer.raw["published"] == "Mon, 03 Nov 2025 18:30:00 GMT"
    enclosure = [link for link in balancer.raw["links"] if link["rel"] == "enclosure"]
    assert enclosure[0]["href"] == "https://rekt.news/content/images/2025/11/balancer-rekt2.png"
    assert not any(key.endswith("_parsed") for key in balancer.raw)
    json.dumps([r.raw for r in rekt])  # storable as it is


def test_atom_entries():
    platypus, quiet = rss.parse((FIXTURES / "incidents-atom.xml").read_bytes(), "notes")
    assert platypus.ref == "https://notes.example.org/2023/10/platypus"
    assert platypus.protocol == "Platypus Finance exploited again"  # no Rekt suffix: the title as written
    assert platypus.day == date(2023, 10, 13)  # 22:40 at -04:00 is the 13th in UTC
    assert (platypus.loss_usd, platypus.loss_text) == (2.2e6, "$2.2M")  # not the $575K recovered
    assert platypus.addresses == (RoleAddress("other", AVALANCHE, "0x0cd4fd0eecd2c5ad24de7f17ae35f9db6ac51ee7"),)
    assert platypus.chains == (AVALANCHE,)
    # No link: the entry's id is its ref; only <updated> dates it; "nothing lost" states no amount.
    assert (quiet.ref, quiet.day, quiet.loss_usd, quiet.references) == (
        "tag:notes.example.org,2023:quiet-week", date(2023, 10, 6), None, ())


@pytest.mark.parametrize(("title", "protocol"), [
    ("Euler Finance - REKT", "Euler Finance"),
    ("Ronin Network – Rekt", "Ronin Network"),
    ("Balancer - REKT 2", "Balancer"),
    ("Mango Markets — REKT II", "Mango Markets"),
    ("Nomad Bridge | rekt", "Nomad Bridge"),
    ("Rekt Review: the year in exploits", "Rekt Review: the year in exploits"),  # "rekt" not at the end
    ("Wrekt", "Wrekt"),
    ("REKT", "REKT"),  # nothing before the marker: kept whole rather than emptied
])
def test_title_suffix_rule(title, protocol):
    (report,) = rss.parse(rss_of(item(title=title)), "rekt")
    assert report.protocol == protocol


def test_a_guid_stands_in_for_a_missing_link():
    (report,) = rss.parse(rss_of("<item><title>X - REKT</title><guid>rekt-x-2024</guid></item>"), "rekt")
    assert (report.ref, report.references) == ("rekt-x-2024", ())


def test_a_feed_without_items_is_empty():
    assert rss.parse(rss_of(), "rekt") == []


def refused(payload: bytes, *words: str) -> str:
    with pytest.raises(FeedFormatError) as caught:
        rss.parse(payload, "rekt")
    message = str(caught.value)
    assert message.startswith("rekt: ")
    for word in words:
        assert word in message, message
    return message


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>Rekt</title>
<item><title>&lol9;</title><link>https://rekt.news/lol/</link></item></channel></rss>"""


def test_entity_expansion_is_refused():
    refused(BILLION_LAUGHS, "declares the XML entity 'lol'", "refused")


def test_external_entities_are_refused_and_nothing_is_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("PRIVATE KEY 0xdeadbeef")
    payload = (f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY leak SYSTEM "file://{secret}">]>'
               '<rss version="2.0"><channel><title>Rekt</title>'
               '<item><title>&leak;</title><link>https://rekt.news/x/</link></item></channel></rss>').encode()
    message = refused(payload, "'leak'", f"file://{secret}", "refused")
    assert "PRIVATE KEY" not in message
    refused(b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY % dtd SYSTEM "http://127.0.0.1:9/evil.dtd"> %dtd;]>'
            b'<rss version="2.0"><channel><title>Rekt</title></channel></rss>', "'dtd'", "refused")


def test_a_doctype_without_entities_is_read_and_not_fetched():
    # RSS 0.91's public DTD: a real feed may carry it; expat does not load it, and no entity is declared.
    payload = (b'<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
               b'"http://127.0.0.1:9/rss-0.91.dtd"><rss version="0.91"><channel><title>Rekt</title>'
               b'<link>https://rekt.news/</link><description>x</description>'
               b'<item><title>Old - REKT</title><link>https://rekt.news/old/</link></item></channel></rss>')
    (report,) = rss.parse(payload, "rekt")
    assert report.protocol == "Old"


def test_truncated_xml_is_refused():
    whole = (FIXTURES / "rekt-rss.xml").read_bytes()
    refused(whole[: len(whole) // 2], "not well-formed XML")
    refused(whole[:-10], "not well-formed XML")


def test_html_instead_of_a_feed_is_refused():
    refused(b"<!DOCTYPE html><html><head><title>Rekt</title></head><body><p>Just a moment...<br></body></html>",
            "not well-formed XML")
    refused(b'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Rekt</title></head><body><p>502</p></body>'
            b"</html>", "not an RSS or Atom feed")


def test_other_payloads_that_are_not_feeds(tmp_path):
    refused(b"", "not well-formed XML")
    refused(b'{"items": []}', "not well-formed XML")
    refused(rss_of(item(title="a&nbsp;b")), "not well-formed XML", "undefined entity")
    # A payload that happens to be a path is data, never a file to open (feedparser would open it).
    path = tmp_path / "feed.xml"
    path.write_bytes(rss_of(item()))
    refused(str(path).encode(), "not well-formed XML")


def test_an_item_without_identity_refuses_the_whole_feed():
    good = item(title="Good - REKT", link="https://rekt.news/good/")
    refused(rss_of(good, "<item><link>https://rekt.news/x/</link></item>"), "item 1 has no title")
    refused(rss_of(good, "<item><title>X - REKT</title></item>"), "item 1 ('X - REKT') has neither a link nor an id")
    refused(rss_of(good, item(title="x" * 600)), "item 1 has a title or link past")
    refused(rss_of(good, item(link="https://rekt.news/" + "x" * 3000)), "item 1 has a title or link past")


def test_an_unreadable_date_loses_the_day_only():
    (report,) = rss.parse(rss_of(item(extra="<pubDate>the day after</pubDate>")), "rekt")
    assert report.day is None and report.ref == "https://rekt.news/example-rekt/"


def test_an_address_placed_by_an_explorer_is_not_repeated_chainless():
    vault, other = "0x" + "1a" * 20, "0x" + "2b" * 20
    description = (f'<description><![CDATA[<p>Vault {vault.upper().replace("0X", "0x")} drained of $3M: '
                   f'<a href="https://dashboard.example.org/vault/{vault}">dashboard</a>, '
                   f'<a href="https://polygonscan.com/address/{vault}">polygonscan</a>, '
                   f'<a href="https://bscscan.com/address/{vault}">bscscan</a>; funds went to {other}.</p>]]>'
                   '</description>')
    (report,) = rss.parse(rss_of(item(extra=description)), "rekt")
    assert report.addresses == (RoleAddress("other", 137, vault), RoleAddress("other", 56, vault),
                                RoleAddress("other", None, other))
    assert report.chains == (137, 56) and report.loss_usd == 3e6
