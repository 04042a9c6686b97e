"""The email channel: one plain-text message over SMTP (aiosmtplib), and what the server's replies mean for the
delivery.

The SMTP server comes from the operator's configuration file only, never from an API body or a finding, so it is
not checked against the network policy that guards webhook URLs: a relay on localhost or the LAN is the usual case.

With `starttls` (the default) the message travels only over TLS. A server that does not offer STARTTLS is a dead
letter, never a fallback to the clear: a server that stops offering it may be someone in the path stripping it.
The certificate is verified, hostname included, against the system's CAs or `ca_file`; one that does not verify
is dead too (sending again cannot make it trusted; fix the certificate or `ca_file`, then redrive). Credentials
are sent only after the upgrade. `starttls = false` sends in the clear without trying, for a trusted local relay.

Replies: accepted for at least one recipient is delivered; a connection that fails, drops or times out is retried;
a 4xx reply (transient: 421, 451, 452, 454) is retried; a 5xx reply (permanent: 550 recipient refused, 535
authentication failed, 554) is dead. A server that accepts some recipients and refuses others has delivered
(sending again would repeat the message to those who have it); the refused ones are logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aiosmtplib

from .. import log
from .message import clip, line, render
from .outcome import Dead, Delivered, Outcome, Retry
from .webhook import delivery_id

SUBJECT_LIMIT = 200
QUIT_TIMEOUT = 2.0  # seconds for a polite QUIT after the message was accepted; its failure changes nothing
ACCEPTED = 250

_log = log.get("kamiyo.alerts")


def compose(channel, event: str, finding: dict) -> EmailMessage:
    """The message: subject "[SEVERITY] kind on chain N" (prefixed for a retraction or a test), the rendered text
    as a UTF-8 text/plain body, the delivery id as a header so a mail filter can drop a repeat."""
    rendered = render(event, finding)
    message = EmailMessage()
    message["Subject"] = clip(rendered.headline, SUBJECT_LIMIT)
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    message["Date"] = format_datetime(datetime.now(timezone.utc))
    # An explicit domain: without one make_msgid asks socket.getfqdn(), a blocking lookup on the event loop.
    message["Message-ID"] = make_msgid("kamiyo", domain=channel.sender.rpartition("@")[2] or "kamiyo.invalid")
    message["X-Kamiyo-Delivery-Id"] = delivery_id(line(finding.get("id") or ""), event)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to an alert
    message.set_content(rendered.text)
    return message


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Certificate and hostname verification against `ca_file`, or the system's CAs without one."""
    return ssl.create_default_context(cafile=ca_file)


async def send(channel, event: str, finding: dict, timeout: float) -> Outcome:
    where = f"{channel.host}:{channel.port}"
    if (channel.username is None) != (channel.password is None):
        return Dead("email: username and password go together; set both or neither")
    try:
        message = compose(channel, event, finding)
    except (TypeError, ValueError) as exc:  # an address the email package refuses
        return Dead(f"email: cannot compose the message: {exc}")
    try:
        context = await asyncio.to_thread(tls_context, channel.ca_file) if channel.starttls else None
    except (OSError, ssl.SSLError) as exc:
        return Dead(f"email: cannot load ca_file {channel.ca_file}: {exc}")
    try:
        client = aiosmtplib.SMTP(hostname=channel.host, port=channel.port, timeout=timeout, use_tls=False,
                                 start_tls=False, tls_context=context)
    except ValueError as exc:
        return Dead(f"email: {exc}")
    try:
        try:
            async with asyncio.timeout(timeout):  # the whole session, however many replies it takes
                outcome = await _session(client, channel, message, where)
        except (aiosmtplib.SMTPException, OSError, TimeoutError, ValueError) as exc:
            return judge(exc, where, timeout)
        if isinstance(outcome, Delivered):
            await _quit(client)
        return outcome
    finally:
        client.close()


async def _session(client: aiosmtplib.SMTP, channel, message: EmailMessage, where: str) -> Outcome:
    await client.connect()
    if channel.starttls:
        await client.ehlo()
        if not client.supports_extension("starttls"):
            return Dead(f"email: {where} does not offer STARTTLS; refusing to send in the clear "
                        "(starttls = false is for a trusted local relay)")
        await client.starttls()
    if channel.username is not None:
        await client.login(channel.username, channel.password)
    refused, _ = await client.send_message(message, sender=channel.sender, recipients=list(channel.to))
    if refused:
        _log.warning("alert.email_recipients_refused", channel=channel.name, server=where,
                     refused={address: f"{reply.code} {line(reply.message)}" for address, reply in refused.items()})
    return Delivered(ACCEPTED)


def judge(exc: BaseException, where: str, timeout: float) -> Outcome:
    """What a failed SMTP session comes to. The order matters: a certificate error is also an OSError and a
    ValueError, and a refused greeting (SMTPConnectResponseError) both a reply with a code and a connect error."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Dead(f"email: {where} presented a certificate that does not verify ({exc.verify_message}); "
                    "set ca_file to the CA that issued it")
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        replies = exc.recipients
        text = "; ".join(f"{r.recipient}: {r.code} {line(r.message)}" for r in replies)
        permanent = all(500 <= r.code < 600 for r in replies)
        return (Dead if permanent else Retry)(clip(f"email: {where} refused every recipient: {text}", 300))
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        text = clip(f"email: {where} replied {exc.code} {line(exc.message)}", 300)
        return Dead(text) if 500 <= exc.code < 600 else Retry(text)
    if isinstance(exc, TimeoutError):
        return Retry(f"email: {where} timed out (after {timeout:g} s at most)")
    if isinstance(exc, OSError):  # refused, reset, dropped (SMTPServerDisconnected), a TLS handshake failure
        return Retry(clip(f"email: {where}: {type(exc).__name__}: {line(exc)}", 300))
    # What is left cannot change by sending again: an extension the server lacks (AUTH, SMTPUTF8), a bad address.
    return Dead(clip(f"email: {where}: {type(exc).__name__}: {line(exc)}", 300))


async def _quit(client: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
        async with asyncio.timeout(QUIT_TIMEOUT):
            await client.quit()
