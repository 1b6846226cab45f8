// A third-party SMPP client for the tests: node-smpp's client, not our code.
// Usage: node esme.js PORT SYSTEM_ID PASSWORD SCENARIO_FILE RESULT_FILE
// The scenario (JSON): {"mode": "transceiver", "submits": [{"destination", "message",
// "parts": [hex of a UDH, ...] (then "message" is a list of the parts' texts),
// "data_coding"}], "receipts": N, "then": [{"query": ID}, {"cancel": ID}, ...]}, where an
// ID is a message id, or "#k" for the id the k-th submit was answered with.
// It binds, submits everything at once (node-smpp pipelines them), writes one JSON line
// per answer {"submit": index, "part": n, "status", "message_id"}, waits for N receipts
// (each {"receipt": id, "stat": stat, "tlv": receipted_message_id}), then queries and
// cancels in order ({"query": id, "status", "state"}, {"cancel": id, "status"}), unbinds
// and writes {"done": true}. A refused bind is {"bind": status}. With "window": W, at most
// W submits wait for their answer at once, and it writes {"submitted": n, "answered_s":
// from the first submit to the last answer, "receipts_s": to the last receipt} instead of
// a line per answer (for benches).
"use strict";
const fs = require("fs");
const smpp = require("smpp");

const [port, systemId, password, scenarioFile, resultFile] = process.argv.slice(2);
const scenario = JSON.parse(fs.readFileSync(scenarioFile, "utf8"));
const out = fs.openSync(resultFile, "w");
const record = (line) => fs.writeSync(out, JSON.stringify(line) + "\n");
const session = smpp.connect({ url: `smpp://127.0.0.1:${port}`, auto_enquire_link_period: 10000 });
const receipts = [];
let expected = scenario.receipts || 0;

const request = (command, fields) => new Promise((resolve) => session[command](fields, resolve));

session.on("deliver_sm", (pdu) => {
  session.send(pdu.response());
  const text = Buffer.isBuffer(pdu.short_message.message) ? pdu.short_message.message.toString()
    : pdu.short_message.message;
  const match = /id:(\d+) .*stat:(\w+)/.exec(text || "");
  if (pdu.esm_class & 0x04 && match) {
    receipts.push(match[1]);
    if (scenario.window === undefined) record({ receipt: match[1], stat: match[2], tlv: pdu.receipted_message_id });
  }
});
session.on("error", (error) => record({ error: String(error) }));

async function run() {
  const bound = await request(`bind_${scenario.mode || "transceiver"}`, { system_id: systemId, password });
  if (bound.command_status !== 0) {
    record({ bind: bound.command_status });
    return finish();
  }
  const answers = [];
  const ids = [];
  const window = scenario.window || Infinity;
  let waiting = 0;
  const started = Date.now();
  let wake = null;  // the submit loop, waiting for a place in the window
  const free = () => new Promise((resolve) => { wake = resolve; });
  for (const [index, submit] of scenario.submits.entries()) {
    const pieces = submit.parts ? submit.parts.map((udh, n) => ({ udh: Buffer.from(udh, "hex"), message: submit.message[n] }))
      : [submit.message];
    for (const [part, piece] of pieces.entries()) {
      const fields = { destination_addr: submit.destination, dest_addr_ton: 1, dest_addr_npi: 1,
                       source_addr: submit.source || "", source_addr_ton: 5, registered_delivery: 1,
                       short_message: piece };
      if (submit.parts) fields.esm_class = 0x40;
      if (submit.data_coding !== undefined) fields.data_coding = submit.data_coding;
      if (waiting >= window) await free();
      waiting += 1;
      answers.push(request("submit_sm", fields).then((pdu) => {
        waiting -= 1;
        if (wake) {
          const resume = wake;
          wake = null;
          resume();
        }
        ids[index] = pdu.message_id;
        if (scenario.window === undefined) {
          record({ submit: index, part, status: pdu.command_status, message_id: pdu.message_id });
        } else if (pdu.command_status !== 0) {
          record({ submit: index, status: pdu.command_status });
        }
      }));
    }
  }
  await Promise.all(answers);
  const answered = Date.now();
  const deadline = Date.now() + 120000;
  while (receipts.length < expected && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (scenario.window !== undefined) {
    record({ submitted: answers.length, answered_s: (answered - started) / 1000, receipts_s: (Date.now() - started) / 1000 });
  }
  const idOf = (ref) => (ref.startsWith("#") ? ids[parseInt(ref.slice(1), 10)] : ref);
  for (const step of scenario.then || []) {
    if (step.query !== undefined) {
      const pdu = await request("query_sm", { message_id: idOf(step.query), source_addr: "" });
      record({ query: idOf(step.query), status: pdu.command_status, state: pdu.message_state });
    } else {
      const pdu = await request("cancel_sm", { message_id: idOf(step.cancel), source_addr: "", destination_addr: "" });
      record({ cancel: idOf(step.cancel), status: pdu.command_status });
    }
  }
  await request("unbind", {});
  finish();
}

function finish() {
  record({ done: true });
  fs.closeSync(out);
  session.close();
  process.exit(0);
}

run().catch((error) => {
  record({ error: String(error) });
  finish();
});
