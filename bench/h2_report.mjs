// Turns the JSON of one bench/h2.sh run into the section "HTTP/2 and HTTPS" of
// docs/benchmarks.md (replacing that section, keeping the rest of the file).
//   node bench/h2_report.mjs RESULTS_DIR OUT.md [--check]
// RESULTS_DIR holds <label>.json per load-generator run and meta.json. --check: exit 1 when a
// run is missing, lost events, refused a POST, failed a subscriber or delivered nothing (the
// smoke test's verdict).
import fs from "node:fs";
import path from "node:path";

const [dir, out, flag] = process.argv.slice(2);
if (!dir || !out) {
  console.error("usage: node bench/h2_report.mjs RESULTS_DIR OUT.md [--check]");
  process.exit(2);
}
const meta = JSON.parse(fs.readFileSync(path.join(dir, "meta.json"), "utf8"));
const load = (label) => {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, `${label}.json`), "utf8"));
  } catch {
    return null;
  }
};

const fmtInt = (v) => (v == null || v < 0 || !isFinite(v) ? "–" : Math.round(v).toLocaleString("en-US"));
const us = (v) => (v == null || v < 0 ? "–" : v >= 10000 ? `${(v / 1000).toFixed(1)} ms` : `${v.toFixed(0)} µs`);
const pct = (v) => (v == null || v < 0 ? "–" : `${Math.round(v * 100)} %`);
const usd = (v) => (v == null || v < 0 ? "–" : `${v.toFixed(2)} µs`);
const x = (v) => (v == null || !isFinite(v) ? "–" : `${v.toFixed(2)}×`);
const bytes = (v) => (v == null || !isFinite(v) ? "–" : Math.abs(v) >= 10240 ? `${(v / 1024).toFixed(1)} KiB` : `${Math.round(v)} B`);
const mib = (kib) => (kib == null || kib < 0 ? "–" : `${(kib / 1024).toFixed(1)} MiB`);
const median = (xs) => {
  const s = xs.filter((v) => v != null && isFinite(v)).sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : null;
};

const problems = [];
const runs = {};
function take(label, { idle = false } = {}) {
  const r = load(label);
  runs[label] = r;
  if (!r) return problems.push(`\`${label}\`: the load generator produced no result (logs/${label}.loadgen.log).`), r;
  if (r.established !== r.subs)
    problems.push(`\`${label}\`: ${r.subs - r.established} of ${r.subs} streams did not open` +
      (r.refused_status ? ` (${r.refused_status} answered ${r.last_bad_status})` : "") + ".");
  if (r.protocol_errors > 0) problems.push(`\`${label}\`: ${r.protocol_errors} protocol errors.`);
  if (idle) return r;
  if (r.lost > 0) problems.push(`\`${label}\`: ${r.lost.toLocaleString("en-US")} events lost of ${r.expected.toLocaleString("en-US")} expected.`);
  if (r.publish_failed > 0 || r.publish_unanswered > 0)
    problems.push(`\`${label}\`: ${r.publish_failed} POSTs refused, ${r.publish_unanswered} unanswered.`);
  if (!(r.events_received > 0)) problems.push(`\`${label}\`: no event arrived.`);
  if (r.gaps > 0 || r.out_of_order > 0 || r.foreign_events > 0)
    problems.push(`\`${label}\`: ${r.gaps} gaps, ${r.out_of_order} out of order, ${r.foreign_events} foreign events.`);
  if (r.closed_early > 0) problems.push(`\`${label}\`: the server closed ${r.closed_early} streams.`);
  return r;
}

const n = meta.subs, few = meta.few;
const setups = [
  { key: "h1", name: "HTTP/1.1", conns: n, tls: false },
  { key: `h2c-${few}`, name: "h2c", conns: few, tls: false },
  { key: `h2c-${n}`, name: "h2c", conns: n, tls: false },
  { key: "h1tls", name: "HTTPS (HTTP/1.1 over TLS)", conns: n, tls: true },
  { key: `h2tls-${few}`, name: "h2 (over TLS)", conns: few, tls: true },
  { key: `h2tls-${n}`, name: "h2 (over TLS)", conns: n, tls: true },
];
// Per setup: its rounds, and the round with the median deliveries/s.
const a = {};
for (const s of setups) {
  const rs = [];
  for (let i = 1; i <= meta.rounds; ++i) rs.push(take(`a-${s.key}-r${i}`));
  const ok = rs.filter(Boolean);
  const sorted = [...ok].sort((p, q) => p.deliveries_per_s - q.deliveries_per_s);
  a[s.key] = { rounds: rs, med: sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)] : null };
}
// Ratios per round (each against the same round's HTTP/1.1 run, seconds apart), then the median.
const roundRatio = (key, base) =>
  median(a[key].rounds.map((r, i) => (r && a[base].rounds[i] ? r.deliveries_per_s / a[base].rounds[i].deliveries_per_s : null)));
