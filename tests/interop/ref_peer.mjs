// A reference SDS peer for tests/interop_reference.rs.
//
// Wraps one MessageChannel of @waku/sds (the TypeScript reference implementation of the SDS
// spec) and speaks newline-delimited JSON: one command object per stdin line, one response
// object per stdout line, in order. Byte strings travel as lowercase hex. Every response carries
// the channel events emitted while the command ran (`events: [{type, detail}]`). A failing
// command answers `{error}` and the process keeps running. Nothing else is written to stdout.
//
// Commands (field `cmd`):
//   new          {channel, sender, causalHistorySize?, possibleAcksThreshold?, enableRepair?}
//   send         {hex, hint?}   -> {wire, messageId}        (callback reports success + hint)
//   sendEphemeral{hex}          -> {wire, messageId}
//   sendSync     {}             -> {wire|null, messageId|null}
//   receive      {hex, hint?}   -> {accepted}               (Message.decode + processTasks)
//   sweep        {}             -> {missing}                (sweepIncomingBuffer)
//   decode       {hex}          -> decoded fields, kind, bloom digest, re-encoding check
//   bloomLookup  {hex|bloom, ids} -> {results: [bool]}      (DefaultBloomFilter.fromBytes)
//   bloomBuild   {ids}          -> {bloom}                  (DefaultBloomFilter.insert)
//   state        {}             -> {lamport, outgoing, history, incoming}
//   ping         {}             -> {node, sds}

import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { serve } from "../node_peer/serve.mjs";

import { proto_sds_message } from "@waku/proto";
import {
  isContentMessage,
  isEphemeralMessage,
  isSyncMessage,
  Message,
  MessageChannel,
  MessageChannelEvent
} from "@waku/sds";
// Not re-exported by the package entry point; imported by path (bypasses the exports map).
import { DefaultBloomFilter } from "./node_modules/@waku/sds/dist/bloom_filter/bloom.js";

// Keep stdout for the protocol only.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

const require = createRequire(import.meta.url);
const SDS_VERSION = require("./node_modules/@waku/sds/package.json").version;
const BLOOM_OPTIONS = { capacity: 10000, errorRate: 0.001 };

