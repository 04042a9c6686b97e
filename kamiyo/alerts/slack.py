"""The Slack channel: a message to an incoming webhook (https://hooks.slack.com/services/…), and what Slack's
answer means for the delivery.

The message is Block Kit: a header with the title, a section with the summary, a section of fields with the facts
(links as plain text). Every text object is `plain_text`, so nothing a finding carries is read as mrkdwn: no
`<!channel>` ping, no link whose text disguises where it goes. The top-level `text` (the notification, and what a
client without blocks shows) is always read as mrkdwn, so there `&`, `<` and `>` are escaped as Slack documents.
Slack's limits are kept: a header of 150 characters, section text of 3000, at most 10 fields of 2000.

Answers: 2xx ("ok") delivered; 429 retried after its Retry-After; 408 and 5xx retried; any other 4xx is dead
(400 invalid_payload, 403 action_prohibited or invalid_token, 404 no_service or channel_not_found, 410
channel_is_archived: sending again will not change them), with Slack's error code in the error.
"""

from __future__ import annotations

from . import webhook
from .jsonpost import answer_text, explained, post_json
from .message import Rendered, clip, render
from .network import NetworkPolicy, Response
from .outcome import Outcome

HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
MAX_FIELDS = 10


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: the three characters that start control sequences (`<!here>`, `<url|text>`)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(text: str, limit: int) -> dict:
    return {"type": "plain_text", "text": clip(text, limit), "emoji": False}


def payload(rendered: Rendered) -> dict:
    fields = [_plain(f"{name}: {value}", FIELD_LIMIT) for name, value in rendered.facts[:MAX_FIELDS]]
    blocks = [{"type": "header", "text": _plain(rendered.title, HEADER_LIMIT)},
              {"type": "section", "text": _plain(rendered.summary, SECTION_LIMIT)}]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    # Escaping lengthens the text, so it is clipped after: an entity cut in half would show as text, no worse.
    fallback = clip(escape(f"{rendered.title}\n{rendered.summary}"), SECTION_LIMIT)
    return {"text": fallback, "blocks": blocks, "unfurl_links": False, "unfurl_media": False}


def judge(response: Response) -> Outcome:
    return explained(webhook.judge(response.status, response.headers), answer_text(response))


async def send(url: str, event: str, finding: dict, policy: NetworkPolicy, timeout: float) -> Outcome:
    # The URL's path is the webhook's secret: kept out of any error text, should a failure quote the URL.
    return await post_json(url, payload(render(event, finding)), policy, timeout, judge, secrets=(url,))
