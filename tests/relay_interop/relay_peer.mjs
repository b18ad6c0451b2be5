// A js-waku Waku Relay node for tests/relay_interop.rs.
//
// libp2p 2.x (TCP + Noise + Yamux, identify, ping) with @chainsafe/libp2p-gossipsub configured
// as js-waku's relay configures it (protocol /vac/waku/relay/2.0.0, StrictNoSign, message id =
// sha256(data), nwaku's mesh parameters, a validator refusing empty payloads and content topics),
// optionally js-waku's metadata service (@waku/core wakuMetadata), WakuMessages encoded with
// @waku/proto and hashed with @waku/core, SDS messages built and parsed with @waku/sds.
// The npm @waku/relay is built for libp2p 1.x, hence the hand-made relay; nothing here reaches
// beyond 127.0.0.1 (no bootstrap, no discovery).
//
// Protocol: newline-delimited JSON, one command per stdin line, one response per stdout line, in
// order; bytes travel as lowercase hex; a failing command answers {error} and the process goes on.
//
//   ping         {}                                   -> {node, sds, gossipsub}
//   start        {pubsubTopic, clusterId?}            -> {peerId, addrs}   (clusterId: metadata service)
//   dial         {addr}                               -> {}                (resolves once connected)
//   waitPeer     {peerId, timeoutMs}                  -> {subscribers, mesh} (peerId subscribed to our topic)
//   state        {}                                   -> {connections, subscribers, mesh}
//   subscribe    {contentTopic}                       -> {}                (received messages are kept)
//   publish      {contentTopic, payload, meta?, timestampNs?, ephemeral?} -> {recipients, hash}
//   sdsNew       {channel, sender}                    -> {}
//   sdsSend      {contentTopic, content, meta?, timestampNs} -> {messageId, wire, hash, recipients}
//   waitReceived {count, timeoutMs}                   -> {messages: [...]} (and forgets them)
//   metadata     {peerId}                             -> {clusterId, shards} (js-waku's metadata query)
//   stop         {}                                   -> {}

