"""What SMSCs deliver back (deliver_sm): receipts, applied in batches, and replies.

A receipt is answered only once it is stored, or with a temporary error so that the SMSC
sends it again: a receipt is never acknowledged and then lost. Batches of up to 1,000,
flushed every 0.1 s, keep PostgreSQL from paying one commit per receipt.
"""

from __future__ import annotations

import asyncio
import re
import time
import unicodedata
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import structlog

from ecosms_gw import metrics
from ecosms_gw.config import Config, SmscConfig
from ecosms_gw.config_values import OptOutScope
from ecosms_gw.core import concat, receipts
from ecosms_gw.smpp.codec import ESME_ROK
from ecosms_gw.store import Store, StoreError
from ecosms_gw.store.notifications import Mail
from ecosms_gw.store.receipts import Answered, Keyword, PartsKey, Receipt

log = structlog.get_logger()

FLUSH_INTERVAL_S = 0.1
PARTS_WAIT = timedelta(minutes=5)  # the parts of a reply may come this far apart
PARTS_SWEEP_S = 30.0
BATCH = 1000
ESME_RX_T_APPN = 0x64  # temporary application error: the SMSC retries later
_RECEIPT_KINDS = 0x3C  # esm_class bits saying what a deliver_sm is; 0: a message from a phone


