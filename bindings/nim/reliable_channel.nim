## Nim binding of libreliable_channel, the Logos Messaging (Waku) Reliable Channel API.
##
## Two layers:
##
## * the C ABI as `importc` declarations (`rc_manager_new`, `rc_send`, ...), one to one with
##   `include/reliable_channel.h`;
## * an idiomatic layer: `newManager`, `openChannel`, `send`, `close`, event and encryption
##   callbacks as Nim procs, the library's log records through `setLogCallback`, failures as
##   `ReliableChannelError` exceptions carrying the status.
##
## Threads and memory management
## -----------------------------
## Build with `--threads:on`. The library calls back on threads it owns (encryption and
## transport hooks on its runtime thread, events on its event thread). Both memory managers
## work and both are tested:
##
## * `--mm:orc` (the default of Nim 2, available in 1.6) — the recommended choice: one shared
##   heap, nothing to set up on a foreign thread;
## * `--mm:refc` (the default of Nim 1.6): every callback runs between `setupForeignThreadGc()`
##   and `tearDownForeignThreadGc()`, with the thread's stack bottom widened to the callback's
##   own frame, so the GC scans all of its Nim frames whichever depth the library calls it
##   from, and no thread-local heap is left behind when the library's threads end.
##
## Callbacks are plain `{.nimcall, gcsafe.}` procs (no closures: nothing of the GC heap of the
## thread that installed them is shared with the library's threads). They keep state in
## globals that are thread-safe by construction (`Channel[T]`, `Atomic[T]`, lock-protected
## data). An `Event` reaches the thread that reads it by copy, through the manager's
## `Channel[Event]` (when no handler is installed) — never by sharing a `ref`.
##
## A `Manager` belongs to the thread that created it. Callbacks receive a `Context`: the same
## manager, usable inside the callback (`send`, `openChannel`, `closeChannel`, `transport*`),
## but not closable from there.

import std/[json, locks, os]

const
  rcRoot = currentSourcePath().parentDir().parentDir().parentDir()
  rcLibDir* {.strdefine.} = rcRoot / "target" / "release"
    ## Where libreliable_channel.so is linked from (and found at run time, through the rpath):
    ## `-d:rcLibDir=/usr/local/lib`. With `-d:rcPkgConfig` pkg-config decides instead.

when defined(rcPkgConfig):
  {.passL: staticExec("pkg-config --libs reliable_channel").}
elif not defined(rcNoLink):
  {.passL: "-L" & rcLibDir & " -lreliable_channel -Wl,-rpath," & rcLibDir.}

when not compileOption("threads"):
  {.error: "reliable_channel needs --threads:on: the library calls back on its own threads".}

# --------------------------------------------------------------------------------------------
# The C ABI (include/reliable_channel.h)
# --------------------------------------------------------------------------------------------

const
  RC_SEND_EPHEMERAL* = 1'u32
  RC_REQUEST_ID_LEN* = 20
  MAX_PAYLOAD_BYTES* = 1_048_576
  RC_BUFFER_MAX* = 16 * 1024 * 1024

type
  rc_manager* {.incompleteStruct.} = object ## opaque
  rc_buffer* {.incompleteStruct.} = object  ## opaque
  rc_status* = cint
  rc_event* {.bycopy.} = object
    kind*: cint
    channel_id*: cstring
    request_id*: cstring
    sender_id*: cstring
    content_topic*: cstring
    payload*: ptr UncheckedArray[byte]
    payload_len*: csize_t
    error*: cstring
    seq*: uint64
  rc_waku_message* {.bycopy.} = object
    content_topic*: cstring
    payload*: ptr UncheckedArray[byte]
    payload_len*: csize_t
    meta*: ptr UncheckedArray[byte]
    meta_len*: csize_t
    timestamp_ns*: int64
    ephemeral*: bool
  rc_crypto_fn* = proc (user_data: pointer; channel_id: cstring; input: ptr UncheckedArray[byte];
                        input_len: csize_t; output: ptr rc_buffer): cint {.cdecl, gcsafe, raises: [].}
  rc_free_fn* = proc (user_data: pointer) {.cdecl, gcsafe, raises: [].}
  rc_event_fn* = proc (event: ptr rc_event; user_data: pointer) {.cdecl, gcsafe, raises: [].}
  rc_transport_send_fn* = proc (user_data: pointer; dispatch_id: uint64;
                                msg: ptr rc_waku_message): cint {.cdecl, gcsafe, raises: [].}
  rc_transport_retrieve_fn* = proc (user_data: pointer; content_topic: cstring;
                                    message_hashes: cstringArray; count: csize_t) {.cdecl, gcsafe, raises: [].}
    ## `const char *const *message_hashes`: `count` strings, valid only during the call.
  rc_log_level* = cint
  rc_log_fn* = proc (user_data: pointer; level: rc_log_level; target, message: cstring) {.cdecl, gcsafe, raises: [].}

