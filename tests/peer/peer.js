// A third-party SMPP server for the integration tests: node-smpp, not our code.
// Usage: node peer.js PORT RECORD_FILE [--throttle-every N] [--nack-every N]
// Accepts any bind, answers submit_sm with a message id, and appends one JSON line per
// accepted submit_sm to RECORD_FILE (destination, data_coding, esm_class, payload hex,
// arrival time in ms). Prints "listening" when ready.
"use strict";
const fs = require("fs");
const smpp = require("smpp");

const [port, recordFile, ...rest] = process.argv.slice(2);
const option = (name) => {
  const at = rest.indexOf(name);
  return at >= 0 ? parseInt(rest[at + 1], 10) : 0;
};
const throttleEvery = option("--throttle-every");
const nackEvery = option("--nack-every");
// Written synchronously before the answer: a peer killed with SIGKILL has recorded
// everything it answered.
const recordFd = fs.openSync(recordFile, "a");
let received = 0;
let accepted = 0;

const server = smpp.createServer((session) => {
  const bind = (pdu) => {
    session.send(pdu.response());
  };
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
    fs.writeSync(recordFd, JSON.stringify({
      destination: pdu.destination_addr,
      source: pdu.source_addr,
      source_ton: pdu.source_addr_ton,
      dest_ton: pdu.dest_addr_ton,
      data_coding: pdu.data_coding,
      esm_class: pdu.esm_class,
      registered_delivery: pdu.registered_delivery,
      udh: message.udh ? message.udh.map((u) => u.toString("hex")) : [],
      text: typeof message.message === "string" ? message.message : Buffer.from(message.message).toString("hex"),
      at: Date.now(),
    }) + "\n");
    session.send(pdu.response({ message_id: "peer" + accepted.toString(16) }));
  });
  session.on("error", () => {});
});
server.listen(parseInt(port, 10), "127.0.0.1", () => console.log("listening"));
process.on("SIGTERM", () => { fs.closeSync(recordFd); process.exit(0); });
