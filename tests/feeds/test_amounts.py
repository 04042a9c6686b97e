"""parse_usd: the loss a sentence states in dollars, or nothing. Phrasings the write-ups use, things that look like
amounts and are not, amounts that are not the loss, and the real "Lost:" lines of DeFiHackLabs' incident list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kamiyo.feeds.amounts import mentions, parse_usd

POC_INDEX = (Path(__file__).resolve().parents[2].parent / "shared" / "data" / "feeds" / "defihacklabs"
             / "poc-index.derived.json")


@pytest.mark.parametrize(("text", "usd", "words"), [
    ("Euler Finance was drained of $197 million", 197e6, "$197 million"),
    ("the attacker stole $8.1M", 8.1e6, "$8.1M"),
    ("Funds lost: USD 3,500,000", 3.5e6, "USD 3,500,000"),
    ("1.2 billion dollars were stolen", 1.2e9, "1.2 billion dollars"),
    ("hacked for $600k", 600e3, "$600k"),
    ("hacked for $600 K", 600e3, "$600 K"),
    ("stolen: $1.4bn in ETH", 1.4e9, "$1.4bn"),
    ("losses of US$ 3.5m", 3.5e6, "US$ 3.5m"),
    ("US$624 million stolen", 624e6, "US$624 million"),
    ("3,500,000 USD lost", 3.5e6, "3,500,000 USD"),
    ("Lost: ~137,000 US$", 137e3, "137,000 US$"),
    ("Lost: 11 Million $", 11e6, "11 Million $"),
    ("Lost: $32,196.28", 32196.28, "$32,196.28"),
    ("Lost: $.8 million", 0.8e6, "$.8 million"),
    ("exploited for an estimated $1.2-1.5 million", 1.5e6, "$1.2-1.5 million"),
    ("drained between $5 to $7M", 7e6, "$5 to $7M"),
    ("Lost: 12.34 ETH (~$41.2K USD)", 41.2e3, "$41.2K USD"),
    ("Lost: 4.1M VUSD, 5K DAI, 50K USDT (>$3.8M USD)", 3.8e6, "$3.8M USD"),
    ("exploiters made off with $5m.", 5e6, "$5m"),
])
def test_phrasings_of_a_loss(text, usd, words):
    assert parse_usd(text) == (pytest.approx(usd), words)


@pytest.mark.parametrize("text", [
    "In 2023 the protocol was exploited",  # a year
    "lost 2023 dollars",  # "in 2023 dollars": a year, not an amount
    "$ETH fell 12% after the exploit",  # a ticker and a percentage
    "the pool lost 15% of its TVL",
    "Lost: ~63k $USDT",  # a token, not dollars
    "Lost: 1,115,903.66 USDT",
    "Lost: 11k BSC-USD",  # a token whose name ends in USD
    "Lost: ~$23ETH",  # a dollar sign glued to a token amount
    "Lost: ~50k",  # no currency at all
    "Lost: ~4,5M",  # a decimal comma: unsure, so nothing
    "lost $1,20",
    "The protocol launched with $40 million in deposits",  # an amount, but no loss near it
    "",
])
def test_not_a_loss(text):
    assert parse_usd(text) == (None, None)


@pytest.mark.parametrize(("text", "usd"), [
    ("With a TVL of $1 billion before the exploit, the attacker drained $197 million", 197e6),
    ("A $10M bounty was offered. Attackers drained $5M", 5e6),
    ("The exploiter stole $8.1M and returned $2M a week later", 8.1e6),
    ("The hack cost $3M; the team recovered $5M from insurance", 3e6),
    ("ETH was trading at $1,800 when the hacker stole $2.5 million", 2.5e6),
    ("Hackers stole $3 million, then $12 million more from the second pool", 12e6),  # the largest loss
])
def test_amounts_that_are_not_the_loss_are_passed_over(text, usd):
    assert parse_usd(text)[0] == pytest.approx(usd)


def test_implausible_amounts_are_not_a_loss():
    assert parse_usd("drained $0 from the pool") == (None, None)
    assert parse_usd("lost $" + "9" * 400) == (None, None)  # over $1 trillion: a typo or an attack on us
    assert parse_usd("lost $5 trillion? no: lost $5 million") == (5e6, "$5 million")


def test_mentions_reads_every_amount_in_order():
    found = mentions("TVL $1B, lost $8.1M, 2023 dollars, 5 ETH, $ETH, 3,500,000 USD")
    assert [(m.usd, m.text) for m in found] == [(1e9, "$1B"), (8.1e6, "$8.1M"), (3.5e6, "3,500,000 USD")]
    text = "The pool was drained of $197 million"
    (only,) = mentions(text)
    assert text[only.start:only.end] == "$197 million"  # positions index the text they came from


@pytest.fixture(scope="module")
def lost_lines() -> dict[tuple[str, str], str]:
    if not POC_INDEX.exists():
        pytest.skip(f"{POC_INDEX} is not here")
    return {(row["date"], row["name"]): row["lost"] for row in json.loads(POC_INDEX.read_text()) if row["lost"]}


@pytest.mark.parametrize(("date", "name", "usd"), [
    ("2023-03-13", "EulerFinance", 200e6),  # "~$200M"
    ("2022-03-29", "Ronin Network", 624e6),  # "$624 million"
    ("2022-08-02", "Nomad Bridge", 152e6),  # "Multiple ERC-20 Tokens (~152M US$)"
    ("2025-11-03", "BalancerV2", 120e6),  # "120M USD"
    ("2023-07-30", "Curve", 41e6),  # "~ $41M"
    ("2020-10-26", "Harvest Finance", 33.8e6),  # "$33.8 million"
    ("2026-03-02", "Curve LlamaLend", 240e3),  # "~240,000 US$"
])
def test_real_lost_lines(lost_lines, date, name, usd):
    # The README's heading is "### Lost: …": the word of loss is the heading's own.
    assert parse_usd(f"Lost: {lost_lines[(date, name)]}")[0] == pytest.approx(usd)


def test_real_lost_lines_in_tokens_only_give_nothing(lost_lines):
    """Conservative on the whole real list: a line that names no dollars never yields a loss, and every loss
    read is a plausible one."""
    read = 0
    for line in lost_lines.values():
        usd, words = parse_usd(f"Lost: {line}")
        if not any(marker in line.lower() for marker in ("$", "usd", "dollar")):
            assert usd is None, line
        if usd is not None:
            read += 1
            assert 1 <= usd <= 2e9 and words in line, line  # nothing lost more than Bybit's $1.4 billion
    assert read > 400  # most of the list states a dollar figure; a parser that reads none has broken