const ratios = Object.fromEntries(setups.map((s) => [s.key, roundRatio(s.key, "h1")]));
// The same per server CPU second: what the protocol costs the server, whatever share of its
// core it got (the machine is shared).
const cpuPer = (r) => (r && r.server_cpu_s > 0 && r.deliveries > 0 ? (r.server_cpu_s * 1e6) / r.deliveries : null);
const cpuRatios = Object.fromEntries(setups.map((s) => [s.key, median(a[s.key].rounds.map((r, i) => {
  const p = cpuPer(r), b = cpuPer(a.h1.rounds[i]);
  return p && b ? b / p : null;
}))]));
const tlsRatios = Object.fromEntries(setups.filter((s) => s.tls).map((s) => [s.key, roundRatio(s.key, "h1tls")]));

const idleSetups = [
  { key: "i-h1", name: "HTTP/1.1", tls: false },
  { key: "i-h2c", name: "h2c", tls: false },
  { key: "i-h1tls", name: "HTTPS (HTTP/1.1 over TLS)", tls: true },
  { key: "i-h2tls", name: "h2 (over TLS)", tls: true },
  { key: "s-h2c", name: "h2c", tls: false },
  { key: "s-h2tls", name: "h2 (over TLS)", tls: true },
];
const idle = Object.fromEntries(idleSetups.map((s) => [s.key, take(s.key, { idle: true })]));
const delta = (r) => (r && r.rss_kib.connected >= 0 && r.rss_kib.before >= 0 ? (r.rss_kib.connected - r.rss_kib.before) * 1024 : null);
const perConn = (r) => (r && delta(r) != null && r.connections > 0 ? delta(r) / r.connections : null);
const perStream = (r) => (r && delta(r) != null && r.established > 0 ? delta(r) / r.established : null);

const md = [];
const line = (s = "") => md.push(s);
line("## HTTP/2 and HTTPS");
line();
if (meta.quick) line("**This is a `--quick` smoke run: tiny counts and 1 s runs; the figures mean nothing.**\n");
line(
  `The chat example over HTTP/1.1, HTTPS (HTTP/1.1 over TLS), h2c (cleartext HTTP/2 by prior knowledge, ` +
    `on the HTTP/1.1 port) and h2 (HTTP/2 over TLS, chosen by ALPN), measured in one run of \`${meta.command}\` ` +
    `by \`sse_h2_loadgen\`: \`sse_loadgen\`'s code (bench/loadgen.cpp) with TLS from OpenSSL and HTTP/2 from nghttp2's ` +
    `client, used for every row, so the rows differ only in protocol. ${meta.date}; ${meta.nproc} CPUs, ${meta.cpu_model}, ` +
    `${meta.memory}; ${meta.openssl_version}, nghttp2 ${meta.nghttp2_version}; sse ${meta.sse_commit}; load average ` +
    `${meta.load_before} at the start; wall time ${meta.wall_seconds} s.`,
);
line();
line(
  `A fresh chat process (1 thread) per run on core ${meta.server_cpus}, the load generator on core ${meta.loadgen_cpus}. ` +
    `HTTPS uses a self-signed ECDSA P-256 certificate (TLS 1.3, the client accepts it unchecked). ` +
    `Streams subscribe to a topic of their own; events are ${meta.window} HTTP/1.1 POSTs outstanding, as fast as ` +
    `they are accepted, as in (a) above (over TLS to the HTTPS server), 64-byte payloads carrying their send time. ` +
    `${meta.duration} s measured per run after ${meta.warmup} s of warm-up. Latency ends at the kernel's receive ` +
    `timestamp of the bytes that carried the event (TLS records are decrypted from our own reads); "lost" counts ` +
    `events answered 2xx that a stream never got.`,
);
line();

