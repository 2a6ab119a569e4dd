// The better-sse peer for bench/run.sh: plain node:http, one channel.
//   node server.mjs [PORT]      (0 or nothing: the kernel picks; the URL is printed)
//   GET  /listen    a better-sse session registered on the channel
//   POST /publish   the body broadcast to the channel as the event's data
//   GET  /          the chat example's page (what chat serves there), for the fairness probe
// The library's defaults are kept (a `retry:` at the start, a keep-alive comment every 10 s,
// `event: message` and a random UUID `id:` per broadcast) except the serializer: the body is
// sent as it is, like the other servers do, instead of as a JSON string.
import fs from "node:fs";
import http from "node:http";
import { createChannel, createSession } from "better-sse";

const port = Number(process.argv[2] ?? 0);
const channel = createChannel();
const asIs = (data) => String(data);
const page = fs.readFileSync(new URL("../../examples/chat/page.html", import.meta.url));

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/listen") {
    createSession(req, res, { serializer: asIs }).then(
      (session) => channel.register(session),
      () => res.destroy(),
    );
    return;
  }
  if (req.method === "POST" && req.url === "/publish") {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      channel.broadcast(Buffer.concat(chunks).toString("utf8"));
      const body = JSON.stringify({ delivered: channel.sessionCount });
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
      res.end(body);
    });
    return;
  }
  if (req.method === "GET" && req.url === "/") {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Content-Length": page.length });
    res.end(page);
    return;
  }
  res.writeHead(404, { "Content-Type": "text/plain" });
  res.end("not found\n");
});

// Streams stay open for the whole run; publishers keep their connections.
server.keepAliveTimeout = 300_000;
server.headersTimeout = 60_000;
server.requestTimeout = 0;

server.listen({ host: "127.0.0.1", port, backlog: 4096 }, () => {
  console.log(`better-sse: serving http://127.0.0.1:${server.address().port}/`);
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(0));
