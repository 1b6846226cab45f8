// A third-party SMPP server for the integration tests: node-smpp, not our code.
// Usage: node peer.js PORT RECORD_FILE [--throttle-every N] [--nack-every N]
//        [--receipts] [--receipt-delay-ms N] [--fail-every N] [--duplicate-every N]
//        [--early-every N] [--decimal-receipts] [--same-receipt-ids] [--refuse-destination PREFIX]
//        [--long-reply udh8|udh16|sar] [--reply-every N]
// Accepts any bind, answers submit_sm with a message id (upper-case hex with leading
// zeros), and appends one JSON line per accepted submit_sm to RECORD_FILE (destination,
// data_coding, esm_class, payload hex, message id, arrival time in ms). Prints "listening"
// when ready.
// With --receipts, each submit_sm asking for one gets a delivery receipt (deliver_sm, text
// and TLVs) after a random delay up to --receipt-delay-ms (so they come out of order):
// UNDELIV err:001 for every Nth (--fail-every), sent twice for every Nth
// (--duplicate-every), sent before the submit_sm_resp for every Nth (--early-every), with
// the id in decimal when --decimal-receipts, exactly as in the submit_sm_resp when
// --same-receipt-ids (what Kannel's default matching needs). Destinations starting with PREFIX are
// refused for good (ESME_RINVDSTADR). Each receipt the gateway acknowledged is
// recorded as {"receipt": id, "stat": ..., "latency_ms": from deliver_sm to its response};
// one it refused is sent again a second later; one whose session closed goes on the latest
// bound session, as an SMSC keeps receipts for the next bind.
// With --long-reply, the recipient of each submit_sm answers with a long UCS-2 message in
// three parts sent out of order (3, 1, 2), told apart by a UDH with an 8- or 16-bit
// reference or by SAR TLVs; its text is recorded as {"long_reply": text}.
// With --reply-every N, the recipient of every Nth accepted submit_sm answers "Yes" 1.5 s
// later, recorded as {"reply": its number}.
"use strict";
const fs = require("fs");
const smpp = require("smpp");

const [port, recordFile, ...rest] = process.argv.slice(2);
const option = (name) => {
  const at = rest.indexOf(name);
  return at >= 0 ? parseInt(rest[at + 1], 10) : 0;
};
const flag = (name) => rest.includes(name);
const throttleEvery = option("--throttle-every");
const nackEvery = option("--nack-every");
const refuseAt = rest.indexOf("--refuse-destination");
const refuseDestination = refuseAt >= 0 ? rest[refuseAt + 1] : "";
const receiptsOn = flag("--receipts");
const receiptDelay = option("--receipt-delay-ms");
const failEvery = option("--fail-every");
const duplicateEvery = option("--duplicate-every");
const earlyEvery = option("--early-every");
const decimalReceipts = flag("--decimal-receipts");
const sameReceiptIds = flag("--same-receipt-ids");
const longReplyAt = rest.indexOf("--long-reply");
const longReply = longReplyAt >= 0 ? rest[longReplyAt + 1] : "";
const replyEvery = option("--reply-every");
// Cut in parts of 28 code units, its emoji (a surrogate pair) falls across parts 1 and 2.
const LONG_REPLY = "Merci beaucoup, à très bien🙂 Nous confirmons la réservation pour quatre personnes.";
// Written synchronously before the answer: a peer killed with SIGKILL has recorded
// everything it answered.
const recordFd = fs.openSync(recordFile, "a");
let received = 0;
let accepted = 0;

const record = (line) => fs.writeSync(recordFd, JSON.stringify(line) + "\n");
const stamp = (date) => date.toISOString().replace(/[-T:]/g, "").slice(2, 12);

function sendLongReply(session, pdu) {
  const text = Buffer.from(LONG_REPLY, "utf16le").swap16();  // UTF-16BE, as SMPP carries UCS-2
  const size = Math.ceil(text.length / 6) * 2;  // three parts, whole code units (a pair may be cut)
  const reference = longReply === "udh8" ? 0xa7 : 0xa7c3;
  record({ long_reply: LONG_REPLY });
  for (const seq of [3, 1, 2]) {
    const chunk = text.subarray((seq - 1) * size, seq * size);
    const fields = { source_addr: pdu.destination_addr, destination_addr: pdu.source_addr, data_coding: 8 };
    if (longReply === "sar") {
      session.deliver_sm({ ...fields, esm_class: 0, short_message: chunk, sar_msg_ref_num: reference,
                           sar_total_segments: 3, sar_segment_seqnum: seq });
    } else {
      const header = longReply === "udh8" ? [5, 0x00, 3, reference, 3, seq]
        : [6, 0x08, 4, reference >> 8, reference & 0xff, 3, seq];
      session.deliver_sm({ ...fields, esm_class: 0x40, short_message: Buffer.concat([Buffer.from(header), chunk]) });
    }
  }
}