const
  RC_LOG_OFF* = rc_log_level(0)
  RC_LOG_ERROR* = rc_log_level(1)
  RC_LOG_WARN* = rc_log_level(2)
  RC_LOG_INFO* = rc_log_level(3)
  RC_LOG_DEBUG* = rc_log_level(4)
  RC_LOG_TRACE* = rc_log_level(5)

{.push importc, cdecl, raises: [], gcsafe.}
proc rc_version*(): cstring
proc rc_status_name*(status: cint): cstring
proc rc_last_error*(): cstring
proc rc_manager_new*(config_json: cstring; output: ptr ptr rc_manager): rc_status
proc rc_manager_free*(mgr: ptr rc_manager): rc_status
proc rc_set_event_callback*(mgr: ptr rc_manager; callback: rc_event_fn; user_data: pointer): rc_status
proc rc_open_channel*(mgr: ptr rc_manager; channel_id, content_topic, sender_id,
                      channel_config_json: cstring): rc_status
proc rc_close_channel*(mgr: ptr rc_manager; channel_id: cstring): rc_status
proc rc_channel_purge*(mgr: ptr rc_manager; channel_id: cstring): rc_status
proc rc_send*(mgr: ptr rc_manager; channel_id: cstring; payload: pointer; payload_len: csize_t;
              flags: uint32; request_id_out: cstring): rc_status
proc rc_channel_stats_json*(mgr: ptr rc_manager; channel_id: cstring; json_out: ptr cstring): rc_status
proc rc_string_free*(s: cstring)
proc rc_relay_listen_addresses*(mgr: ptr rc_manager; json_out: ptr cstring): rc_status
proc rc_relay_connect*(mgr: ptr rc_manager; multiaddr: cstring): rc_status
proc rc_buffer_append*(output: ptr rc_buffer; data: pointer; len: csize_t): rc_status
proc rc_set_encryption*(mgr: ptr rc_manager; channel_id: cstring; encrypt, decrypt: rc_crypto_fn;
                        user_data: pointer; free_user_data: rc_free_fn): rc_status
proc rc_set_transport*(mgr: ptr rc_manager; send: rc_transport_send_fn; user_data: pointer;
                       free_user_data: rc_free_fn): rc_status
proc rc_set_transport_retrieve*(mgr: ptr rc_manager; retrieve: rc_transport_retrieve_fn; user_data: pointer;
                                free_user_data: rc_free_fn): rc_status
proc rc_transport_sent*(mgr: ptr rc_manager; dispatch_id: uint64; message_hash: cstring): rc_status
proc rc_transport_failed*(mgr: ptr rc_manager; dispatch_id: uint64; error: cstring): rc_status
proc rc_transport_receive*(mgr: ptr rc_manager; msg: ptr rc_waku_message; message_hash: cstring): rc_status
proc rc_set_log_callback*(callback: rc_log_fn; user_data: pointer; max_level: rc_log_level): rc_status
{.pop.}

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