const toHex = (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
const fromHex = (h) => {
  if (typeof h !== "string" || !/^([0-9a-fA-F]{2})*$/.test(h)) throw new Error(`bad hex: ${h}`);
  return new Uint8Array(Buffer.from(h, "hex")); // a fresh, unpooled copy
};
const optHex = (h) => (h === undefined || h === null ? undefined : fromHex(h));
const sha256Hex = (b) => createHash("sha256").update(b).digest("hex");

function kindOf(m) {
  if (!m) return "invalid";
  if (isContentMessage(m)) return "content";
  if (isSyncMessage(m)) return "sync";
  if (isEphemeralMessage(m)) return "ephemeral";
  return "invalid";
}

function entry(e) {
  return {
    messageId: e.messageId,
    retrievalHint: e.retrievalHint === undefined ? null : toHex(e.retrievalHint),
    senderId: e.senderId === undefined ? null : e.senderId
  };
}

// JSON-friendly form of an event detail (message ids stay plain strings).
function summarize(d) {
  if (d === undefined || d === null) return null;
  if (typeof d === "string" || typeof d === "number" || typeof d === "boolean") return d;
  if (typeof d === "bigint") return d.toString();
  if (d instanceof Uint8Array) return toHex(d);
  if (d instanceof Error) return String(d.stack ?? d);
  if (Array.isArray(d)) return d.map(summarize);
  if (d instanceof Message) {
    return {
      messageId: d.messageId,
      senderId: d.senderId,
      channelId: d.channelId,
      lamport: d.lamportTimestamp === undefined ? null : d.lamportTimestamp.toString(),
      kind: kindOf(d)
    };
  }
  if (typeof d === "object") {
    if (typeof d.messageId === "string" && !("count" in d) && !("tReq" in d) && !("tResp" in d)) {
      return entry(d); // a HistoryEntry
    }
    const o = {};
    for (const [k, v] of Object.entries(d)) o[k] = summarize(v);
    return o;
  }
  return String(d);
}

let channel = null;
let events = [];

function takeEvents() {
  const e = events;
  events = [];
  return e;
}

function needChannel() {
  if (!channel) throw new Error("no channel: send `new` first");
  return channel;
}

const handlers = {
  async ping() {
    return { node: process.version, sds: SDS_VERSION };
  },

  async new(c) {
    if (typeof c.channel !== "string" || typeof c.sender !== "string") {
      throw new Error("new: channel and sender (strings) are required");
    }
    const options = { enableRepair: c.enableRepair ?? false };
    if (c.causalHistorySize !== undefined) options.causalHistorySize = c.causalHistorySize;
    if (c.possibleAcksThreshold !== undefined) options.possibleAcksThreshold = c.possibleAcksThreshold;
    channel = new MessageChannel(c.channel, c.sender, options);
    events = [];
    for (const type of Object.values(MessageChannelEvent)) {
      channel.addEventListener(type, (ev) => events.push({ type, detail: summarize(ev.detail) }));
    }
    return { ok: true };
  },

  async send(c) {
    const ch = needChannel();
    const payload = fromHex(c.hex);
    const hint = optHex(c.hint);
    let wire = null;
    let messageId = null;
    ch.pushOutgoingMessage(payload, async (m) => {
      wire = toHex(m.encode());
      messageId = m.messageId;
      return { success: true, retrievalHint: hint };
    });
    await ch.processTasks();
    if (wire === null) throw new Error("send: the channel did not call the send callback");
    return { wire, messageId };
  },

  async sendEphemeral(c) {
    const ch = needChannel();
    let wire = null;
    let messageId = null;
    await ch.pushOutgoingEphemeralMessage(fromHex(c.hex), async (m) => {
      wire = toHex(m.encode());
      messageId = m.messageId;
      return true;
    });
    await ch.processTasks();
    if (wire === null) throw new Error("sendEphemeral: the channel did not call the callback");
    return { wire, messageId };
  },

  async sendSync() {
    const ch = needChannel();
    let wire = null;
    let messageId = null;
    const sent = await ch.pushOutgoingSyncMessage(async (m) => {
      wire = toHex(m.encode());
      messageId = m.messageId;
      return true;
    });
    return { sent, wire, messageId };
  },

  async receive(c) {
    const ch = needChannel();
    const msg = Message.decode(fromHex(c.hex));
    if (!msg) return { accepted: false };
    ch.pushIncomingMessage(msg, optHex(c.hint));
    await ch.processTasks();
    return { accepted: true, kind: kindOf(msg), messageId: msg.messageId };
  },

  async sweep() {
    const missing = needChannel().sweepIncomingBuffer();
    return { missing: missing.map(entry) };
  },

  async decode(c) {
    const bytes = fromHex(c.hex);
    const p = proto_sds_message.SdsMessage.decode(bytes);
    const reencoded = proto_sds_message.SdsMessage.encode(p);
    return {
      kind: kindOf(Message.decode(bytes)),
      senderId: p.senderId,
      messageId: p.messageId,
      channelId: p.channelId,
      lamport: p.lamportTimestamp === undefined ? null : p.lamportTimestamp.toString(),
      causalHistory: p.causalHistory.map(entry),
      repairRequest: p.repairRequest.map(entry),
      bloomLen: p.bloomFilter === undefined ? null : p.bloomFilter.length,
      bloomSha256: p.bloomFilter === undefined ? null : sha256Hex(p.bloomFilter),
      content: p.content === undefined ? null : toHex(p.content),
      reencodedSame: Buffer.compare(Buffer.from(reencoded), Buffer.from(bytes)) === 0
    };
  },

  async bloomLookup(c) {
    let bloom;
    if (c.bloom !== undefined) {
      bloom = fromHex(c.bloom);
    } else {
      bloom = proto_sds_message.SdsMessage.decode(fromHex(c.hex)).bloomFilter;
      if (bloom === undefined) throw new Error("bloomLookup: the message has no bloom filter");
    }
    const f = DefaultBloomFilter.fromBytes(bloom, BLOOM_OPTIONS);
    return { totalBits: f.totalBits, kHashes: f.kHashes, results: c.ids.map((id) => f.lookup(id)) };
  },

  async bloomBuild(c) {
    const f = new DefaultBloomFilter(BLOOM_OPTIONS);
    for (const id of c.ids) f.insert(id);
    return { bloom: toHex(f.toBytes()) };
  },

  // Private fields of the reference channel, read for assertions and diagnostics.
  async state() {
    const ch = needChannel();
    return {
      lamport: ch.lamportTimestamp.toString(),
      outgoing: ch.outgoingBuffer.map((m) => m.messageId),
      history: ch.localHistory.slice().map((m) => m.messageId),
      incoming: ch.incomingBuffer.map((m) => m.messageId)
    };
  }
};

await serve(handlers, () => ({ events: takeEvents() }));
