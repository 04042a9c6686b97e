"""The Discord channel: a message with one embed to a webhook (https://discord.com/api/webhooks/…), and what
Discord's answer means for the delivery.

`content` is the headline (what a notification shows); the embed has the title, the summary as description, a
colour by severity, the facts as fields and the finding's time. `allowed_mentions` parses nothing, so an
"@everyone" a finding happens to carry pings no one. Discord refuses the whole message when a limit is exceeded,
so every one is kept: content 2000, title 256, description 4096, at most 25 fields of name 256 and value 1024,
and 6000 characters over the embed as a whole (up to 1024 of them are kept for the description; fields that do
not fit in the rest are left out).

Answers: 2xx (204, or 200 with `?wait=true`) delivered; 429 retried after the body's `retry_after` (seconds,
fractional) or else the Retry-After header; 408 and 5xx retried; any other 4xx is dead (404 Unknown Webhook, 401,
403, 400 Invalid Form Body), with Discord's message and code in the error.
"""

from __future__ import annotations

from datetime import datetime, timezone

from . import webhook
from .jsonpost import answer_json, answer_text, explained, post_json, seconds
from .message import Rendered, clip, line, render, utf16_length
from .network import NetworkPolicy, Response
from .outcome import Outcome, Retry, retry_after

CONTENT_LIMIT = 2000
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
MAX_FIELDS = 25
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
EMBED_LIMIT = 6000  # title + description + every field name and value (+ footer and author, unused here)
DESCRIPTION_RESERVE = 1024  # of the 6000, kept for the description however many fields there are
INLINE_UNDER = 40  # a field value this short sits beside its neighbours

COLORS = {"critical": 0xD0021B, "high": 0xF5A623, "medium": 0xF8E71C, "low": 0x4A90E2, "info": 0x9B9B9B}


def embed(rendered: Rendered) -> dict:
    title = clip(rendered.title, TITLE_LIMIT)
    # Fields may not crowd the summary out: some of it is kept back for it, and it gets whatever they leave.
    reserved = min(utf16_length(rendered.summary), DESCRIPTION_RESERVE)
    budget = EMBED_LIMIT - utf16_length(title) - reserved
    fields = []
    for name, value in rendered.facts[:MAX_FIELDS]:
        name, value = clip(name, FIELD_NAME_LIMIT), clip(value, FIELD_VALUE_LIMIT)
        size = utf16_length(name) + utf16_length(value)
        if size > budget:
            continue  # a smaller one further on may still fit
        budget -= size
        fields.append({"name": name, "value": value,
                       "inline": utf16_length(value) < INLINE_UNDER and "\n" not in value})
    out = {"title": title, "color": COLORS.get(rendered.severity, COLORS["info"]), "fields": fields}
    description = clip(rendered.summary, min(DESCRIPTION_LIMIT, budget + reserved))
    if description:  # Discord refuses an empty one
        out["description"] = description
    timestamp = _timestamp(rendered.created_at)
    if timestamp:
        out["timestamp"] = timestamp
    return out


def _timestamp(created_at: str | None) -> str | None:
    """ISO 8601 as Discord takes it, or None: a timestamp it cannot read would make it refuse the whole message."""
    if not created_at:
        return None
    try:
        moment = datetime.fromisoformat(created_at)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def payload(rendered: Rendered) -> dict:
    return {"content": clip(rendered.headline, CONTENT_LIMIT), "embeds": [embed(rendered)],
            "allowed_mentions": {"parse": []}}


def _error_line(doc: dict) -> str:
    """Discord's error document ({"message": "Unknown Webhook", "code": 10015}) as one short line."""
    message, code = doc.get("message"), doc.get("code")
    if not isinstance(message, str):
        return ""
    return clip(line(f"{message} (code {code})" if isinstance(code, int) else message), 200)


def judge(response: Response) -> Outcome:
    doc = answer_json(response) or {}
    detail = _error_line(doc) or answer_text(response)
    if response.status == 429:
        after = seconds(doc.get("retry_after"))
        return explained(Retry("HTTP 429", after if after is not None else retry_after(response.headers)), detail)
    return explained(webhook.judge(response.status, response.headers), detail)


async def send(url: str, event: str, finding: dict, policy: NetworkPolicy, timeout: float) -> Outcome:
    # The URL's last segment is the webhook's token: kept out of any error text, should a failure quote the URL.
    return await post_json(url, payload(render(event, finding)), policy, timeout, judge, secrets=(url,))
