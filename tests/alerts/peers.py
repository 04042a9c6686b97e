"""Real peers for the channel tests, on loopback: aiohttp servers that play Slack's incoming webhook, Discord's
webhook and Telegram's Bot API (each checks what arrived as the service would, and refuses what it would refuse),
and an aiosmtpd SMTP server with or without STARTTLS. Each records what it received and can be told to give
scripted answers first."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from kamiyo.alerts.message import utf16_length


@dataclass
class Answer:
    status: int
    body: str | dict = ""
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> web.Response:
        if isinstance(self.body, dict):
            return web.json_response(self.body, status=self.status, headers=self.headers)
        return web.Response(status=self.status, text=self.body, headers=self.headers)


@dataclass
class Seen:
    path: str  # percent-decoded
    raw_path: str  # as sent
    headers: dict[str, str]
    doc: dict | None


class ChatPeer:
    """An HTTP peer: records every request, answers `script` first (in order), then as the service would."""

    path = "/"

    def __init__(self) -> None:
        self.script: list[Answer] = []
        self.seen: list[Seen] = []
        self.base = ""
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return self.base + self.path

    def accept(self, path: str, doc: dict | None) -> Answer:
        raise NotImplementedError

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        self.seen.append(Seen(request.path, request.raw_path, dict(request.headers),
                              doc if isinstance(doc, dict) else None))
        answer = self.script.pop(0) if self.script else self.accept(request.path, self.seen[-1].doc)
        return answer.response()

    async def start(self):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _text_objects(node):
    if isinstance(node, dict):
        if "type" in node and "text" in node and isinstance(node["text"], str):
            yield node
        for value in node.values():
            yield from _text_objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _text_objects(value)


class FakeSlack(ChatPeer):
    path = "/services/T0000/B0000/slacksecret"

    def accept(self, path: str, doc: dict | None) -> Answer:
        if path != self.path:
            return Answer(404, "no_service")
        if not doc or not isinstance(doc.get("text"), str) or not isinstance(doc.get("blocks"), list):
            return Answer(400, "invalid_payload")
        for block in doc["blocks"]:
            limit = {"header": 150, "section": 3000}.get(block.get("type"))
            fields = block.get("fields", [])
            if limit is None or len(fields) > 10 or any(utf16_length(f["text"]) > 2000 for f in fields) or (
                    "text" in block and not 0 < utf16_length(block["text"]["text"]) <= limit):
                return Answer(400, "invalid_blocks")
        return Answer(200, "ok")


class FakeDiscord(ChatPeer):
    path = "/api/webhooks/1234/discordtoken"

    def accept(self, path: str, doc: dict | None) -> Answer:
        if path != self.path:
            return Answer(404, {"message": "Unknown Webhook", "code": 10015})
        if not doc or len(doc.get("content", "")) > 2000 or len(doc.get("embeds", [])) > 10:
            return Answer(400, {"message": "Invalid Form Body", "code": 50035})
        for embed in doc["embeds"]:
            fields = embed.get("fields", [])
            total = sum(utf16_length(embed.get(k, "")) for k in ("title", "description")) + sum(
                utf16_length(f["name"]) + utf16_length(f["value"]) for f in fields)
            if (utf16_length(embed.get("title", "")) > 256 or utf16_length(embed.get("description", "")) > 4096
                    or len(fields) > 25 or total > 6000
                    or any(not 0 < utf16_length(f["value"]) <= 1024 or not 0 < utf16_length(f["name"]) <= 256
                           for f in fields)):
                return Answer(400, {"message": "Invalid Form Body", "code": 50035})
        return Answer(204)


class FakeTelegram(ChatPeer):
    def __init__(self, token: str, chat_id: int | str) -> None:
        super().__init__()
        self.token, self.chat_id, self.sent = token, chat_id, 0

    def accept(self, path: str, doc: dict | None) -> Answer:
        if path != f"/bot{self.token}/sendMessage":
            return Answer(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        if not doc or "parse_mode" in doc or not 0 < utf16_length(doc.get("text", "")) <= 4096:
            return Answer(400, {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"})
        if doc.get("chat_id") != self.chat_id:
            return Answer(400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
        self.sent += 1
        return Answer(200, {"ok": True, "result": {"message_id": self.sent, "chat": {"id": self.chat_id},
                                                   "text": doc["text"]}})


def self_signed_certificate(folder: Path) -> tuple[Path, Path] | None:
    """(certificate, key) for 127.0.0.1 and localhost, made with the openssl CLI; None without it."""
    if shutil.which("openssl") is None:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: EmailMessage
    tls: bool
    login: str | None


class Mailbox:
    """An aiosmtpd handler: takes every message, except that RCPT of an address in `refuse` gets its reply."""

    def __init__(self) -> None:
        self.mail: list[Mail] = []
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.mail.append(Mail(envelope.mail_from, list(envelope.rcpt_tos),
                              message_from_bytes(envelope.original_content, policy=policy.default),
                              tls=session.ssl is not None, login=login))
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on loopback, in the test's own event loop. With `certificate` it offers STARTTLS and refuses mail
    before it; with `credentials` it requires AUTH (after STARTTLS)."""

    def __init__(self, certificate: tuple[Path, Path] | None = None,
                 credentials: tuple[str, str] | None = None) -> None:
        self.mailbox = Mailbox()
        self.port = 0
        self._credentials = credentials
        self._tls = None
        if certificate is not None:
            self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._tls.load_cert_chain(*certificate)
        self._server: asyncio.Server | None = None

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        good = isinstance(auth_data, LoginPassword) and self._credentials is not None and (
            auth_data.login.decode(), auth_data.password.decode()) == self._credentials
        return AuthResult(success=good, handled=False, auth_data=auth_data if good else None)

    def _protocol(self) -> SMTP:
        return SMTP(self.mailbox, hostname="smtp.test", tls_context=self._tls, require_starttls=self._tls is not None,
                    authenticator=self._authenticate if self._credentials else None,
                    auth_required=self._credentials is not None, loop=asyncio.get_running_loop())

    async def start(self) -> SmtpServer:
        self._server = await asyncio.get_running_loop().create_server(self._protocol, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