type
  RcStatus* = enum
    ## The status codes (`rc_status`).
    rcOk = 0, rcInvalidArgument, rcConfig, rcChannelExists, rcUnknownChannel, rcPayloadEmpty,
    rcPayloadTooLarge, rcQueueFull, rcStopped, rcStorage, rcTransport, rcReentrant, rcPanic

  ReliableChannelError* = object of CatchableError
    ## A failure of the library: `status` is the code, `msg` reads
    ## "RC_ERR_NAME: detail of rc_last_error()".
    status*: RcStatus
    code*: int    ## the raw `rc_status` value
    detail*: string ## `rc_last_error()` alone

proc statusName*(code: int): string = $rc_status_name(cint(code))

proc newRcError(code: int; detail: string): ref ReliableChannelError =
  let st = if code >= ord(low(RcStatus)) and code <= ord(high(RcStatus)): RcStatus(code) else: rcPanic
  let text = if detail.len > 0: statusName(code) & ": " & detail else: statusName(code)
  result = (ref ReliableChannelError)(msg: text, status: st, code: code, detail: detail)

proc check(st: rc_status) =
  ## Raises the error of a failed call; rc_last_error() is per thread and Nim threads are OS
  ## threads, so it is read right here.
  if st != 0:
    raise newRcError(int(st), $rc_last_error())

proc invalid(msg: string) {.noreturn.} =
  raise newRcError(ord(rcInvalidArgument), msg)

proc stopped() {.noreturn.} =
  raise newRcError(ord(rcStopped), "the manager is closed")

# --------------------------------------------------------------------------------------------
# The idiomatic layer
# --------------------------------------------------------------------------------------------

type
  EventKind* = enum
    ekReceived = 1  ## `reliable:message:received`: a whole message, exactly once, causal order
    ekSent          ## `reliable:message:sent`: every chunk accepted by the messaging layer
    ekDelivered     ## every chunk acknowledged end to end (final)
    ekSendError     ## the send failed (final); `error` says why
    ekLost          ## an incoming message can no longer be completed; `error` says why,
                    ## `senderId` whose it was

  Event* = object
    ## One event, owned (copied from the library).
    kind*: EventKind
    channelId*: string
    requestId*: string    ## received: the remote's request id; sent/delivered/sendError: ours
    senderId*: string     ## received: the remote participant; lost: whose message it was ("" if
                          ## unknown, e.g. undecryptable); otherwise our own sender id
    contentTopic*: string
    payload*: seq[byte]   ## ekReceived only
    error*: string        ## ekSendError and ekLost only
    seq*: uint64          ## from 1, strictly increasing per manager (per database across
                          ## restarts with "storage"), per channel in delivery order; an event of
                          ## a durable channel delivered again keeps its first `seq`

  WakuMessage* = object
    ## A message exchanged with the host's Waku node (host transport).
    contentTopic*: string
    payload*: seq[byte]
    meta*: seq[byte]      ## the reliable-channel marker: publish it as the message's meta
    timestampNs*: int64
    ephemeral*: bool

  Context* = object
    ## The manager as seen from inside a callback (valid during the callback).
    st: ptr State

  EventHandler* = proc (ctx: Context; event: Event) {.nimcall, gcsafe.}
    ## Runs on the library's event thread, one event at a time, in order per channel. Keep it
    ## short. An exception escaping it is reported on stderr and otherwise ignored.
  CryptoProc* = proc (channelId: string; input: openArray[byte]): seq[byte] {.nimcall, gcsafe.}
    ## Encrypts or decrypts one chunk, on the library's runtime thread. Raising fails the
    ## message (a send error when encrypting, a dropped message when decrypting).
  TransportProc* = proc (ctx: Context; dispatchId: uint64; msg: WakuMessage) {.nimcall, gcsafe.}
    ## Publishes `msg` through the host's node, then (now or later) reports
    ## `transportSent`/`transportFailed` for `dispatchId`. Raising fails the dispatch.
  RetrieveProc* = proc (ctx: Context; contentTopic: string; messageHashes: seq[string]) {.nimcall, gcsafe.}
    ## The host transport's store hook: fetches from a Store node the messages on
    ## `contentTopic` whose Waku message hashes are `messageHashes` ("0x" + 64 hex each) and
    ## hands each one found to `transportReceive` with its hash, now (through `ctx`) or later,
    ## from any thread. Best effort: a request that finds nothing (or raises) is repeated while
    ## the message is still missing. Runs on the library's runtime thread: must not block.

  LogLevel* = enum
    ## The severity of a log record; the maximum given to `setLogCallback`.
    llOff = 0  ## no records (as a maximum)
    llError    ## a failure the application must know (storage failed, transport down)
    llWarn     ## something given up, lost or refused (a send given up, a dependency lost, a
               ## malformed, undecryptable or unmarked message dropped); rate limited per call site
    llInfo     ## lifecycle (a channel opened or closed, the transport connected)
    llDebug    ## per-message decisions
    llTrace    ## summaries of the wire bytes of each message
  LogProc* = proc (level: LogLevel; target, message: string) {.nimcall, gcsafe.}
    ## Receives one log record: its level, its target (the emitting module of the library, e.g.
    ## "reliable_channel::channel::channel") and its message. Runs on whichever thread emitted
    ## the record (the library's runtime and event threads, or yours inside a call of this
    ## module), possibly on several at once: keep it short and never block. Calls into the
    ## library from it fail with `rcReentrant`. An exception escaping it loses the record.

  State = object
    ## Shared (non-GC) memory: what the library's threads may touch.
    handle: ptr rc_manager
    lock: Lock
    handler: EventHandler
    events: Channel[Event]

  Manager* = ref object
    ## A reliable-channel manager. Release it with `close`.
    st: ptr State
    leftover: seq[Event] ## events still queued when it was closed

  CryptoBox = object
    encrypt, decrypt: CryptoProc
  TransportBox = object
    st: ptr State
    send: TransportProc
  RetrieveBox = object
    st: ptr State
    retrieve: RetrieveProc