def keyword(text: str) -> str:
    """A reply as compared with the STOP keywords: no accents, case, punctuation around
    it, or repeated spaces ("  Arrêt ! " is "ARRET")."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return " ".join(re.sub(r"^\W+|\W+$", "", plain).upper().split())


def _text(value: bytes | str | None) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else (value or "")


class Deliveries:
    def __init__(self, store: Store, config: Config | None = None) -> None:
        self.store = store
        self.config = config or Config()
        self.stop_keywords = {keyword(word) for word in self.config.replies.stop_keywords}
        self.start_keywords = {keyword(word) for word in self.config.replies.start_keywords}
        # per SMSC: (receipt, answered once stored, arrival time) waiting for the next flush
        self.waiting: dict[str, list[tuple[Receipt, asyncio.Future[None], float]]] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.flushes: set[asyncio.Task[None]] = set()

    def handler(self, smsc: SmscConfig) -> Callable[[Any], Awaitable[int]]:
        """The deliver_sm handler of one SMSC connection."""
        async def on_deliver(pdu: Any) -> int:
            return await self._on_deliver(smsc, pdu)
        return on_deliver

    async def _on_deliver(self, smsc: SmscConfig, pdu: Any) -> int:
        if not (pdu.esm_class or 0) & _RECEIPT_KINDS:
            return await self._on_reply(smsc, pdu)
        tlvs = {name: getattr(pdu, name, None)
                for name in ("receipted_message_id", "message_state", "network_error_code")}
        receipt = receipts.parse(pdu.short_message, tlvs, smsc.receipt_id_format)
        if receipt is None:
            log.warning("receipt_unreadable", smsc=smsc.name, text=repr(pdu.short_message)[:120])
            return ESME_ROK
        if not receipt.final:
            return ESME_ROK  # ENROUTE, ACCEPTD: the final one follows
        part_state = receipts.PART_STATE[receipt.stat]
        stored = asyncio.get_running_loop().create_future()
        batch = self.waiting.setdefault(smsc.name, [])
        batch.append((Receipt(receipt.message_id, part_state, receipt.error), stored, time.monotonic()))
        if len(batch) >= BATCH:
            self._flush_soon(smsc.name, 0)
        elif smsc.name not in self.timers:
            self._flush_soon(smsc.name, FLUSH_INTERVAL_S)
        try:
            await stored
        except StoreError:
            return ESME_RX_T_APPN
        return ESME_ROK

    async def _on_reply(self, smsc: SmscConfig, pdu: Any) -> int:
        """A message from a phone, or a part of one (UDH or SAR): parts are kept until the
        last comes, then stored as one reply."""
        number = "+" + _text(pdu.source_addr).lstrip("+")
        destination, data_coding = _text(pdu.destination_addr), pdu.data_coding or 0
        place, payload = concat.split_header(pdu.short_message or b"", pdu.esm_class or 0)
        place = place or concat.sar_place(getattr(pdu, "sar_msg_ref_num", None),
                                          getattr(pdu, "sar_total_segments", None),
                                          getattr(pdu, "sar_segment_seqnum", None))
        key = None
        if place is not None and place.total > 1:
            key = PartsKey(smsc.name, number, destination, place.reference)
            try:
                payloads = await self.store.receipts.keep_reply_part(key, place.total, place.seq, data_coding,
                                                                     payload)
            except StoreError as error:
                log.error("reply_not_stored", smsc=smsc.name, error=str(error))
                return ESME_RX_T_APPN
            if payloads is None:
                return ESME_ROK  # the other parts are awaited
            payload = b"".join(payloads)
        return await self._record_reply(smsc.name, number, destination, concat.text_of(payload, data_coding), key)

    async def complete_stale_replies(self, every_s: float = PARTS_SWEEP_S) -> None:
        """Every `every_s`, the messages from phones whose other parts did not come within
        `PARTS_WAIT`: stored with the parts that came (any daemon may do it; one does)."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.complete_stale(PARTS_WAIT)
            except StoreError as error:
                log.warning("reply_parts_sweep_failed", error=str(error))

    async def complete_stale(self, wait: timedelta) -> None:
        for stale in await self.store.receipts.stale_reply_parts(wait):
            log.warning("reply_parts_missing", smsc=stale.key.smsc, number=stale.key.source,
                        parts=len(stale.payloads))
            await self._record_reply(stale.key.smsc, stale.key.source, stale.key.destination,
                                     concat.text_of(b"".join(stale.payloads), stale.data_coding), stale.key)

    async def _record_reply(self, smsc: str, number: str, destination: str, text: str,
                            parts: PartsKey | None) -> int:
        """A whole message from a phone: the message it answers becomes `rep`; STOP opts out;
        its mailing's reply address (else the account's) gets it by e-mail."""
        said = keyword(text)
        asked: Keyword = "stop" if said in self.stop_keywords else "start" if said in self.start_keywords else None

        def mail(answered: Answered) -> Mail | None:
            """The reply e-mail, stored with the reply (sent by the mailer, retried)."""
            if not answered.reply_email:
                return None
            subject = answered.reply_subject or self.config.replies.subject.format(number=number,
                                                                                  id=answered.message_id)
            change = {"stop": "\nThe number is now opted out.\n", "start": "\nThe number is opted in again.\n"}
            body = f"{number} answered SMS #{answered.message_id}:\n\n{text}\n\n" \
                   f"Your SMS was:\n\n{answered.text}\n" + change.get(asked or "", "")
            return Mail(answered.reply_email, subject, body, answered.reply_from)

        try:
            answered = await self.store.receipts.record_reply(
                smsc, number, destination, text, asked, mail, parts,
                everywhere=self.config.replies.optout_scope == OptOutScope.GLOBAL)
        except StoreError as error:
            log.error("reply_not_stored", smsc=smsc, error=str(error))
            return ESME_RX_T_APPN
        log.info("reply_received", smsc=smsc, number=number, keyword=asked,
                 message_id=answered.message_id if answered else None,
                 account=answered.account if answered else None)
        return ESME_ROK

    def _flush_soon(self, name: str, delay: float) -> None:
        if timer := self.timers.pop(name, None):
            timer.cancel()
        loop = asyncio.get_running_loop()

        def start() -> None:
            self.timers.pop(name, None)
            task = asyncio.create_task(self._flush(name))
            self.flushes.add(task)
            task.add_done_callback(self.flushes.discard)

        self.timers[name] = loop.call_later(delay, start)

    async def _flush(self, name: str) -> None:
        batch = self.waiting.pop(name, [])
        if not batch:
            return
        try:
            outcome = await self.store.receipts.apply(name, [receipt for receipt, _, _ in batch])
        except StoreError as error:
            log.error("receipts_not_stored", smsc=name, receipts=len(batch), error=str(error))
            for _, stored, _ in batch:
                if not stored.done():
                    stored.set_exception(error)
            return
        log.info("receipts_applied", smsc=name, applied=outcome.applied, kept_for_later=outcome.kept,
                 duplicates=len(batch) - outcome.applied - outcome.kept)
        now = time.monotonic()
        for decided in outcome.decided:
            metrics.RECEIPTS.labels(name, decided.state).inc()
            if decided.latency_s is not None:
                metrics.RECEIPT_LATENCY.labels(name).observe(decided.latency_s)
        for _, stored, arrived in batch:
            metrics.RECEIPT_LAG.observe(now - arrived)
            if not stored.done():
                stored.set_result(None)
