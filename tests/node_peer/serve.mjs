// The peer side of tests/node_peer/mod.rs: one JSON command per stdin line, dispatched on its `cmd`
// to `handlers`, one JSON reply per stdout line; `{error}` when the handler throws. `decorate`
// adds fields to every reply, failed ones too (e.g. the events a command caused). BigInts are
// written as strings. Returns when stdin ends.
import { createInterface } from "node:readline";

export async function serve(handlers, decorate = () => ({})) {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  for await (const line of rl) {
    if (line.trim() === "") continue;
    let response;
    try {
      const c = JSON.parse(line);
      const h = handlers[c.cmd];
      if (!h) throw new Error(`unknown command ${JSON.stringify(c.cmd)}`);
      response = await h(c);
    } catch (e) {
      response = { error: String(e?.stack ?? e) };
    }
    Object.assign(response, decorate());
    process.stdout.write(JSON.stringify(response, (_k, v) => (typeof v === "bigint" ? v.toString() : v)) + "\n");
  }
}