proc version*(): string = $rc_version()
  ## The version of the loaded library, e.g. "0.1.0".

var callbackDepth {.threadvar.}: int

template foreignThread(body: untyped) =
  ## Entry of every callback from a library thread. Under refc: sets a GC up for this thread,
  ## makes its stack scan cover this frame and the ones below it (the Nim work runs in `body`,
  ## which calls a separate noinline proc), and tears it down when the outermost callback
  ## returns, so that nothing is left behind when the library joins its threads (no Nim data
  ## outlives a callback: events leave by copy through a Channel). Under ORC: nothing to do.
  when not defined(gcDestructors):
    if callbackDepth == 0:
      setupForeignThreadGc()
    inc callbackDepth
    var anchor {.volatile.}: pointer
    when declared(nimGC_setStackBottom):
      nimGC_setStackBottom(addr anchor)
    body
    dec callbackDepth
    if callbackDepth == 0:
      tearDownForeignThreadGc()
  else:
    body

proc toStr(p: cstring): string =
  if p.isNil: "" else: $p

proc toBytes(p: ptr UncheckedArray[byte]; n: csize_t): seq[byte] =
  result = newSeq[byte](int(n))
  if n > 0:
    copyMem(addr result[0], p, int(n))

proc deliverEvent(st: ptr State; ev: ptr rc_event) {.noinline, gcsafe, raises: [].} =
  if ev.kind < cint(ord(low(EventKind))) or ev.kind > cint(ord(high(EventKind))):
    return # a kind this binding does not know
  let e = Event(kind: EventKind(ev.kind), channelId: toStr(ev.channel_id),
                requestId: toStr(ev.request_id), senderId: toStr(ev.sender_id),
                contentTopic: toStr(ev.content_topic), payload: toBytes(ev.payload, ev.payload_len),
                error: toStr(ev.error), seq: ev.seq)
  var h: EventHandler
  withLock st.lock:
    h = st.handler
  if h != nil:
    try:
      h(Context(st: st), e)
    except Exception as x: # any exception: it must not unwind into the library's C frames
      try: stderr.writeLine("reliable_channel: event handler raised: ", x.msg)
      except IOError: discard
  else:
    try:
      st.events.send(e)
    except Exception: # refc's deep copy may claim to raise; nothing to do but drop
      discard

