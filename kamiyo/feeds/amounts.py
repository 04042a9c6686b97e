"""Dollar amounts in free text: `parse_usd` finds the loss that prose states ("drained of $197 million").

Write-ups that are not structured (Rekt's RSS descriptions, DeFiHackLabs' "Lost:" lines) say a loss in words.
This module reads only what is written in dollars and only what sits near a word of loss, and answers nothing
rather than a guess: it must not convert tokens to dollars (no prices here), read a number without a currency
("in 2023", "20%", "~50k"), or take a TVL, a bounty or returned funds for the loss.

What counts as a dollar amount (case-insensitive):
  prefix   `$`, `US$`, `USD` before the number:  "$197 million", "$8.1M", "US$ 3.5m", "USD 3,500,000"
  postfix  `USD`, `US$`, `dollars` after it:     "3,500,000 USD", "137,000 US$", "1.2 billion dollars"
  scale    k / thousand, m / mn / mm / million, b / bn / billion, tn / trillion: after the number, one space at most
  range    "$1.2-1.5 million", "$5 to 7M": the upper bound, as the source's "up to"
Tickers ($ETH, $USDT, USDC) are not dollars: a `$` must be followed by a digit and `USD` must end the word. A
four-digit year before "dollars" ("2023 dollars") is not an amount.

Which amount is the loss: every dollar amount that has a loss word (lost, stolen, drained, exploit, hack, …)
within a short window of it and no disqualifying word (TVL, bounty, returned, recovered, raised, price, …) nearer
than that loss word is a candidate; the largest candidate between $1 and $1 trillion is the answer.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import NamedTuple

_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"
_SCALE = r"thousand|million|billion|trillion|mn|mm|bn|tn|k|m|b"


def _quantity(p: str) -> str:
    """A number that is not the tail of a longer one, optionally a range, optionally scaled; groups prefixed `p`.
    The lookaheads refuse to stop inside a number ("1,20" is not "1") or a word ("5 by" is not five billion)."""
    return (
        rf"(?P<{p}num>{_NUMBER})(?!\d|[.,]\d)"
        rf"(?:\s?(?:-|–|to)\s?(?:US\s?\$|\$)?(?P<{p}upper>{_NUMBER})(?!\d|[.,]\d))?"
        rf"(?:\s?(?P<{p}scale>{_SCALE})(?![a-z]))?"
    )


_PREFIX = r"(?:US\s?\$|\$|(?<![\w-])USD(?![a-z]))\s?"
_POSTFIX = r"\s?(?:USD(?![a-z])|US\$|\$(?![\w$])|dollars?\b)"
_MONEY = re.compile(
    rf"{_PREFIX}{_quantity('a')}(?:{_POSTFIX})?(?![a-z])"  # "$41.2K USD" is one amount, "$23ETH" is none
    rf"|(?<![\w$.,]){_quantity('b')}{_POSTFIX}",
    re.IGNORECASE,
)
_SCALES = {"k": 10**3, "thousand": 10**3, "m": 10**6, "mn": 10**6, "mm": 10**6, "million": 10**6,
           "b": 10**9, "bn": 10**9, "billion": 10**9, "tn": 10**12, "trillion": 10**12}

_LOSS = re.compile(
    r"\b(?:lost|los(?:s|ses|e|ing)|stole|stolen|steal\w*|theft|thie(?:f|ves)|drain\w*|exploit\w*|hack\w*"
    r"|siphon\w*|loot\w*|robbed|heist|rug\s?pull\w*|made off with|attack\w*)\b",
    re.IGNORECASE,
)
_NOT_LOSS = re.compile(
    r"\b(?:tvl|total value locked|bount(?:y|ies)|rewards?|rais(?:e|ed|ing)|funding|fundraise\w*|valuation"
    r"|market cap\w*|return(?:s|ed)?|recover\w*|refund\w*|repa(?:id|y\w*)|reimburs\w*|compensat\w*"
    r"|prices?|priced|trading at)\b",
    re.IGNORECASE,
)
_BEFORE, _AFTER = 120, 60  # characters searched for context on each side of an amount
_PLAUSIBLE = (1.0, 1e12)


class Mention(NamedTuple):
    usd: float
    text: str  # the source's words, exactly as written
    start: int
    end: int


def mentions(text: str) -> list[Mention]:
    """Every dollar amount written in `text`, in order, whatever it is the amount of."""
    found = []
    for match in _MONEY.finditer(text):
        branch = "a" if match.group("anum") is not None else "b"
        number, upper, scale = (match.group(branch + part) for part in ("num", "upper", "scale"))
        if branch == "b" and upper is None and scale is None and re.fullmatch(r"(?:19|20)\d\d", number):
            continue  # "in 2023 dollars" is a year
        value = Decimal((upper or number).replace(",", ""))
        if scale:
            value *= _SCALES[scale.lower()]
        found.append(Mention(float(value), match.group(0), match.start(), match.end()))
    return found


def _nearest(pattern: re.Pattern[str], text: str, start: int, end: int) -> int | None:
    """Characters between the amount at [start, end) and the closest match of `pattern` around it."""
    distances = [start - m.end() for m in pattern.finditer(text, max(0, start - _BEFORE), start)]
    distances += [m.start() - end for m in pattern.finditer(text, end, end + _AFTER)]
    return min(distances, default=None)


def parse_usd(text: str) -> tuple[float | None, str | None]:
    """(the loss in USD, the words that said it), or (None, None) when no amount reads as a loss."""
    best: Mention | None = None
    for mention in mentions(text):
        if not _PLAUSIBLE[0] <= mention.usd <= _PLAUSIBLE[1]:
            continue
        loss = _nearest(_LOSS, text, mention.start, mention.end)
        if loss is None:
            continue
        other = _nearest(_NOT_LOSS, text, mention.start, mention.end)
        if other is not None and other <= loss:
            continue
        if best is None or mention.usd > best.usd:
            best = mention
    return (None, None) if best is None else (best.usd, best.text)