// The packages declare node >= 22; node 20 lacks only this.
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function withResolvers() {
    let resolve, reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { serve } from "../node_peer/serve.mjs";

// Keep stdout for the protocol only.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

const { gossipsub } = await import("@chainsafe/libp2p-gossipsub");
const { noise } = await import("@chainsafe/libp2p-noise");
const { yamux } = await import("@chainsafe/libp2p-yamux");
const { identify } = await import("@libp2p/identify");
const { ping } = await import("@libp2p/ping");
const { tcp } = await import("@libp2p/tcp");
const { peerIdFromString } = await import("@libp2p/peer-id");
const { multiaddr } = await import("@multiformats/multiaddr");
const { createLibp2p } = await import("libp2p");
const { messageHash, wakuMetadata } = await import("@waku/core");
const { proto_message, proto_sds_message } = await import("@waku/proto");
const { Message, MessageChannel } = await import("@waku/sds");

const require = createRequire(import.meta.url);
const versionOf = (pkg) => require(`./node_modules/${pkg}/package.json`).version;

const RELAY_CODEC = "/vac/waku/relay/2.0.0";
const MAX_WAKU_MESSAGE_BYTES = 150 * 1024;

const toHex = (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
const fromHex = (h) => {
  if (typeof h !== "string" || !/^([0-9a-fA-F]{2})*$/.test(h)) throw new Error(`bad hex: ${h}`);
  return new Uint8Array(Buffer.from(h, "hex"));
};
const sha256 = (b) => new Uint8Array(createHash("sha256").update(b).digest());
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let node = null;
let pubsubTopic = null;
let channel = null;
const subscribed = new Set();
let inbox = [];

function needNode() {
  if (!node) throw new Error("no node: send `start` first");
  return node;
}

// Gossipsub as js-waku's relay sets it up (packages/relay: constants.ts, relay.ts).
function wakuRelay() {
  const factory = gossipsub({
    globalSignaturePolicy: "StrictNoSign",
    msgIdFn: (m) => sha256(m.data),
    fallbackToFloodsub: false,
    allowPublishToZeroTopicPeers: true,
    emitSelf: false,
    D: 6,
    Dlo: 4,
    Dhi: 8,
    Dout: 3,
    Dlazy: 6,
    heartbeatInterval: 1000,
    mcacheLength: 6,
    mcacheGossip: 3,
    seenTTL: 120000,
    floodPublish: true,
    gossipFactor: 0.25,
    pruneBackoff: 60000,
    maxInboundDataLength: MAX_WAKU_MESSAGE_BYTES + 64 * 1024
  });
  return (components) => {
    const gs = factory(components);
    gs.multicodecs = [RELAY_CODEC];
    return gs;
  };
}

// js-waku's relay validator: a WakuMessage with a payload and a content topic.
function validator(_peer, msg) {
  try {
    const m = proto_message.WakuMessage.decode(msg.data);
    if (!m.contentTopic || !m.payload || m.payload.length === 0) return "reject";
    return "accept";
  } catch {
    return "reject";
  }
}

function describe(m) {
  let sds = null;
  try {
    const p = proto_sds_message.SdsMessage.decode(m.payload);
    const d = Message.decode(m.payload);
    sds = {
      messageId: p.messageId,
      channelId: p.channelId,
      senderId: p.senderId,
      lamport: p.lamportTimestamp === undefined ? null : p.lamportTimestamp.toString(),
      causalHistory: p.causalHistory.map((e) => e.messageId),
      content: p.content === undefined ? null : toHex(p.content),
      decodes: d !== undefined
    };
  } catch {
    sds = null;
  }
  return {
    contentTopic: m.contentTopic,
    payload: toHex(m.payload),
    meta: m.meta === undefined ? null : toHex(m.meta),
    timestampNs: m.timestamp === undefined ? null : m.timestamp.toString(),
    hash: toHex(messageHash(pubsubTopic, m)),
    sds
  };
}

async function publishWaku(c, payload) {
  const gs = needNode().services.pubsub;
  const proto = {
    payload,
    contentTopic: c.contentTopic,
    version: 0,
    timestamp: c.timestampNs === undefined || c.timestampNs === null ? undefined : BigInt(c.timestampNs),
    meta: c.meta === undefined || c.meta === null ? undefined : fromHex(c.meta),
    ephemeral: c.ephemeral ?? undefined,
    rateLimitProof: undefined
  };
  const data = proto_message.WakuMessage.encode(proto);
  const res = await gs.publish(pubsubTopic, data);
  return { recipients: res.recipients.length, hash: toHex(messageHash(pubsubTopic, proto)) };
}

const handlers = {
  async ping() {
    return { node: process.version, sds: versionOf("@waku/sds"), gossipsub: versionOf("@chainsafe/libp2p-gossipsub"), libp2p: versionOf("libp2p") };
  },

  async start(c) {
    if (node) throw new Error("start: already started");
    pubsubTopic = c.pubsubTopic;
    const services = { identify: identify(), ping: ping(), pubsub: wakuRelay() };
    if (c.clusterId !== undefined && c.clusterId !== null) services.metadata = wakuMetadata(c.clusterId);
    node = await createLibp2p({
      addresses: { listen: ["/ip4/127.0.0.1/tcp/0"] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      peerDiscovery: [],
      services
    });
    const gs = node.services.pubsub;
    gs.topicValidators.set(pubsubTopic, validator);
    gs.addEventListener("gossipsub:message", (ev) => {
      const { msg } = ev.detail;
      if (msg.topic !== pubsubTopic) return;
      let m;
      try {
        m = proto_message.WakuMessage.decode(msg.data);
      } catch {
        return;
      }
      if (subscribed.has(m.contentTopic)) inbox.push(describe(m));
    });
    gs.subscribe(pubsubTopic);
    return { peerId: node.peerId.toString(), addrs: node.getMultiaddrs().map((a) => a.toString()) };
  },

  async dial(c) {
    await needNode().dial(multiaddr(c.addr));
    return {};
  },

  async waitPeer(c) {
    const gs = needNode().services.pubsub;
    const deadline = Date.now() + (c.timeoutMs ?? 30000);
    for (;;) {
      const subscribers = gs.getSubscribers(pubsubTopic).map((p) => p.toString());
      if (subscribers.includes(c.peerId)) return { subscribers, mesh: gs.getMeshPeers(pubsubTopic) };
      if (Date.now() > deadline) throw new Error(`waitPeer: ${c.peerId} not subscribed to ${pubsubTopic}; subscribers ${subscribers}`);
      await sleep(20);
    }
  },

  async state() {
    const n = needNode();
    const gs = n.services.pubsub;
    return {
      connections: n.getConnections().map((x) => x.remotePeer.toString()),
      subscribers: gs.getSubscribers(pubsubTopic).map((p) => p.toString()),
      mesh: gs.getMeshPeers(pubsubTopic)
    };
  },

  async subscribe(c) {
    subscribed.add(c.contentTopic);
    return {};
  },

  async publish(c) {
    return await publishWaku(c, fromHex(c.payload));
  },

  async sdsNew(c) {
    channel = new MessageChannel(c.channel, c.sender, { enableRepair: false });
    return {};
  },

  // The reference SDS wraps `content`; its send callback publishes the SDS message as the
  // payload of a WakuMessage.
  async sdsSend(c) {
    if (!channel) throw new Error("sdsSend: send `sdsNew` first");
    let out = null;
    channel.pushOutgoingMessage(fromHex(c.content), async (m) => {
      const wire = m.encode();
      const r = await publishWaku(c, wire);
      out = { messageId: m.messageId, wire: toHex(wire), ...r };
      return { success: true, retrievalHint: fromHex(r.hash) };
    });
    await channel.processTasks();
    if (out === null) throw new Error("sdsSend: the channel did not call the send callback");
    return out;
  },

  async waitReceived(c) {
    const deadline = Date.now() + (c.timeoutMs ?? 30000);
    while (inbox.length < c.count) {
      if (Date.now() > deadline) throw new Error(`waitReceived: ${inbox.length} of ${c.count} messages arrived`);
      await sleep(10);
    }
    const messages = inbox;
    inbox = [];
    return { messages };
  },

  async metadata(c) {
    const md = needNode().services.metadata;
    if (!md) throw new Error("metadata: started without clusterId");
    const r = await md.query(peerIdFromString(c.peerId));
    if (r.error) throw new Error(`metadata query failed: ${r.error}`);
    return { clusterId: r.shardInfo.clusterId, shards: r.shardInfo.shards };
  },

  async stop() {
    if (node) await node.stop();
    node = null;
    return {};
  }
};

await serve(handlers);
if (node) await node.stop();
process.exit(0);