proc eventTrampoline(ev: ptr rc_event; user_data: pointer) {.cdecl, gcsafe, raises: [].} =
  foreignThread:
    deliverEvent(cast[ptr State](user_data), ev)

proc runCrypto(box: ptr CryptoBox; decrypt: bool; channelId: cstring; input: ptr UncheckedArray[byte];
               inputLen: csize_t; output: ptr rc_buffer): cint {.noinline, gcsafe, raises: [].} =
  let f = if decrypt: box.decrypt else: box.encrypt
  try:
    let res =
      if inputLen == 0: f($channelId, [])
      else: f($channelId, toOpenArray(input, 0, int(inputLen) - 1))
    let p = if res.len > 0: unsafeAddr res[0] else: nil
    result = if rc_buffer_append(output, p, csize_t(res.len)) == 0: 0 else: 2
  except Exception: # fails this message; must not unwind into the library's C frames
    result = 1

proc encryptTrampoline(ud: pointer; channelId: cstring; input: ptr UncheckedArray[byte];
                       inputLen: csize_t; output: ptr rc_buffer): cint {.cdecl, gcsafe, raises: [].} =
  foreignThread:
    result = runCrypto(cast[ptr CryptoBox](ud), false, channelId, input, inputLen, output)

proc decryptTrampoline(ud: pointer; channelId: cstring; input: ptr UncheckedArray[byte];
                       inputLen: csize_t; output: ptr rc_buffer): cint {.cdecl, gcsafe, raises: [].} =
  foreignThread:
    result = runCrypto(cast[ptr CryptoBox](ud), true, channelId, input, inputLen, output)

proc runTransport(box: ptr TransportBox; dispatchId: uint64; msg: ptr rc_waku_message): cint
    {.noinline, gcsafe, raises: [].} =
  let w = WakuMessage(contentTopic: toStr(msg.content_topic),
                      payload: toBytes(msg.payload, msg.payload_len),
                      meta: toBytes(msg.meta, msg.meta_len),
                      timestampNs: msg.timestamp_ns, ephemeral: msg.ephemeral)
  try:
    box.send(Context(st: box.st), dispatchId, w)
    result = 0
  except Exception: # fails this dispatch; must not unwind into the library's C frames
    result = 1

proc transportTrampoline(ud: pointer; dispatchId: uint64; msg: ptr rc_waku_message): cint
    {.cdecl, gcsafe, raises: [].} =
  foreignThread:
    result = runTransport(cast[ptr TransportBox](ud), dispatchId, msg)

proc runRetrieve(box: ptr RetrieveBox; contentTopic: cstring; hashes: cstringArray; count: csize_t)
    {.noinline, gcsafe, raises: [].} =
  var list = newSeqOfCap[string](int(count))
  if not hashes.isNil:
    for i in 0 ..< int(count):
      if not hashes[i].isNil: list.add $hashes[i]
  try:
    box.retrieve(Context(st: box.st), toStr(contentTopic), list)
  except Exception: # counts as nothing found; must not unwind into the library's C frames
    discard

proc retrieveTrampoline(ud: pointer; contentTopic: cstring; hashes: cstringArray; count: csize_t)
    {.cdecl, gcsafe, raises: [].} =
  foreignThread:
    runRetrieve(cast[ptr RetrieveBox](ud), contentTopic, hashes, count)

proc runLog(f: LogProc; level: rc_log_level; target, message: cstring) {.noinline, gcsafe, raises: [].} =
  if level < cint(ord(llError)) or level > cint(ord(llTrace)):
    return # a level this binding does not know
  try:
    f(LogLevel(level), toStr(target), toStr(message))
  except Exception: # loses this record; must not unwind into the library's C frames
    discard

proc logTrampoline(ud: pointer; level: rc_log_level; target, message: cstring) {.cdecl, gcsafe, raises: [].} =
  # Also runs on Nim threads (inside a call of this module): foreignThread does nothing there.
  foreignThread:
    runLog(cast[LogProc](ud), level, target, message)

