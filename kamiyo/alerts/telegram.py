"""The Telegram channel: a bot's sendMessage to one chat (`{api_url}/bot{token}/sendMessage`), and what the Bot
API's answer means for the delivery.

The message is plain text (no parse_mode), so nothing in a finding needs escaping and no escaping mistake can make
Telegram refuse it; link previews are off; the text is clipped to Telegram's 4096 characters.

The bot token sits in the URL's path and is a secret: every error text is redacted of it before it leaves this
module (the worker writes errors to the database and the log). It is percent-quoted into the path, so a token that
is not one (with a "/" or "?") cannot change which method of which server is called.

Answers are JSON {"ok", "error_code", "description", "parameters"}: ok is delivered; 429 is retried after
`parameters.retry_after`; 5xx is retried; 400 (chat not found), 401 (a wrong token), 403 (the bot was blocked or
removed) and other 4xx are dead. A group that became a supergroup (`parameters.migrate_to_chat_id`) is dead with
the new id in the error, since the channel's chat_id has to change. A 2xx that is not a Bot API answer is dead:
`api_url` points somewhere else.
"""

from __future__ import annotations

from urllib.parse import quote

from . import webhook
from .jsonpost import answer_json, answer_text, explained, post_json, seconds
from .message import clip, line, render
from .network import NetworkPolicy, Response
from .outcome import Dead, Delivered, Outcome, Retry, retry_after

TEXT_LIMIT = 4096
# sendMessage answers with the message it sent, text and all: 4096 characters JSON-escaped (an emoji is 12 bytes
# as "\ud83d\ude00") and their entities. A cut answer is not JSON, and would be judged not a Bot API answer.
MAX_ANSWER = 262_144


def method_url(api_url: str, token: str, method: str = "sendMessage") -> str:
    return f"{api_url.rstrip('/')}/bot{quote(token, safe=':')}/{method}"


def payload(chat_id: str | int, event: str, finding: dict) -> dict:
    return {"chat_id": chat_id, "text": clip(render(event, finding).text, TEXT_LIMIT),
            "disable_web_page_preview": True}


def judge(response: Response) -> Outcome:
    doc = answer_json(response)
    if doc is None or not isinstance(doc.get("ok"), bool):
        if 200 <= response.status < 300:
            return Dead(f"HTTP {response.status}, but not a Bot API answer: is api_url right?")
        return explained(webhook.judge(response.status, response.headers), answer_text(response))
    if doc["ok"]:
        return Delivered(response.status)
    code = doc.get("error_code") if isinstance(doc.get("error_code"), int) else response.status
    description = clip(line(doc.get("description") or ""), 200)
    error = f"Telegram {code}: {description}" if description else f"Telegram {code}"
    parameters = doc.get("parameters") if isinstance(doc.get("parameters"), dict) else {}
    if code == 429 or response.status == 429:
        after = seconds(parameters.get("retry_after"))
        return Retry(error, after if after is not None else retry_after(response.headers))
    if isinstance(parameters.get("migrate_to_chat_id"), int):
        return Dead(f"{error}; the group is now the supergroup {parameters['migrate_to_chat_id']}: "
                    "set the channel's chat_id to that")
    if code >= 500 or response.status >= 500:
        return Retry(error, retry_after(response.headers))
    return Dead(error)


async def send(api_url: str, token: str, chat_id: str | int, event: str, finding: dict, policy: NetworkPolicy,
               timeout: float) -> Outcome:
    url = method_url(api_url, token)
    return await post_json(url, payload(chat_id, event, finding), policy, timeout, judge,
                           secrets=(token, quote(token, safe=":")), max_answer=MAX_ANSWER)
