"""A finding as human text, rendered once for the chat and email channels (Slack, Discord, Telegram, email).

`render(event, finding)` gives the pieces each of them shows: a headline ("[CRITICAL] reentrancy on chain 1"),
the title (headline and subject), the summary, a few facts (chain, subject, transaction, block, labels, explorer
links) and `text`, all of it as one plain text. `clip` cuts a piece to a channel's length limit.

Findings carry text that others chose (a token's name in a summary, a label from a feed), so every piece is plain
text with control and format characters removed: no line break inside a one-line piece, no bidi override to
reorder what a reader sees. This module must not produce markup nor escape for a channel: each channel puts these
strings where its format takes plain text, and clips them to its own limits.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ..chains.registry import by_id

MAX_LABELS = 5  # labels shown; the rest are counted
ELLIPSIS = "…"

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}\Z")
_TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}\Z")
_PREFIX = {"finding.created": "", "finding.retracted": "Retracted: ", "channel.test": "Test: "}
# Retractions come from reorgs only (storage.findings.retract_findings); say so, or a reader takes it for a fix.
_RETRACTED_NOTE = "This finding is retracted: the block it came from left the canonical chain."


@dataclass(frozen=True, slots=True)
class Rendered:
    event: str
    severity: str  # lowercase, as in the finding
    headline: str  # one line, e.g. "Retracted: [HIGH] large-outflow on chain 1"
    title: str  # the headline, ": ", the subject
    summary: str  # may span lines; the retraction note comes first
    facts: tuple[tuple[str, str], ...]  # (name, value) in display order, each one line
    created_at: str | None  # ISO 8601, as the finding has it

    @property
    def text(self) -> str:
        facts = "\n".join(f"{name}: {value}" for name, value in self.facts)
        return f"{self.title}\n\n{self.summary}\n\n{facts}"


def utf16_length(text: str) -> int:
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-16 code units, ending in "…" when cut. Counted in UTF-16 units, the
    strictest count the services use, so the result fits whether a service counts units or code points; a
    surrogate pair (an emoji) is never split."""
    if utf16_length(text) <= limit:
        return text
    if limit < utf16_length(ELLIPSIS):
        return ""
    budget, kept = limit - utf16_length(ELLIPSIS), []
    for ch in text:
        budget -= 2 if ord(ch) > 0xFFFF else 1
        if budget < 0:
            break
        kept.append(ch)
    return "".join(kept).rstrip() + ELLIPSIS


def _clean(value: object, *, multiline: bool) -> str:
    text = str(value).replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch == "\n" or category in ("Zl", "Zp"):
            out.append("\n" if multiline else " ")
        elif category[0] != "C":  # Cc controls, Cf format (bidi overrides, zero-width), Cs, Co, Cn
            out.append(ch)
    text = "".join(out)
    if multiline:  # trailing spaces off each line, and at most one blank line in a row
        text = re.sub(r"\n{3,}", "\n\n", re.sub(r"[ ]+\n", "\n", text))
        return text.strip()
    return re.sub(r" {2,}", " ", text).strip()


def line(value: object) -> str:
    """One line of plain text: line breaks become spaces, control and format characters go."""
    return _clean(value, multiline=False)


def block(value: object) -> str:
    """Plain text that may span lines, control and format characters removed."""
    return _clean(value, multiline=True)


def _label(item: object) -> str:
    if isinstance(item, dict):  # Forta's shape: {"entity", "label", "confidence", …}
        return line(" ".join(str(item[k]) for k in ("label", "entity") if item.get(k) not in (None, "")))
    return line(item)


def labels_text(labels: object) -> str | None:
    if not isinstance(labels, list) or not labels:
        return None
    shown = [text for text in (_label(item) for item in labels[:MAX_LABELS]) if text]
    if len(labels) > MAX_LABELS:
        shown.append(f"+{len(labels) - MAX_LABELS} more")
    return ", ".join(shown) or None


def _links(chain_id: object, subject: str, tx_hash: str | None) -> tuple[tuple[str, str | None], ...]:
    """Explorer URLs for the transaction and the subject, built only from validated hex, so a finding's text
    never becomes part of a URL."""
    known = by_id(chain_id) if isinstance(chain_id, int) else None
    if known is None or not known.explorers:
        return ()
    host = known.explorers[0]
    return (("Transaction link", f"https://{host}/tx/{tx_hash}" if tx_hash and _TX_HASH.match(tx_hash) else None),
            ("Subject link", f"https://{host}/address/{subject}" if _ADDRESS.match(subject) else None))


def render(event: str, finding: dict) -> Rendered:
    severity = line(finding.get("severity") or "unknown").lower()
    kind, chain_id = line(finding.get("kind") or "finding"), finding.get("chain_id")
    subject = line(finding.get("subject") or "")
    prefix = _PREFIX.get(event, f"{line(event)}: ")
    headline = f"{prefix}[{severity.upper()}] {kind} on chain {line(chain_id)}"
    evidence = finding.get("evidence") if isinstance(finding.get("evidence"), dict) else {}
    summary = block(evidence.get("summary") or "") or f"A {line(finding.get('type') or 'new')} finding."
    if event == "finding.retracted":
        summary = f"{_RETRACTED_NOTE}\n\n{summary}"
    known = by_id(chain_id) if isinstance(chain_id, int) else None
    tx_hash = line(finding["tx_hash"]) if finding.get("tx_hash") else None
    facts = [
        ("Chain", f"{known.name} ({chain_id})" if known else line(chain_id)),
        ("Subject", subject),
        ("Transaction", tx_hash),
        ("Block", line(finding["block"]) if finding.get("block") is not None else None),
        ("Labels", labels_text(finding.get("labels", evidence.get("labels")))),
        *_links(chain_id, subject, tx_hash),
        ("Finding", line(finding.get("id") or "")),
    ]
    return Rendered(event=event, severity=severity, headline=headline,
                    title=f"{headline}: {subject}" if subject else headline, summary=summary,
                    facts=tuple((name, value) for name, value in facts if value),
                    created_at=line(finding["created_at"]) if finding.get("created_at") else None)