proc freeBox(ud: pointer) {.cdecl, gcsafe, raises: [].} =
  deallocShared(ud)

# Argument helpers ----------------------------------------------------------------------------

proc arg(name, s: string): cstring =
  if '\0' in s: invalid(name & " contains a NUL byte")
  cstring(s)

proc optArg(name, s: string): cstring =
  if s.len == 0: nil else: arg(name, s)

template state(m: Manager): ptr State =
  (if m.isNil or m.st.isNil: stopped() else: m.st)

template state(c: Context): ptr State = c.st

type Handle* = Manager | Context
  ## What the channel and transport operations accept.

# Lifecycle -----------------------------------------------------------------------------------

proc newManager*(configJson = ""): Manager =
  ## Creates a manager from a JSON configuration ("" = the defaults). A configuration error
  ## raises `ReliableChannelError` with status `rcConfig`; its message names the key.
  let st = createShared(State)
  initLock(st.lock)
  st.events.open()
  var h: ptr rc_manager
  let rc = rc_manager_new(optArg("configJson", configJson), addr h)
  if rc != 0:
    let detail = $rc_last_error()
    st.events.close()
    deinitLock(st.lock)
    deallocShared(st)
    raise newRcError(int(rc), detail)
  st.handle = h
  discard rc_set_event_callback(h, eventTrampoline, st)
  Manager(st: st)

proc close*(m: Manager) =
  ## Drains the submitted work, delivers the events already produced, joins the library's
  ## threads and frees everything. Events still queued stay readable with `tryRecvEvent`.
  ## Closing twice is fine.
  if m.isNil or m.st.isNil: return
  let st = m.st
  check rc_manager_free(st.handle) # no callback runs after it returns
  m.st = nil
  while true:
    let (ok, e) = st.events.tryRecv()
    if not ok: break
    m.leftover.add e
  st.events.close()
  deinitLock(st.lock)
  deallocShared(st)

proc isClosed*(m: Manager): bool = m.isNil or m.st.isNil

proc onEvent*(m: Manager; handler: EventHandler) =
  ## Installs `handler` (nil: back to queueing events for `tryRecvEvent`/`waitEvent`).
  let st = m.state
  withLock st.lock:
    st.handler = handler

proc tryRecvEvent*(m: Manager; event: var Event): bool =
  ## Takes the next queued event (events are queued while no handler is installed).
  if m.st.isNil:
    if m.leftover.len == 0: return false
    event = m.leftover[0]
    m.leftover.delete(0)
    return true
  let (ok, e) = m.st.events.tryRecv()
  if ok: event = e
  ok

proc waitEvent*(m: Manager; event: var Event; timeoutMs = 30_000): bool =
  ## Waits up to `timeoutMs` for the next queued event.
  var waited = 0
  while not m.tryRecvEvent(event):
    if waited >= timeoutMs or m.st.isNil: return false
    sleep(2)
    waited += 2
  true

# Channels ------------------------------------------------------------------------------------

proc openChannel*(m: Handle; channelId, contentTopic, senderId: string; channelConfigJson = "") =
  ## Opens `channelId` on `contentTopic` with our `senderId`; `channelConfigJson` overrides the
  ## manager's `channelDefaults` key by key.
  check rc_open_channel(m.state.handle, arg("channelId", channelId), arg("contentTopic", contentTopic),
                        arg("senderId", senderId), optArg("channelConfigJson", channelConfigJson))

proc closeChannel*(m: Handle; channelId: string) =
  ## Closes a channel; no event of it is delivered after this returns. A durable channel's
  ## stored state is kept: `openChannel` resumes it, `purgeChannel` deletes it.
  check rc_close_channel(m.state.handle, arg("channelId", channelId))

proc purgeChannel*(m: Handle; channelId: string) =
  ## Deletes the stored state of a durable channel that is not open (`rcChannelExists` while it
  ## is); nothing stored, or a manager without storage, is fine.
  check rc_channel_purge(m.state.handle, arg("channelId", channelId))