line(`### Fan-out: ${fmtInt(n)} event streams, publishing as fast as accepted`);
line();
line("| protocol | connections | streams per connection | deliveries/s | vs HTTP/1.1 | events/s accepted | p50 | p99 | max | lost | server CPU per delivery | deliveries per CPU second vs HTTP/1.1 | waited | loadgen CPU | deliveries/s, every round |");
line("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
for (const s of setups) {
  const r = a[s.key].med;
  if (!r) {
    line(`| ${s.name} | ${fmtInt(s.conns)} | | failed ||||||||||`);
    continue;
  }
  const cpu = r.server_cpu_s >= 0 && r.deliveries > 0 ? (r.server_cpu_s * 1e6) / r.deliveries : -1;
  line(
    `| ${s.name} | ${fmtInt(r.connections)} | ${fmtInt(r.established / Math.max(r.connections, 1))} | ${fmtInt(r.deliveries_per_s)} | ` +
      `${s.key === "h1" ? "1" : x(ratios[s.key])} | ${fmtInt(r.publish_rate)} | ${us(r.latency_us.p50)} | ${us(r.latency_us.p99)} | ` +
      `${us(r.latency_us.max)} | ${fmtInt(r.lost)} | ${usd(cpu)} | ${s.key === "h1" ? "1" : x(cpuRatios[s.key])} | ${pct(r.server_runq_wait)} | ${pct(r.loadgen_cpu)} | ` +
      `${a[s.key].rounds.map((q) => (q ? fmtInt(q.deliveries_per_s) : "failed")).join(", ")} |`,
  );
}
line();
line(
  `${meta.rounds} round${meta.rounds > 1 ? "s" : ""}, the setups taking turns in each; a row is its round with the median ` +
    `deliveries/s. "vs HTTP/1.1" is the median over the rounds of deliveries/s divided by the same round's HTTP/1.1 ` +
    `run; "deliveries per CPU second" the same with the server's CPU time per delivery (its inverse), which does not ` +
    `depend on the share of its core the server got. Over TLS, against HTTPS (HTTP/1.1 over TLS) instead: ` +
    `${setups.filter((s) => s.tls && s.key !== "h1tls").map((s) => `h2 over ${fmtInt(s.conns)} connections ${x(tlsRatios[s.key])}`).join(", ")}. ` +
    `"Waited" is the time the server was runnable but not running (other processes on its core).`,
);
const noisy = setups.filter((s) => a[s.key].med && a[s.key].med.server_runq_wait > 0.1);
if (noisy.length)
  line(
    `Other processes took the server's core in ${noisy.map((s) => `${s.name} over ${fmtInt(s.conns)} (${pct(a[s.key].med.server_runq_wait)})`).join(", ")}: ` +
      `those figures are low by about that much.`,
  );
const lgBound = setups.filter((s) => {
  const r = a[s.key].med;
  return r && r.loadgen_cpu > 0.9 && r.server_cpu_util + Math.max(r.server_runq_wait, 0) < 0.9;
});
if (lgBound.length)
  line(
    `The load generator used most of its core while the server had time to spare in ${lgBound.map((s) => `${s.name} over ${fmtInt(s.conns)}`).join(", ")}: ` +
      `there the client, not the server, may set the rate.`,
  );
line();

line("### Idle memory: per TLS connection, per HTTP/2 stream");
line();
line(
  `The server's RSS before connecting and after every stream is open and a ${meta.quick ? "short" : "2 s"} settle, as in (c) above; ` +
    `the difference divided by the connections (or streams). Kernel socket buffers are not in any process's RSS.`,
);
line();
line("| protocol | connections | streams | RSS before | RSS connected | per connection | per stream | per connection vs HTTP/1.1 |");
line("|---|---:|---:|---:|---:|---:|---:|---:|");
const baseConn = perConn(idle["i-h1"]);
for (const s of idleSetups) {
  const r = idle[s.key];
  if (!r) {
    line(`| ${s.name} | failed |||||||`);
    continue;
  }
  line(
    `| ${s.name} | ${fmtInt(r.connections)} | ${fmtInt(r.established)} | ${mib(r.rss_kib.before)} | ${mib(r.rss_kib.connected)} | ` +
      `${bytes(perConn(r))} | ${bytes(perStream(r))} | ${s.key === "i-h1" ? "1" : x(perConn(r) / baseConn)} |`,
  );
}
line();
// Each stream beyond its connection's first: (s) minus its connections at the (i) cost.
const marginal = (sKey, iKey) => {
  const r = idle[sKey], c = perConn(idle[iKey]);
  if (!r || c == null || delta(r) == null || !(r.established > r.connections)) return null;
  return (delta(r) - r.connections * c) / (r.established - r.connections);
};
const m2c = marginal("s-h2c", "i-h2c"), m2 = marginal("s-h2tls", "i-h2tls");
line(
  `Each HTTP/2 stream beyond its connection's first, taking the one-stream connections of the rows above off the ` +
    `${fmtInt(meta.streams)}-stream rows: about ${bytes(m2c)} (h2c) and ${bytes(m2)} (h2), against ${bytes(baseConn)} for a whole ` +
    `HTTP/1.1 connection with its stream.`,
);
line();

const perRound = (key) =>
  a[key].rounds.map((r, i) => (r && a.h1.rounds[i] ? r.deliveries_per_s / a.h1.rounds[i].deliveries_per_s : null));
const met = (ok) => (ok == null ? "–" : ok ? "**met**" : "**not met**");
const h2cWorst = Math.min(ratios[`h2c-${few}`] ?? -Infinity, ratios[`h2c-${n}`] ?? -Infinity);
line("### Targets");
line();
line("| target | measured | |");
line("|---|---|---|");
line(
  `| h2c deliveries/s at least 80 % of HTTP/1.1's, same run | over ${fmtInt(few)} connections ${x(ratios[`h2c-${few}`])}, ` +
    `over ${fmtInt(n)} connections ${x(ratios[`h2c-${n}`])} (per server CPU second: ${x(cpuRatios[`h2c-${few}`])} and ` +
    `${x(cpuRatios[`h2c-${n}`])}); round by round over ${fmtInt(n)}: ${perRound(`h2c-${n}`).map(x).join(", ")} | ` +
    `${met(isFinite(h2cWorst) ? h2cWorst >= 0.8 : null)} |`,
);
line(
  `| memory per idle HTTPS connection documented | HTTP/1.1 over TLS ${bytes(perConn(idle["i-h1tls"]))}, h2 ` +
    `${bytes(perConn(idle["i-h2tls"]))} (plain HTTP/1.1 ${bytes(baseConn)}, h2c ${bytes(perConn(idle["i-h2c"]))}) | ` +
    `${met(perConn(idle["i-h1tls"]) != null && perConn(idle["i-h2tls"]) != null)} |`,
);
const lostTotal = Object.values(runs).reduce((s, r) => s + (r && r.mode === "publish" ? r.lost : 0), 0);
const missing = Object.values(runs).filter((r) => !r).length;
line(`| no loss | ${fmtInt(lostTotal)} events lost in ${Object.keys(runs).length - missing} runs | ${met(lostTotal === 0 && missing === 0)} |`);
line();
if (problems.length) {
  line("Problems in this run:");
  line();
  for (const p of problems) line(`- ${p}`);
  line();
}
line("Rerun: `bench/h2.sh` (rewrites this section only), `bench/h2.sh --quick` (a smoke run, written under");
line("`build/bench/results/`). Raw JSON per run: `build/bench/results/h2-<date>/`.");
line();

// Splice the section into OUT: replace the old one, else before "## Odd things in this run",
// else at the end.
const section = md.join("\n") + "\n";
let doc = fs.existsSync(out) ? fs.readFileSync(out, "utf8") : "";
const head = "## HTTP/2 and HTTPS";
const start = doc.indexOf(`\n${head}\n`);
if (start >= 0) {
  const next = doc.indexOf("\n## ", start + head.length + 2);
  doc = doc.slice(0, start + 1) + section + (next >= 0 ? doc.slice(next + 1) : "");
} else {
  const odd = doc.indexOf("\n## Odd things in this run\n");
  if (odd >= 0) doc = doc.slice(0, odd + 1) + section + doc.slice(odd + 1);
  else doc = doc + (doc && !doc.endsWith("\n\n") ? "\n" : "") + section;
}
fs.writeFileSync(out, doc);
console.log(`wrote ${out}`);
if (flag === "--check" && problems.length) {
  for (const p of problems) console.error(`bench/h2.sh: ${p}`);
  process.exit(1);
}
