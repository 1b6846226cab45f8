"""Mail the gateway sends itself (submission reports, reply forwarding) through the
configured relay. A failure is logged and never affects what the customer was told."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

import structlog

from .config import MailOutConfig

log = structlog.get_logger()
TIMEOUT_S = 30


async def send(settings: MailOutConfig, to: str, subject: str, body: str) -> bool:
    """Send one plain-text mail; True when the relay took it."""
    message = EmailMessage()
    message["From"] = settings.from_
    message["To"] = to
    message["Subject"] = subject
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    message.set_content(body)
    host, _, port = settings.relay.rpartition(":")
    try:
        await asyncio.to_thread(_deliver, host.strip("[]"), int(port), message)
    except (OSError, smtplib.SMTPException) as error:
        log.warning("mail_out_failed", to=to, subject=subject, error=str(error))
        return False
    log.info("mail_out_sent", to=to, subject=subject)
    return True


def _deliver(host: str, port: int, message: EmailMessage) -> None:
    with smtplib.SMTP(host, port, timeout=TIMEOUT_S) as relay:
        relay.send_message(message)