proc send*(m: Handle; channelId: string; payload: openArray[byte]; ephemeral = false): string =
  ## Sends `payload` (1 byte .. 1 MiB, copied) and returns its request id at once; `ekSent`,
  ## then `ekDelivered` or `ekSendError`, follow. `rcQueueFull` is backpressure: retry later.
  var rid: array[RC_REQUEST_ID_LEN + 1, char]
  let p = if payload.len > 0: unsafeAddr payload[0] else: nil
  check rc_send(m.state.handle, arg("channelId", channelId), p, csize_t(payload.len),
                (if ephemeral: RC_SEND_EPHEMERAL else: 0'u32), cast[cstring](addr rid[0]))
  $cast[cstring](addr rid[0])

proc send*(m: Handle; channelId: string; payload: string; ephemeral = false): string =
  m.send(channelId, payload.toOpenArrayByte(0, payload.high), ephemeral)

proc stats*(m: Manager; channelId: string): JsonNode =
  ## The counters of a channel (`messagesSent`, `retransmissions`, ...).
  var s: cstring
  check rc_channel_stats_json(m.state.handle, arg("channelId", channelId), addr s)
  try:
    result = parseJson($s)
  except CatchableError as e:
    raise newRcError(ord(rcStorage), "stats: " & e.msg)
  finally:
    rc_string_free(s)

proc listenAddresses*(m: Handle): seq[string] =
  ## The relay node's addresses (transport `"relay"`): full multiaddrs ending in
  ## `/p2p/<peer id>`, the real port when 0 was configured; give one to the other participants.
  ## `rcTransport` for another transport.
  var s: cstring
  check rc_relay_listen_addresses(m.state.handle, addr s)
  try:
    for a in parseJson($s): result.add a.getStr
  except CatchableError as e:
    raise newRcError(ord(rcTransport), "listen addresses: " & e.msg)
  finally:
    rc_string_free(s)

proc connect*(m: Handle; multiaddr: string) =
  ## Dials a peer at run time (relay transport) and keeps it connected; returns once the dial is
  ## queued (an unreachable peer is retried with backoff and logged). `rcInvalidArgument` for a
  ## malformed address, `rcTransport` for another transport.
  check rc_relay_connect(m.state.handle, arg("multiaddr", multiaddr))

template handOver(box: pointer; call: untyped) =
  ## `call` hands `box` to the library; when the library refuses it, the box is freed here.
  let rc = call
  if rc != 0:
    let detail = $rc_last_error()
    deallocShared(box) # not taken by the library
    raise newRcError(int(rc), detail)

proc setEncryption*(m: Handle; channelId: string; encrypt, decrypt: CryptoProc) =
  ## Installs the encryption hook of `channelId` ("" = the default of every channel without
  ## its own); both nil removes it.
  if encrypt.isNil != decrypt.isNil:
    invalid("encrypt and decrypt must both be set or both be nil")
  let h = m.state.handle
  let cid = optArg("channelId", channelId)
  if encrypt.isNil:
    check rc_set_encryption(h, cid, nil, nil, nil, nil)
    return
  let box = createShared(CryptoBox)
  box.encrypt = encrypt
  box.decrypt = decrypt
  handOver(box, rc_set_encryption(h, cid, encryptTrampoline, decryptTrampoline, box, freeBox))

# Host transport ------------------------------------------------------------------------------

proc setTransport*(m: Handle; send: TransportProc) =
  ## Installs the host transport's publish proc (nil removes it). The manager must have been
  ## created with `{"transport": {"kind": "host"}}` (else `rcTransport`).
  let st = m.state
  if send.isNil:
    check rc_set_transport(st.handle, nil, nil, nil)
    return
  let box = createShared(TransportBox)
  box.st = st
  box.send = send
  handOver(box, rc_set_transport(st.handle, transportTrampoline, box, freeBox))

proc setTransportRetrieve*(m: Handle; retrieve: RetrieveProc) =
  ## Installs the host transport's optional store hook (nil removes it): when SDS misses a
  ## message whose retrieval hint (Waku message hash) it knows, e.g. the sender's earlier
  ## message after a loss, `retrieve` is asked to fetch it from a Store node and hand it back
  ## with `transportReceive`. Without it, missing messages are recovered by SDS alone
  ## (retransmission, syncs, repair requests to peers), which takes an acknowledgement timeout
  ## instead of a store round trip. While a hook is installed and a channel's rate limit is on,
  ## the channel relies on the store to save RLN budget (first retransmission after 6
  ## acknowledgement timeouts, later acknowledgement syncs; see `rc_set_transport_retrieve` in the
  ## C header), so report message hashes with `transportSent`. The manager must have been created
  ## with `{"transport": {"kind": "host"}}` (else `rcTransport`). The previous hook is released once
  ## the library no longer uses it.
  let st = m.state
  if retrieve.isNil:
    check rc_set_transport_retrieve(st.handle, nil, nil, nil)
    return
  let box = createShared(RetrieveBox)
  box.st = st
  box.retrieve = retrieve
  handOver(box, rc_set_transport_retrieve(st.handle, retrieveTrampoline, box, freeBox))

proc transportSent*(m: Handle; dispatchId: uint64; messageHash = "") =
  ## Reports dispatch `dispatchId` published (`messageHash`: "0x" + 64 hex, or "" if unknown).
  check rc_transport_sent(m.state.handle, dispatchId, optArg("messageHash", messageHash))

proc transportFailed*(m: Handle; dispatchId: uint64; reason = "") =
  ## Reports dispatch `dispatchId` failed.
  check rc_transport_failed(m.state.handle, dispatchId, optArg("reason", reason))

proc transportReceive*(m: Handle; msg: WakuMessage; messageHash = "") =
  ## Hands the library a message the host's node received (copied).
  var w = rc_waku_message(
    content_topic: arg("contentTopic", msg.contentTopic),
    payload: (if msg.payload.len > 0: cast[ptr UncheckedArray[byte]](unsafeAddr msg.payload[0]) else: nil),
    payload_len: csize_t(msg.payload.len),
    meta: (if msg.meta.len > 0: cast[ptr UncheckedArray[byte]](unsafeAddr msg.meta[0]) else: nil),
    meta_len: csize_t(msg.meta.len),
    timestamp_ns: msg.timestampNs,
    ephemeral: msg.ephemeral)
  check rc_transport_receive(m.state.handle, addr w, optArg("messageHash", messageHash))

# Logging -------------------------------------------------------------------------------------

proc setLogCallback*(cb: LogProc; maxLevel = llWarn) =
  ## Sends the library's log records up to `maxLevel` to `cb`, for the whole process (every
  ## manager), until it is replaced; nil removes it (then `RC_LOG=<level>` in the environment
  ## sends records to stderr, else they go nowhere). Logging is off until it is called; records
  ## above `maxLevel` are not even formatted. ERROR and WARN records are rate limited per call
  ## site (10 at once, then 1 per second); a record "N similar records suppressed (…)" counts
  ## what was dropped. When it returns, the proc it replaced is not running and is not called
  ## again. See `LogProc` for where `cb` runs.
  if cb.isNil:
    check rc_set_log_callback(nil, nil, RC_LOG_OFF)
  else:
    check rc_set_log_callback(logTrampoline, cast[pointer](cb), rc_log_level(ord(maxLevel)))

proc `$`*(e: Event): string =
  result = $e.kind & "(" & e.channelId & ", " & e.requestId & ", from " & e.senderId
  if e.kind == ekReceived: result.add ", " & $e.payload.len & " bytes"
  if e.error.len > 0: result.add ", " & e.error
  result.add ")"

proc toString*(b: openArray[byte]): string =
  ## The bytes as a string (for text payloads).
  result = newString(b.len)
  if b.len > 0: copyMem(addr result[0], unsafeAddr b[0], b.len)

proc toBytes*(s: string): seq[byte] =
  ## The string's bytes (for text payloads).
  result = newSeq[byte](s.len)
  if s.len > 0: copyMem(addr result[0], unsafeAddr s[0], s.len)

export json
