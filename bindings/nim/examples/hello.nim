# hello: two managers on the embedded in-process network; alice sends bob a message through
# an encryption hook written in Nim and waits until it is delivered (acknowledged end to end).
#   nim c --threads:on --mm:orc -r examples/hello.nim
import std/[os, times]
import ../reliable_channel

# A TOY cipher (XOR) that only shows where encryption plugs in; use a real AEAD in practice.
# Hooks are plain gcsafe procs: they run on the library's runtime thread.
proc toyCipher(channelId: string; input: openArray[byte]): seq[byte] {.nimcall, gcsafe.} =
  result = newSeq[byte](input.len)
  for i, b in input: result[i] = b xor 0x5a

const config = """{"transport": {"kind": "memory", "network": "hello-nim"},
                   "channelDefaults": {"rateLimitConfig": {"enabled": false}}}"""

let alice = newManager(config)
let bob = newManager(config)
for (m, who) in [(alice, "alice"), (bob, "bob")]:
  m.openChannel("general", "/hello/1/general/proto", who)
  m.setEncryption("", toyCipher, toyCipher)

try:
  let id = alice.send("general", "hello, bob")
  var received, delivered = false
  let deadline = epochTime() + 30
  while not (received and delivered) and epochTime() < deadline:
    var ev: Event
    if bob.tryRecvEvent(ev) and ev.kind == ekReceived:
      echo "bob received \"", ev.payload.toString, "\" from ", ev.senderId
      received = true
    elif alice.tryRecvEvent(ev):
      if ev.kind == ekDelivered and ev.requestId == id:
        echo "alice's message ", id, " was delivered"
        delivered = true
      elif ev.kind == ekSendError:
        quit "send error: " & ev.error
    else:
      sleep(5)
  if not (received and delivered): quit "timed out"
except ReliableChannelError as e:
  quit "failed with " & $e.status & ": " & e.msg
finally:
  alice.close()
  bob.close()
