# Tests of the Nim binding: build with --threads:on (see ../run_tests.sh).
import std/[atomics, os, sets, strutils, tables, times, unittest]
import ../reliable_channel

const
  longWaitMs = 90_000
  key = [0x5a'u8, 0x13, 0xc4, 0x7e, 0x21, 0x99, 0x0b, 0xe8]
  magic = "RCX1"

proc netName(test: string): string =
  "nim-" & test & "-" & $getCurrentProcessId() & "-" & $epochTime()

proc memConfig(net: string; loss = 0.0; seed = 1): string =
  """{"transport":{"kind":"memory","network":"$1","loss":$2,"seed":$3},
      "channelDefaults":{"sdsConfig":{"acknowledgementTimeoutMs":400,"maxRetransmissions":30},
      "rateLimitConfig":{"enabled":false}}}""" % [net, $loss, $seed]

const hostConfig = """{"transport":{"kind":"host"},
  "channelDefaults":{"sdsConfig":{"acknowledgementTimeoutMs":400,"maxRetransmissions":30},
  "rateLimitConfig":{"enabled":false}}}"""

# The encryption hook, in Nim: a magic prefix, then the chunk XORed with a key stream derived
# from the channel id. Decrypting anything that lacks the prefix raises (the message is dropped).
var encrypted, decrypted: Atomic[int]
var failEncrypt: Atomic[bool]

proc keystream(channelId: string; i: int): byte =
  key[i mod key.len] xor byte(channelId.len) xor byte(i and 0xff)

proc xorEncrypt(channelId: string; input: openArray[byte]): seq[byte] {.nimcall, gcsafe.} =
  if failEncrypt.load: raise newException(ValueError, "no key")
  result = newSeq[byte](magic.len + input.len)
  for i, c in magic: result[i] = byte(c)
  for i, b in input: result[magic.len + i] = b xor keystream(channelId, i)
  encrypted.atomicInc

proc xorDecrypt(channelId: string; input: openArray[byte]): seq[byte] {.nimcall, gcsafe.} =
  if input.len < magic.len: raise newException(ValueError, "short")
  for i, c in magic:
    if input[i] != byte(c): raise newException(ValueError, "not ours")
  result = newSeq[byte](input.len - magic.len)
  # Garbage and a full collection on the library's thread, mid-callback, now and then: under
  # refc the stack scan must see `result` (checked by the payload comparisons).
  if decrypted.fetchAdd(1) mod 4 == 0:
    var garbage: seq[string]
    for i in 0 ..< 200: garbage.add newString(100 + i)
    GC_fullCollect()
  for i in 0 ..< result.len: result[i] = input[magic.len + i] xor keystream(channelId, i)

# An event handler, on the library's event thread: echoes what it receives (from inside the
# callback) and hands a copy of every received event to the test through a Channel.
var handled: Channel[Event]
var handlerErrors: Atomic[int]

proc echoHandler(ctx: Context; e: Event) {.nimcall, gcsafe.} =
  if e.kind != ekReceived: return
  {.cast(gcsafe).}:
    handled.send(e)
  try:
    discard ctx.send(e.channelId, "echo: " & e.payload.toString)
  except ReliableChannelError:
    handlerErrors.atomicInc

# A host transport moved by the test's thread: the publish procs (on the library's runtime
# thread) copy each WakuMessage into a Channel; the test reports it sent and hands it over.
type Packet = object
  fromA: bool
  id: uint64
  msg: WakuMessage

var wire: Channel[Packet]

proc publishA(ctx: Context; id: uint64; msg: WakuMessage) {.nimcall, gcsafe.} =
  {.cast(gcsafe).}:
    wire.send(Packet(fromA: true, id: id, msg: msg))

proc publishB(ctx: Context; id: uint64; msg: WakuMessage) {.nimcall, gcsafe.} =
  {.cast(gcsafe).}:
    wire.send(Packet(fromA: false, id: id, msg: msg))

# The host transport's store hook: bob's hook (on his runtime thread, must not block) hands
# each request to the test's thread, which plays the Store node and answers with
# `transportReceive` (the "later, from any thread" of the contract).
type Fetch = object
  topic: string
  hashes: seq[string]

var fetches: Channel[Fetch]
var retrieveCalls: Atomic[int]
# Its own wire: under refc a closed Channel cannot be opened again.
var storeWire: Channel[Packet]

proc publishAlice(ctx: Context; id: uint64; msg: WakuMessage) {.nimcall, gcsafe.} =
  {.cast(gcsafe).}:
    storeWire.send(Packet(fromA: true, id: id, msg: msg))

proc publishBob(ctx: Context; id: uint64; msg: WakuMessage) {.nimcall, gcsafe.} =
  {.cast(gcsafe).}:
    storeWire.send(Packet(fromA: false, id: id, msg: msg))

proc storeHook(ctx: Context; contentTopic: string; messageHashes: seq[string]) {.nimcall, gcsafe.} =
  retrieveCalls.atomicInc
  {.cast(gcsafe).}:
    fetches.send(Fetch(topic: contentTopic, hashes: messageHashes))

proc idleHook(ctx: Context; contentTopic: string; messageHashes: seq[string]) {.nimcall, gcsafe.} =
  discard

# The log proc: records go to the test's thread through a Channel; the first one also tries a
# call into the library, which must be refused.
type LogRecord = tuple[level: LogLevel, target, message: string]
var logRecords: Channel[LogRecord]
var logReentrant: Atomic[int]

proc recordLog(level: LogLevel; target, message: string) {.nimcall, gcsafe.} =
  if logReentrant.load == 0:
    logReentrant.store int(rc_set_log_callback(nil, nil, RC_LOG_OFF))
  {.cast(gcsafe).}:
    logRecords.send((level, target, message))

proc pattern(n: int): seq[byte] =
  result = newSeq[byte](n)
  for i in 0 ..< n: result[i] = byte((i * 31 + i div 251) and 0xff)

template expectRc(st: RcStatus; needle: string; body: untyped) =
  var raised = false
  try:
    body
  except ReliableChannelError as e:
    raised = true
    check e.status == st
    check needle in e.msg
    check statusName(ord(st)) in e.msg
  check raised

# Reads both managers' queued events until `done` (checked after each event) or a timeout.
template pump(a, b: Manager; timeoutMs: int; onA, onB: untyped; done: untyped): bool =
  var finished = false
  let deadline = epochTime() + timeoutMs / 1000
  while not finished and epochTime() < deadline:
    var ev {.inject.}: Event
    var any = false
    if a.tryRecvEvent(ev):
      any = true
      onA
    if b.tryRecvEvent(ev):
      any = true
      onB
    finished = done
    if not any and not finished: sleep(2)
  finished

suite "reliable_channel (Nim)":
  test "version":
    check version().count('.') == 2

  test "two managers exchange messages through a Nim encryption hook over a lossy network":
    let net = netName("exchange")
    let a = newManager(memConfig(net, 0.1, 1))
    let b = newManager(memConfig(net, 0.1, 2))
    defer:
      a.close()
      b.close()
    a.openChannel("room", "/reliable-nim/1/room/proto", "alice")
    b.openChannel("room", "/reliable-nim/1/room/proto", "bob")
    a.setEncryption("room", xorEncrypt, xorDecrypt)
    b.setEncryption("", xorEncrypt, xorDecrypt) # bob: the default hook
    let big = pattern(300_000)
    let idText = a.send("room", "hello from nim")
    let idBig = a.send("room", big)
    let idReply = b.send("room", "hi alice")
    check idText.len == RC_REQUEST_ID_LEN
    var delivered = initHashSet[string]()
    var bobGot = initTable[string, seq[byte]]()
    var aliceGot = ""
    var errors = 0
    let ok = pump(a, b, longWaitMs):
      case ev.kind
      of ekDelivered: delivered.incl ev.requestId
      of ekReceived: aliceGot = ev.payload.toString
      of ekSendError: inc errors
      else: discard
    do:
      case ev.kind
      of ekReceived:
        check ev.senderId == "alice"
        check ev.requestId notin bobGot
        bobGot[ev.requestId] = ev.payload
      of ekDelivered: delivered.incl ev.requestId
      of ekSendError: inc errors
      else: discard
    do:
      idText in delivered and idBig in delivered and idReply in delivered and
        bobGot.len == 2 and aliceGot.len > 0
    check ok
    check errors == 0
    check bobGot.getOrDefault(idText).toString == "hello from nim"
    check bobGot.getOrDefault(idBig) == big
    check aliceGot == "hi alice"
    check encrypted.load >= 4 and decrypted.load >= 4
    let st = a.stats("room")
    check st["messagesDelivered"].getInt >= 2

  test "an event handler runs on the event thread and may send":
    let net = netName("echo")
    let a = newManager(memConfig(net))
    let b = newManager(memConfig(net))
    defer:
      a.close()
      b.close()
    handled.open()
    defer: handled.close()
    b.onEvent(echoHandler)
    a.openChannel("e", "/reliable-nim/1/e/proto", "a")
    b.openChannel("e", "/reliable-nim/1/e/proto", "b")
    discard a.send("e", "ping")
    var echoed = false
    var ev: Event
    let deadline = epochTime() + longWaitMs / 1000
    while not echoed and epochTime() < deadline:
      if a.waitEvent(ev, 1000) and ev.kind == ekReceived:
        echoed = ev.payload.toString == "echo: ping" and ev.senderId == "b"
    check echoed
    let (got, e) = handled.tryRecv()
    check got
    check e.payload.toString == "ping"
    check e.channelId == "e"
    check handlerErrors.load == 0

  test "failures raise ReliableChannelError with the status":
    expectRc(rcConfig, "bogus"):
      discard newManager("""{"bogus": 1}""")
    expectRc(rcConfig, "channelDefaults.sdsConfig.maxRetransmissions"):
      discard newManager("""{"channelDefaults":{"sdsConfig":{"maxRetransmissions":"many"}}}""")
    let m = newManager(memConfig(netName("errors")))
    defer: m.close()
    m.openChannel("c", "/reliable-nim/1/c/proto", "me")
    expectRc(rcConfig, "segmentationConfig.chunkSizeBytes"):
      m.openChannel("d", "/reliable-nim/1/d/proto", "me", """{"segmentationConfig":{"chunkSizeBytes":10}}""")
    expectRc(rcChannelExists, "c"):
      m.openChannel("c", "/reliable-nim/1/c/proto", "me")
    expectRc(rcInvalidArgument, "NUL"):
      m.openChannel("a\0b", "/reliable-nim/1/c/proto", "me")
    expectRc(rcUnknownChannel, "nowhere"):
      discard m.send("nowhere", "x")
    expectRc(rcPayloadEmpty, ""):
      discard m.send("c", "")
    expectRc(rcPayloadTooLarge, $(MAX_PAYLOAD_BYTES + 1)):
      discard m.send("c", newSeq[byte](MAX_PAYLOAD_BYTES + 1))
    expectRc(rcUnknownChannel, "nowhere"):
      m.setEncryption("nowhere", xorEncrypt, xorDecrypt)
    expectRc(rcInvalidArgument, "both"):
      m.setEncryption("c", xorEncrypt, nil)
    expectRc(rcTransport, "host"):
      m.transportSent(1)
    expectRc(rcUnknownChannel, "nowhere"):
      discard m.stats("nowhere")
    try:
      discard m.send("nowhere", "x")
    except ReliableChannelError as e:
      check e.code == 4
      check e.detail.contains("nowhere")
      check e.msg.startsWith("RC_ERR_UNKNOWN_CHANNEL")

    # A failing encrypt fails the send: a send error, never a plaintext fallback.
    m.setEncryption("c", xorEncrypt, xorDecrypt)
    failEncrypt.store(true)
    defer: failEncrypt.store(false)
    let id = m.send("c", "secret")
    var sendError = false
    var ev: Event
    let deadline = epochTime() + longWaitMs / 1000
    while not sendError and epochTime() < deadline:
      if m.waitEvent(ev, 1000) and ev.requestId == id:
        check ev.kind notin {ekSent, ekDelivered}
        sendError = ev.kind == ekSendError
    check sendError

  test "a malformed message is dropped with a WARN record":
    logRecords.open()
    defer: logRecords.close()
    let m = newManager(hostConfig)
    defer: m.close()
    setLogCallback(recordLog, llWarn)
    defer: setLogCallback(nil)
    m.openChannel("logs", "/reliable-nim/1/logs/proto", "me")
    m.transportReceive(WakuMessage(contentTopic: "/reliable-nim/1/logs/proto", payload: "payload".toBytes,
                                   meta: "RELIABLE-CHANNEL-API/1".toBytes, timestampNs: 1))
    discard m.stats("logs") # a round trip through the runtime thread: the record has arrived
    var warned = 0
    while true:
      let (ok, r) = logRecords.tryRecv()
      if not ok: break
      check r.level <= llWarn # the INFO record of the channel opening stays out
      if r.level == llWarn and "not a valid SDS message" in r.message and "logs" in r.message and
          r.target.startsWith("reliable_channel"):
        inc warned
    check warned == 1
    check logReentrant.load == ord(rcReentrant)
    check rc_set_log_callback(nil, nil, 6) == cint(ord(rcInvalidArgument)) # raw: LogLevel cannot say 6

  test "host transport moved by Nim":
    let a = newManager(hostConfig)
    let b = newManager(hostConfig)
    defer:
      a.close()
      b.close()
    wire.open()
    defer: wire.close()
    a.setTransport(publishA)
    b.setTransport(publishB)
    a.openChannel("h", "/reliable-nim/1/h/proto", "a")
    b.openChannel("h", "/reliable-nim/1/h/proto", "b")
    let id = a.send("h", "over the host")
    var delivered, received = false
    let deadline = epochTime() + longWaitMs / 1000
    while not (delivered and received) and epochTime() < deadline:
      var moved = false
      while true:
        let (ok, p) = wire.tryRecv()
        if not ok: break
        moved = true
        let (src, dst) = if p.fromA: (a, b) else: (b, a)
        src.transportSent(p.id)
        dst.transportReceive(p.msg)
      var ev: Event
      while a.tryRecvEvent(ev):
        if ev.kind == ekDelivered and ev.requestId == id: delivered = true
      while b.tryRecvEvent(ev):
        if ev.kind == ekReceived: received = ev.payload.toString == "over the host"
      if not moved: sleep(2)
    check delivered
    check received

  test "a message lost on its way is fetched back through the store hook":
    # Refused on a memory manager.
    let mem = newManager(memConfig(netName("retrieve")))
    expectRc(rcTransport, "host"):
      mem.setTransportRetrieve(idleHook)
    mem.close()
    # A long acknowledgement timeout: the lost message is not retransmitted during the test,
    # so only the store hook can bring it back in time.
    const cfg = """{"transport":{"kind":"host"},
      "channelDefaults":{"sdsConfig":{"acknowledgementTimeoutMs":60000,"maxRetransmissions":30},
      "rateLimitConfig":{"enabled":false}}}"""
    # The channels the hooks write to outlive the managers (their defers run last).
    storeWire.open()
    defer: storeWire.close()
    fetches.open()
    defer: fetches.close()
    let a = newManager(cfg)
    let b = newManager(cfg)
    defer:
      a.close()
      b.close()
    a.setTransport(publishAlice)
    b.setTransport(publishBob)
    # Replacing and removing the hook (the library frees the previous box).
    for i in 0 ..< 3: b.setTransportRetrieve(idleHook)
    b.setTransportRetrieve(nil)
    b.setTransportRetrieve(storeHook)
    const topic = "/reliable-nim/1/s/proto"
    a.openChannel("s", topic, "alice")
    b.openChannel("s", topic, "bob")

    # Alice's node: keeps everything alice publishes under a hash it assigns ("0x" + a 64-hex
    # counter, reported with transportSent) and loses the first message on its way to bob.
    var store = initTable[string, WakuMessage]()
    var published, dropped, found, badRequests = 0
    let one = a.send("s", "one")
    var two = ""
    var received: seq[string]
    let deadline = epochTime() + 30.0
    while received.len < 2 and epochTime() < deadline:
      var moved = false
      while true:
        let (ok, p) = storeWire.tryRecv()
        if not ok: break
        moved = true
        if p.fromA:
          inc published
          let hash = "0x" & toLowerAscii(toHex(published, 64))
          store[hash] = p.msg
          if published == 1: inc dropped
          else: b.transportReceive(p.msg, hash)
          a.transportSent(p.id, hash)
        else:
          b.transportSent(p.id)
          a.transportReceive(p.msg)
      while true:
        let (ok, f) = fetches.tryRecv()
        if not ok: break
        moved = true
        if f.topic != topic or f.hashes.len == 0: inc badRequests
        for h in f.hashes:
          if h.len != 66 or not h.startsWith("0x"): inc badRequests
          if h in store and store[h].contentTopic == f.topic:
            inc found
            b.transportReceive(store[h], h)
      var ev: Event
      while a.tryRecvEvent(ev):
        check ev.kind != ekSendError
        # "two" after "one" was published: it names "one" with its hash.
        if ev.kind == ekSent and ev.requestId == one and two.len == 0:
          two = a.send("s", "two")
      while b.tryRecvEvent(ev):
        check ev.kind != ekLost
        if ev.kind == ekReceived:
          check ev.senderId == "alice"
          check ev.payload.toString == (if ev.requestId == one: "one" else: "two")
          received.add ev.requestId
      if not moved: sleep(2)
    check two.len == RC_REQUEST_ID_LEN
    check received == @[one, two] # both, in order
    check dropped == 1
    check retrieveCalls.load >= 1
    check found >= 1
    check badRequests == 0
    check a.stats("s")["retransmissions"].getInt == 0 # repaired by the store, not SDS
    checkpoint "store hook calls " & $retrieveCalls.load & ", found " & $found

  test "closing":
    let net = netName("closing")
    let a = newManager(memConfig(net))
    let b = newManager(memConfig(net))
    a.openChannel("c", "/reliable-nim/1/c/proto", "a")
    b.openChannel("c", "/reliable-nim/1/c/proto", "b")
    a.setEncryption("", xorEncrypt, xorDecrypt)
    b.setEncryption("", xorEncrypt, xorDecrypt)
    # Close while traffic flows: the submitted sends are drained, nothing crashes.
    var sent = 0
    for i in 0 ..< 300:
      try:
        discard a.send("c", "m" & $i)
        inc sent
      except ReliableChannelError as e:
        check e.status == rcQueueFull
    a.close()
    check a.isClosed
    a.close() # twice is fine
    expectRc(rcStopped, "closed"):
      discard a.send("c", "late")
    expectRc(rcStopped, "closed"):
      a.openChannel("d", "/reliable-nim/1/d/proto", "a")
    var ev: Event
    var afterClose = 0
    while a.tryRecvEvent(ev): inc afterClose # queued before close: still readable
    check sent > 0
    checkpoint "sent " & $sent & ", events read after close " & $afterClose
    b.closeChannel("c")
    expectRc(rcUnknownChannel, "c"):
      b.closeChannel("c")
    b.close()
    b.close()

  test "a durable channel across a restart: seq continues, nothing again from the database, purge":
    let net = netName("durable")
    let db = getTempDir() / ("rc-nim-" & $getCurrentProcessId() & "-durable.db")
    for f in [db, db & "-wal", db & "-shm", db & "-rc-journal"]: removeFile(f)
    let durableConfig = """{"transport":{"kind":"memory","network":"$1"},"storage":{"path":"$2"},
        "channelDefaults":{"sdsConfig":{"acknowledgementTimeoutMs":400,"maxRetransmissions":30},
        "rateLimitConfig":{"enabled":false}}}""" % [net, db]
    const sqlite = """{"sdsConfig":{"historyBackend":"sqlite"}}"""
    const topic = "/reliable-nim/1/room/proto"
    let a = newManager(memConfig(net))
    # No causal history: this test is about the database (seq, the outbox, purge); causal order
    # across a restart, with the stored SDS log, is covered by tests/durable.rs.
    a.openChannel("room", topic, "alice", """{"sdsConfig":{"causalHistorySize":0}}""")
    var b = newManager(durableConfig)
    b.openChannel("room", topic, "bob", sqlite)
    let rid = b.send("room", "from bob")
    discard a.send("room", "one")
    var ev: Event
    var last = 0'u64
    var delivered, received = false
    let deadline = epochTime() + longWaitMs / 1000
    while not (delivered and received) and epochTime() < deadline:
      if b.waitEvent(ev, 1_000):
        check ev.seq > last
        last = ev.seq
        if ev.kind == ekDelivered and ev.requestId == rid: delivered = true
        if ev.kind == ekReceived: received = true
    check delivered and received
    b.close()
    b = newManager(durableConfig)
    expectRc(rcConfig, "sender id"):
      b.openChannel("room", topic, "mallory", sqlite)
    b.openChannel("room", topic, "bob", sqlite)
    discard a.send("room", "two")
    # Nothing comes back from the database: every event has a new seq. The SDS log is stored
    # too: "one", had the network delivered it again, would be a duplicate, never a new event.
    var gotTwo = false
    while not gotTwo and b.waitEvent(ev, longWaitMs):
      check ev.seq > last
      gotTwo = ev.kind == ekReceived and ev.payload == toBytes("two")
    check gotTwo
    expectRc(rcChannelExists, "room"):
      b.purgeChannel("room")
    b.closeChannel("room")
    b.purgeChannel("room")
    b.openChannel("room", topic, "mallory", sqlite) # purged: any sender id
    expectRc(rcStorage, "in use"):
      discard newManager(durableConfig)
    b.close()
    a.close()
    for f in [db, db & "-wal", db & "-shm", db & "-rc-journal"]: removeFile(f)

  test "relay transport: listen addresses, connect at run time, a message each way":
    const relayConfig = """{"transport":{"kind":"relay","listen":["/ip4/127.0.0.1/tcp/0"]},
        "channelDefaults":{"sdsConfig":{"acknowledgementTimeoutMs":1000,"syncIntervalMs":1000,
        "maxRetransmissions":60},"rateLimitConfig":{"enabled":false}}}"""
    const topic = "/reliable-nim/1/relay/proto"
    let a = newManager(relayConfig)
    let b = newManager(relayConfig)
    let addrs = a.listenAddresses
    check addrs.len > 0
    check addrs[0].startsWith("/ip4/127.0.0.1/tcp/") and "/p2p/" in addrs[0]
    a.openChannel("room", topic, "alice")
    b.openChannel("room", topic, "bob")
    b.connect(addrs[0])
    expectRc(rcInvalidArgument, "multiaddr"):
      b.connect("nonsense")
    let rid = b.send("room", "hello over relay")
    var ev: Event
    var received = false
    while not received and a.waitEvent(ev, longWaitMs):
      received = ev.kind == ekReceived and ev.payload == toBytes("hello over relay") and ev.senderId == "bob"
    check received
    var delivered = false
    while not delivered and b.waitEvent(ev, longWaitMs):
      delivered = ev.kind == ekDelivered and ev.requestId == rid
    check delivered
    check b.stats("room")["relay"]["connectedPeers"].getInt == 1
    let m = newManager(memConfig(netName("relay")))
    expectRc(rcTransport, "relay"):
      discard m.listenAddresses
    m.close()
    b.close()
    a.close()