function sendReceipt(session, pdu, id, number) {
  const stat = failEvery && number % failEvery === 0 ? "UNDELIV" : "DELIVRD";
  const shownId = sameReceiptIds ? id
    : decimalReceipts ? parseInt(id, 16).toString(10) : id.replace(/^0+/, "").toLowerCase();
  const now = stamp(new Date());
  const deliver = () => {
    // As an SMSC keeps receipts for the next bind: on the submit's session while it lives,
    // else on the latest bound one; sent again when unanswered within 10 s.
    const target = open.has(session) ? session : latest;
    if (!target || !open.has(target)) { setTimeout(deliver, 1000); return; }
    const sentAt = process.hrtime.bigint();
    let settled = false;  // this attempt answered, or given up for another
    setTimeout(() => { if (!settled) { settled = true; deliver(); } }, 10000);
    target.deliver_sm({
    source_addr: pdu.destination_addr,
    destination_addr: pdu.source_addr,
    esm_class: smpp.ESM_CLASS.MC_DELIVERY_RECEIPT,
    short_message: `id:${shownId} sub:001 dlvrd:${stat === "DELIVRD" ? "001" : "000"} submit date:${now} ` +
                   `done date:${now} stat:${stat} err:${stat === "DELIVRD" ? "000" : "001"} text:`,
    receipted_message_id: shownId,
    message_state: stat === "DELIVRD" ? 2 : 5,
  }, (response) => {
    if (settled) return;
    settled = true;
    if (response.command_status === 0) {
      record({ receipt: id, stat, latency_ms: Number(process.hrtime.bigint() - sentAt) / 1e6 });
    } else {
      setTimeout(deliver, 1000);  // the gateway could not store it: as an SMSC does, again later
    }
  }); };
  deliver();
  if (duplicateEvery && number % duplicateEvery === 0) {
    setTimeout(deliver, 20);
  }
}

const open = new Set();  // sessions bound and not closed
let latest = null;  // the last bound: receipts whose session died go there
const server = smpp.createServer((session) => {
  const bind = (pdu) => {
    session.send(pdu.response());
    open.add(session);
    latest = session;
  };
  session.on("close", () => open.delete(session));
  session.on("bind_transceiver", bind);
  session.on("bind_transmitter", bind);
  session.on("bind_receiver", bind);
  session.on("enquire_link", (pdu) => session.send(pdu.response()));
  session.on("unbind", (pdu) => {
    session.send(pdu.response());
    session.close();
  });
  session.on("submit_sm", (pdu) => {
    received += 1;
    if (throttleEvery && received % throttleEvery === 0) {
      session.send(pdu.response({ command_status: smpp.ESME_RTHROTTLED }));
      return;
    }
    if (refuseDestination && pdu.destination_addr.startsWith(refuseDestination)) {
      session.send(pdu.response({ command_status: smpp.ESME_RINVDSTADR }));  // for good
      return;
    }
    if (nackEvery && received % nackEvery === 0) {
      session.send(new smpp.PDU("generic_nack", { sequence_number: pdu.sequence_number,
                                                  command_status: smpp.ESME_RSYSERR }));
      return;
    }
    accepted += 1;
    const message = pdu.short_message;
    const payload = message.udh
      ? Buffer.concat([Buffer.concat(message.udh.map((u) => Buffer.concat([Buffer.from([u.length]), u]))), Buffer.from(message.message)])
      : null;
    const id = accepted.toString(16).toUpperCase().padStart(8, "0");
    const number = accepted;
    record({
      destination: pdu.destination_addr,
      source: pdu.source_addr,
      source_ton: pdu.source_addr_ton,
      dest_ton: pdu.dest_addr_ton,
      data_coding: pdu.data_coding,
      esm_class: pdu.esm_class,
      priority: pdu.priority_flag,
      validity: pdu.validity_period ? String(pdu.validity_period) : "",
      registered_delivery: pdu.registered_delivery,
      udh: message.udh ? message.udh.map((u) => u.toString("hex")) : [],
      text: typeof message.message === "string" ? message.message : Buffer.from(message.message).toString("hex"),
      message_id: id,
      at: Date.now(),
    });
    const answer = () => session.send(pdu.response({ message_id: id }));
    if (longReply) setTimeout(() => sendLongReply(session, pdu), 1500);  // a person answers later
    if (replyEvery && number % replyEvery === 0) {
      setTimeout(() => {
        record({ reply: pdu.destination_addr });
        session.deliver_sm({ source_addr: pdu.destination_addr, destination_addr: pdu.source_addr, esm_class: 0,
                             short_message: "Yes" });
      }, 1500);
    }
    if (!(receiptsOn && pdu.registered_delivery & 1)) {
      answer();
      return;
    }
    if (earlyEvery && number % earlyEvery === 0) {
      sendReceipt(session, pdu, id, number);
      setTimeout(answer, 30);
      return;
    }
    answer();
    setTimeout(() => sendReceipt(session, pdu, id, number), Math.random() * receiptDelay);
  });
  session.on("error", () => {});
});
server.listen(parseInt(port, 10), "127.0.0.1", () => console.log("listening"));
process.on("SIGTERM", () => { fs.closeSync(recordFd); process.exit(0); });
