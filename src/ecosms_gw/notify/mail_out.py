"""Mail the gateway sends itself (submission reports, reply forwarding): stored first, then
sent through the configured relay by the `Mailer` task, with backoff for
`mail_out.retry_hours`, so that a relay that is down loses nothing and a mail never
delays or changes what the customer was told. Several daemons share the work (leases)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage

import structlog

from ecosms_gw.config import MailOutConfig
from ecosms_gw.core.ping import backoff_s
from ecosms_gw.store import Store, StoreError
from ecosms_gw.store.notifications import QueuedMail

log = structlog.get_logger()

TIMEOUT_S = 30
CLAIM = 20  # mails taken at a time
IDLE_S = 1.0


def message(settings: MailOutConfig, mail: QueuedMail) -> EmailMessage:
    """The mail as sent: From is the mail's own sender when it has one (a mailing's
    `emailSender`); the envelope sender stays `mail_out.from`, so that bounces come to us."""
    built = EmailMessage()
    built["From"] = mail.sender or settings.from_
    built["To"] = mail.recipient
    built["Subject"] = mail.subject
    built["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    built.set_content(mail.body)
    return built


def deliver(settings: MailOutConfig, built: EmailMessage) -> None:
    """One mail through the relay, with STARTTLS and AUTH when configured (blocking)."""
    with smtplib.SMTP(settings.relay.host, settings.relay.port, timeout=TIMEOUT_S) as relay:
        if settings.starttls:
            relay.starttls(context=ssl.create_default_context())
        if settings.username:
            relay.login(settings.username, settings.password)
        relay.send_message(built, from_addr=settings.from_)


def permanent(error: Exception) -> bool:
    """The relay refused for good (5xx): retrying would not help."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    return isinstance(error, smtplib.SMTPResponseException) and error.smtp_code >= 500


class Mailer:
    def __init__(self, store: Store, settings: MailOutConfig,
                 backoff: Callable[[int], float] = backoff_s) -> None:
        self.store = store
        self.settings = settings
        self.backoff = backoff
        self.lease = timedelta(seconds=CLAIM * TIMEOUT_S * 2)  # longer than a whole claim's sending

    async def run(self) -> None:
        while True:
            try:
                mails = await self.store.notifications.claim_mail(CLAIM, self.lease)
            except StoreError as error:
                log.warning("mail_out_unavailable", error=str(error))
                mails = []
            for mail in mails:
                await self._send(mail)
            if len(mails) < CLAIM:
                await asyncio.sleep(IDLE_S)

    async def _send(self, mail: QueuedMail) -> None:
        try:
            await asyncio.to_thread(deliver, self.settings, message(self.settings, mail))
        except (OSError, smtplib.SMTPException) as error:
            retry_for = timedelta(0) if permanent(error) else timedelta(hours=self.settings.retry_hours)
            retry_in = timedelta(seconds=self.backoff(mail.attempts))
            try:
                given_up = await self.store.notifications.mail_failed(mail.id, retry_in, retry_for, str(error)[:500])
            except StoreError:
                return  # the lease brings it back
            if given_up:
                log.error("mail_out_given_up", to=mail.recipient, subject=mail.subject, error=str(error),
                          attempts=mail.attempts + 1)
            else:
                log.warning("mail_out_failed", to=mail.recipient, subject=mail.subject, error=str(error),
                            retry_in_s=retry_in.total_seconds())
            return
        log.info("mail_out_sent", to=mail.recipient, subject=mail.subject, attempts=mail.attempts + 1)
        try:
            await self.store.notifications.mail_sent(mail.id)
        except StoreError as error:  # sent again when the lease ends: better twice than never
            log.warning("mail_out_not_recorded", error=str(error))
