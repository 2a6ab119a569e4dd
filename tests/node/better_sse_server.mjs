// A server nobody here wrote, for tests/test_sse_client_node.cpp: better-sse 0.13 (Node 12 and
// later, so Debian 12's Node 18 is enough) on Node's own http module, which sends the stream
// chunked. Prints "listening PORT" once it serves.
//   node better_sse_server.mjs      (the kernel picks the port)
// GET /events plays a script, one step per connection, resuming from Last-Event-ID as
// better-sse reads it (session.lastId):
//   1st: retry 100, events 1-3, then the connection is cut. Event 3 has a type, and data with
//        a line break, which better-sse 0.13 writes as it is with a custom serializer
//        ("data:three\nlines"): a browser sees the data "three" and ignores the field "lines";
//        so must the client;
//   2nd: what follows Last-Event-ID up to 4, then 1.2 s of keep-alive comments only (every
//        100 ms), then 5, then the response ends;
//   3rd and later: 204, the standard's "stop".
// GET /seen answers the Last-Event-ID of each /events connection, as JSON.
import http from "node:http";
import betterSse from "better-sse"; // CommonJS in 0.13

const { createSession } = betterSse;

const log = [
  { id: "1", data: "one" },
  { id: "2", data: "two" },
  { id: "3", data: "three\nlines", event: "multi" },
  { id: "4", data: "four" },
  { id: "5", data: "five" },
];
const seen = [];
const after = (id) => (id ? log.findIndex((e) => e.id === id) + 1 : 0);
const push = (session, e) => session.push(e.data, e.event ?? "message", e.id);

const server = http.createServer(async (req, res) => {
  if (req.url === "/seen") {
    const body = JSON.stringify(seen);
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
    res.end(body);
    return;
  }
  if (req.url !== "/events") {
    res.writeHead(404, { "Content-Type": "text/plain" });
    res.end("not found\n");
    return;
  }
  seen.push(req.headers["last-event-id"] ?? null);
  const step = seen.length;
  if (step >= 3) {
    res.writeHead(204);
    res.end();
    return;
  }
  const session = await createSession(req, res, { serializer: String, retry: 100, keepAlive: 100 });
  const from = after(session.lastId);
  if (step === 1) {
    for (const e of log.slice(from, 3)) push(session, e);
    setTimeout(() => res.destroy(), 50); // cut, not ended: a network error to the client
    return;
  }
  for (const e of log.slice(from, 4)) push(session, e);
  setTimeout(() => {
    for (const e of log.slice(Math.max(from, 4))) push(session, e);
    res.end();
  }, 1200);
});

server.listen({ host: "127.0.0.1", port: 0 }, () => {
  console.log(`listening ${server.address().port}`);
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(0));
