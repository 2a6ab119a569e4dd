// Turns the JSON of one bench/run.sh run into docs/benchmarks.md.
//   node bench/report.mjs RESULTS_DIR OUT.md
// RESULTS_DIR holds one <label>.json per load-generator run (see bench/run.sh for the labels),
// meta.json (machine, versions, command, wall time) and, optionally, micro.json.
import fs from "node:fs";
import path from "node:path";

const [dir, out] = process.argv.slice(2);
if (!dir || !out) {
  console.error("usage: node bench/report.mjs RESULTS_DIR OUT.md");
  process.exit(2);
}
const meta = JSON.parse(fs.readFileSync(path.join(dir, "meta.json"), "utf8"));
const runs = {};
for (const f of fs.readdirSync(dir)) {
  if (!f.endsWith(".json") || f === "meta.json" || f.startsWith("micro")) continue;
  try {
    runs[f.slice(0, -5)] = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
  } catch {
    runs[f.slice(0, -5)] = null; // a run that printed nothing usable: shown as "failed"
  }
}

const servers = meta.servers;
// Scenarios run (bench/run.sh BENCH_SCENARIOS); older results ran them all.
const ran = (x) => !meta.scenarios || meta.scenarios.includes(x);
const names = { sse: "sse (chat, 1 thread)", nchan: "nginx + nchan", "better-sse": "Node + better-sse", floor: "floor" };
const peers = servers.filter((s) => s !== "sse");

const fmtInt = (v) => (v == null || v < 0 ? "–" : Math.round(v).toLocaleString("en-US"));
const fmt = (v, d = 1) => (v == null || v < 0 ? "–" : v.toFixed(d));
const us = (v) => (v == null || v < 0 ? "–" : v >= 10000 ? `${(v / 1000).toFixed(1)} ms` : `${v.toFixed(0)} µs`);
const pct = (v) => (v == null || v < 0 ? "–" : `${Math.round(v * 100)} %`);
const kib = (v) => (v == null || v < 0 ? "–" : `${(v / 1024).toFixed(1)} MiB`);
const bytes = (v) => (v == null || v < 0 ? "–" : v >= 10240 ? `${(v / 1024).toFixed(1)} KiB` : `${Math.round(v)} B`);
const ratio = (a, b) => (a == null || b == null || !(a > 0) || !(b > 0) ? "–" : `${(a / b).toFixed(a / b >= 10 ? 0 : a / b >= 1 ? 1 : 2)}×`);

const notes = [];
const starved = []; // [label, server waited, loadgen waited]
function check(label, r, { expectLoss = false } = {}) {
  if (!r) {
    notes.push(`\`${label}\`: the load generator produced no result (see logs/${label}.loadgen.log).`);
    return;
  }
  if (r.failed > 0)
    notes.push(`\`${label}\`: ${r.failed} of ${r.subs} subscribers could not connect` +
      (r.refused_status ? ` (${r.refused_status} answered ${r.last_bad_status})` : "") + ".");
  if (!expectLoss && r.lost > 0)
    notes.push(`\`${label}\`: ${r.lost.toLocaleString("en-US")} events lost of ${r.expected.toLocaleString("en-US")} expected` +
      (r.closed_early ? `; ${r.closed_early} reading subscribers were disconnected by the server` : "") + ".");
  if (r.publish_failed > 0 || r.publish_unanswered > 0)
    notes.push(`\`${label}\`: ${r.publish_failed} POSTs refused, ${r.publish_unanswered} unanswered.`);
  if (r.mode === "publish" && r.rx_time === "kernel" && r.kernel_stamped_reads === 0 && r.user_stamped_reads > 0)
    notes.push(`\`${label}\`: no kernel receive timestamps; its latency is when the load generator read the events.`);
  if (r.protocol_errors > 0) notes.push(`\`${label}\`: ${r.protocol_errors} protocol errors.`);
  if (r.foreign_events > 0)
    notes.push(`\`${label}\`: ${r.foreign_events} events the load generator did not send` +
      (r.foreign_events === r.established && label.includes("sse") ? " (one per stream: the chat example's `presence` list to each new subscriber)." : "."));
  if (r.loadgen_cpu > 0.9) {
    const serverBusy = r.server_cpu_util + Math.max(r.server_runq_wait, 0) > 0.9;
    notes.push(`\`${label}\`: the load generator used ${pct(r.loadgen_cpu)} of its core` +
      (serverBusy
        ? `, but the server was running or waiting for its core ${pct(r.server_cpu_util + Math.max(r.server_runq_wait, 0))} of the time, so the server set the rate (nothing was lost, so no socket backed up).`
        : `: it may be the bottleneck.`));
  }
  if (r.server_runq_wait > 0.1 || r.loadgen_runq_wait > 0.1) starved.push([label, r.server_runq_wait, r.loadgen_runq_wait]);
  const q = r.probe;
  if (q) {
    if (q.unanswered > 0) notes.push(`\`${label}\`: ${q.unanswered} fairness probes (GET ${q.path}) were never answered.`);
    if (q.answered > q.ok) notes.push(`\`${label}\`: ${q.answered - q.ok} fairness probes were answered with a non-2xx status (last ${q.last_status}).`);
    if (q.sent < 0.5 * q.expected)
      notes.push(`\`${label}\`: only ${fmtInt(q.sent)} of ${fmtInt(q.expected)} fairness probes went out in the window: the answers were slower than the ${q.interval_ms} ms interval (see "p99 from due").`);
  }
}

const md = [];
const line = (s = "") => md.push(s);

line("# Benchmarks");
line();
line("The chat example's `GET /listen` + `POST /publish` against nginx with nchan, Node with better-sse,");
line("and a floor server that does one `write()` per subscriber per event and nothing else, all");
line("measured in one run of `bench/run.sh` by `sse_loadgen` (bench/loadgen.cpp).");
line();
if (meta.quick) line("**This is a `--quick` smoke run: tiny counts and 1 s runs; the figures mean nothing.**\n");
line("## Machine and run");
line();
line(`- Date: ${meta.date}`);
line(`- Machine: ${meta.nproc} CPUs, ${meta.cpu_model}, ${meta.memory}; kernel ${meta.kernel}`);
line(`- Command: \`${meta.command}\``);
line(`- Wall time of the whole run: ${meta.wall_seconds} s`);
line(`- Measured: ${meta.duration} s per run after ${meta.warmup} s of warm-up; ${meta.pause} s pause between servers`);
line(`- Versions: sse ${meta.sse_commit}; ${meta.nginx_version} with libnginx-mod-nchan ${meta.nchan_version}; Node ${meta.node_version} with better-sse ${meta.better_sse_version}; ${meta.compiler}`);
if (meta.load_before) line(`- Load average when the run started: ${meta.load_before}${meta.busy_before ? `; busy processes: ${meta.busy_before}` : ""}`);
line();
line("Each server runs alone, single-threaded and pinned to core 0 (`taskset -c 0`); the load");
line("generator is pinned to core 1. Events are 64-byte payloads (`t=<send ns> p=<publisher> s=<seq>`");
line("padded with `x`). \"Deliveries/s\" counts events received, summed over subscribers, during the");
line("measured window. Latency is the kernel's receive time of the event on the subscriber's socket");
line("(`SO_TIMESTAMPNS`) minus the send time in the payload, so it does not include the time the");
line("single-threaded load generator takes to get round to a socket (shown apart in (b)). \"Lost\" is, per");
line("reading subscriber, every event whose POST was answered 2xx minus what arrived (a subscriber the");
line("server disconnected loses the rest). Server CPU is utime+stime from `/proc/PID/stat` over the");
line("window; \"waited\" is the time the server's threads were runnable but not running");
line("(`/proc/PID/task/*/schedstat`, summed over threads), i.e. how much another process took from");
line("the server's core: high values mean the throughput figures of that row are low. Memory is");
line("`VmRSS` (for nginx, the worker process). Ratios are sse's figure divided by the other's.");
line();

function ratioLine(get, key, better) {
  const base = get("sse");
  if (!base) return;
  const parts = peers.map((p) => `sse / ${p} = ${ratio(key(base), get(p) ? key(get(p)) : null)}`);
  line(`${parts.join(", ")} (${better} is better).`);
  line();
}

// --- (a) ---
if (ran("a")) {
line("## (a) Fan-out as fast as the server accepts");
line();
line(`Publishing in a closed loop with ${meta.window} POSTs outstanding (one per keep-alive connection).`);
line("Latency here is mostly queueing behind those POSTs; see (b) for latency at a steady rate.");
line();
for (const n of meta.a_subs) {
  line(`### ${n.toLocaleString("en-US")} subscribers`);
  line();
  line("| server | deliveries/s | publishes/s | p50 | p99 | lost | CPU per delivery | server CPU | waited | RSS / connection | loadgen CPU |");
  line("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  const get = (s) => runs[`a-${n}-${s}`];
  const rows = servers.map((s) => [names[s], `a-${n}-${s}`]);
  if (runs[`a-${n}-sse-2threads`] !== undefined)
    rows.push(["sse (chat, 2 threads, cores 0+1, shares core 1 with the load generator)", `a-${n}-sse-2threads`]);
  for (const [name, label] of rows) {
    const r = runs[label];
    check(label, r);
    if (!r) {
      line(`| ${name} | failed | | | | | | | | | |`);
      continue;
    }
    line(`| ${name} | ${fmtInt(r.deliveries_per_s)} | ${fmtInt(r.publish_rate)} | ${us(r.latency_us.p50)} | ${us(r.latency_us.p99)} | ${fmtInt(r.lost)} | ${fmt(r.server_cpu_us_per_delivery, 2)} µs | ${pct(r.server_cpu_util)} | ${pct(r.server_runq_wait)} | ${bytes(r.rss_per_conn_bytes)} | ${pct(r.loadgen_cpu)} |`);
  }
  line();
  ratioLine(get, (r) => r.deliveries_per_s, "higher");
  const t2 = runs[`a-${n}-sse-2threads`], t1 = get("sse");
  if (t2 && t1) {
    line(`sse 2 threads / 1 thread = ${ratio(t2.deliveries_per_s, t1.deliveries_per_s)} deliveries/s.`);
    line();
  }
}
}

// --- (s) single publisher ---
// Figures checked against issue #12's targets, collected for the "Targets" section.
const targets = [];
const met = (ok) => (ok == null ? "–" : ok ? "**met**" : "**not met**");
const x = (v) => (v == null || !(v > 0) ? "–" : `${v.toFixed(v >= 10 ? 0 : 1)}×`);
const div = (a, b) => (a == null || b == null || !(a > 0) || !(b > 0) ? null : a / b);
if (ran("s")) {
  line("## Single publisher: one POST in flight, as fast as acknowledged");
  line();
  line("One publisher connection sends its next event when the previous POST is answered (the load");
  line("generator's window is 1), so the server never holds two events at once: every event is its");
  line("own write to every subscriber, and the rate is set by how fast one event goes out. Otherwise");
  line("as (a). Ratios are sse's figure over the other's in this run.");
  line();
  for (const n of meta.a_subs) {
    line(`### ${n.toLocaleString("en-US")} subscribers, 1 publisher`);
    line();
    line("| server | deliveries/s | publishes/s | p50 | p99 | lost | CPU per delivery | server CPU | waited | loadgen CPU |");
    line("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (const s of servers) {
      const label = `s-${n}-${s}`, r = runs[label];
      check(label, r);
      if (!r) {
        line(`| ${names[s]} | failed | | | | | | | | |`);
        continue;
      }
      line(`| ${names[s]} | ${fmtInt(r.deliveries_per_s)} | ${fmtInt(r.publish_rate)} | ${us(r.latency_us.p50)} | ${us(r.latency_us.p99)} | ${fmtInt(r.lost)} | ${fmt(r.server_cpu_us_per_delivery, 2)} µs | ${pct(r.server_cpu_util)} | ${pct(r.server_runq_wait)} | ${pct(r.loadgen_cpu)} |`);
    }
    line();
    ratioLine((s) => runs[`s-${n}-${s}`], (r) => r.deliveries_per_s, "higher");
  }
  line("### 1 publisher beside 8");
  line();
  line("| subscribers | server | deliveries/s, 8 publishers | 1 publisher | 1 / 8 | p99, 8 publishers | 1 publisher | lost, 1 publisher |");
  line("|---:|---|---:|---:|---:|---:|---:|---:|");
  for (const n of meta.a_subs)
    for (const s of servers) {
      const a = runs[`a-${n}-${s}`], r = runs[`s-${n}-${s}`];
      line(`| ${n.toLocaleString("en-US")} | ${names[s]} | ${a ? fmtInt(a.deliveries_per_s) : "–"} | ${r ? fmtInt(r.deliveries_per_s) : "–"} | ${ratio(r?.deliveries_per_s, a?.deliveries_per_s)} | ${a ? us(a.latency_us.p99) : "–"} | ${r ? us(r.latency_us.p99) : "–"} | ${r ? fmtInt(r.lost) : "–"} |`);
    }
  line();
  if (servers.includes("sse") && servers.includes("nchan")) {
    for (const n of meta.a_subs) {
      const r = runs[`s-${n}-sse`], c = runs[`s-${n}-nchan`];
      const k = div(r?.deliveries_per_s, c?.deliveries_per_s);
      targets.push([`One publisher, ${n.toLocaleString("en-US")} subscribers: sse ≥ 3× nchan's deliveries/s, no loss`,
        `${x(k)} (${r ? fmtInt(r.deliveries_per_s) : "–"} vs ${c ? fmtInt(c.deliveries_per_s) : "–"}/s), ${r ? fmtInt(r.lost) : "–"} lost`,
        k == null || !r ? null : k >= 3 && r.lost === 0]);
    }
    const big = meta.a_subs[meta.a_subs.length - 1];
    const r = runs[`s-${big}-sse`], c = runs[`s-${big}-nchan`];
    targets.push([`One publisher, ${big.toLocaleString("en-US")} subscribers: sse's p99 below nchan's`,
      `${r ? us(r.latency_us.p99) : "–"} vs ${c ? us(c.latency_us.p99) : "–"}`,
      r && c ? r.latency_us.p99 < c.latency_us.p99 : null]);
  }
}
if (ran("a") && servers.includes("sse") && servers.includes("nchan")) {
  // Issue #12's "today": the ratios measured when it was opened, at 1,000 and 10,000.
  const before = { 1000: 6, 10000: 9 };
  for (const n of meta.a_subs) {
    const k = div(runs[`a-${n}-sse`]?.deliveries_per_s, runs[`a-${n}-nchan`]?.deliveries_per_s);
    const floor = before[n];
    targets.push([`Eight publishers, ${n.toLocaleString("en-US")} subscribers: sse / nchan no worse than ${floor ? `${floor}×` : "before"}`,
      x(k), k == null || !floor ? null : k >= floor]);
  }
}

// --- fairness ---
const probed = [];
for (const [prefix, what] of [["a", `${meta.window} publishers`], ["s", "1 publisher"]])
  for (const s of servers) {
    const r = runs[`${prefix}-${meta.probe_subs}-${s}`];
    if (r && r.probe) probed.push([prefix, what, s, r]);
  }
if (probed.length) {
  line(`## Fairness: GET / while ${meta.probe_subs.toLocaleString("en-US")} subscribers are fed as fast as accepted`);
  line();
  line(`During the ${meta.probe_subs.toLocaleString("en-US")}-subscriber runs of (a) and of the single-publisher scenario, the load`);
  line(`generator also sends \`GET ${meta.probe_path}\` on a keep-alive connection of its own, one request at a time, every ${meta.probe_interval_ms} ms`);
  line("(one waiting behind a late answer goes as soon as that answer is in): the chat example's page, 14 KiB;");
  line("nchan, better-sse and the floor server serve the same file there. Latency runs from the request's");
  line("write to the kernel's receive time of the answer's last bytes; \"from due\" runs from when the request");
  line("was due, so it counts the wait behind a slow answer too, as a client arriving then would see it.");
  line("\"Sent\" against \"due\" shows how many the slow answers held back past the window.");
  line();
  line("| server | publishers | p50 | p99 | max | p99 from due | sent / due | answered 2xx | unanswered | deliveries/s of the run |");
  line("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const [, what, s, r] of probed) {
    const q = r.probe;
    line(`| ${names[s]} | ${what} | ${us(q.latency_us.p50)} | ${us(q.latency_us.p99)} | ${us(q.latency_us.max)} | ${us(q.from_due_us?.p99)} | ${fmtInt(q.sent)} / ${fmtInt(q.expected)} | ${fmtInt(q.ok)} | ${fmtInt(q.unanswered)} | ${fmtInt(r.deliveries_per_s)} |`);
  }
  line();
  for (const [prefix, what, s, r] of probed) {
    if (s !== "sse") continue;
    const q = r.probe;
    targets.push([`Fairness, ${what}, ${meta.probe_subs.toLocaleString("en-US")} subscribers: sse answers GET / with p99 < 20 ms`,
      `${us(q.latency_us.p99)} (max ${us(q.latency_us.max)}; from due: p99 ${us(q.from_due_us?.p99)}; ${fmtInt(q.sent)} of ${fmtInt(q.expected)} probes sent, ${q.unanswered} unanswered)`,
      q.latency_us.samples > 0 ? q.latency_us.p99 < 20000 && q.unanswered === 0 : null]);
  }
}

// --- (b) ---
if (ran("b")) {
line(`## (b) Latency at a steady ${meta.b_rate} events/s, ${meta.b_subs.toLocaleString("en-US")} subscribers`);
line();
line("| server | p50 | p99 | max | p50 / p99 as read by the load generator | deliveries/s | lost | CPU per delivery | server CPU | waited | loadgen CPU |");
line("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
{
  const get = (s) => runs[`b-${s}`];
  for (const s of servers) {
    const r = get(s);
    check(`b-${s}`, r);
    if (!r) {
      line(`| ${names[s]} | failed | | | | | | | | | |`);
      continue;
    }
    const app = r.app_latency_us ? `${us(r.app_latency_us.p50)} / ${us(r.app_latency_us.p99)}` : "–";
    line(`| ${names[s]} | ${us(r.latency_us.p50)} | ${us(r.latency_us.p99)} | ${us(r.latency_us.max)} | ${app} | ${fmtInt(r.deliveries_per_s)} | ${fmtInt(r.lost)} | ${fmt(r.server_cpu_us_per_delivery, 2)} µs | ${pct(r.server_cpu_util)} | ${pct(r.server_runq_wait)} | ${pct(r.loadgen_cpu)} |`);
  }
  line();
  const rounds = servers.map((s) => get(s)).find((r) => r && r.rounds_p99_us);
  if (rounds && rounds.rounds_p99_us.length > 1) {
    line(`Each server ran ${rounds.rounds_p99_us.length} times, taking turns with the others; the row is its run with the median p99. All p99s:`);
    for (const s of servers) {
      const r = get(s);
      if (r && r.rounds_p99_us) line(`- ${names[s]}: ${r.rounds_p99_us.map((v) => us(v)).join(", ")}`);
    }
    line();
  }
  line("p99:");
  ratioLine(get, (r) => r.latency_us.p99, "lower");
}
}

// --- (c) ---
if (ran("c")) {
line(`## (c) ${meta.c_subs.toLocaleString("en-US")} idle connections: memory per connection`);
line();
line("RSS before connecting, after connecting every subscriber (and a settle second), and the");
line("difference divided by the connections. Kernel socket buffers are not in any process's RSS.");
line();
line("| server | connected | RSS before | RSS connected | per connection | server CPU while idle |");
line("|---|---:|---:|---:|---:|---:|");
{
  const get = (s) => runs[`c-${s}`];
  for (const s of servers) {
    const r = get(s);
    check(`c-${s}`, r, { expectLoss: true });
    if (!r) {
      line(`| ${names[s]} | failed | | | | |`);
      continue;
    }
    line(`| ${names[s]} | ${fmtInt(r.established)} | ${kib(r.rss_kib.before)} | ${kib(r.rss_kib.connected)} | ${bytes(r.rss_per_conn_bytes)} | ${fmt(r.server_cpu_s, 2)} s |`);
  }
  line();
  ratioLine(get, (r) => r.rss_per_conn_bytes, "lower");
}
}

// --- (d) ---
if (ran("d")) {
line(`## (d) ${Math.round(meta.d_stall * 100)} % of ${meta.d_subs.toLocaleString("en-US")} subscribers stop reading, publishing as fast as accepted`);
line();
line("The stalled subscribers never read after the response head; what they miss is not counted.");
line("\"Lost\" is for the reading subscribers only. RSS is at the end of the measured window.");
line();
line("| server | deliveries/s | reading p99 | RSS at the end | lost | reading subscribers disconnected | CPU per delivery | waited |");
line("|---|---:|---:|---:|---:|---:|---:|---:|");
{
  const get = (s) => runs[`d-${s}`];
  for (const s of servers) {
    const r = get(s);
    check(`d-${s}`, r);
    if (!r) {
      line(`| ${names[s]} | failed | | | | | | |`);
      continue;
    }
    line(`| ${names[s]} | ${fmtInt(r.deliveries_per_s)} | ${us(r.latency_us.p99)} | ${kib(r.rss_kib.end)} | ${fmtInt(r.lost)} | ${fmtInt(r.closed_early)} | ${fmt(r.server_cpu_us_per_delivery, 2)} µs | ${pct(r.server_runq_wait)} |`);
  }
  line();
  line("Deliveries/s:");
  ratioLine(get, (r) => r.deliveries_per_s, "higher");
}
}

// --- micro ---
const microPath = path.join(dir, "micro.json");
if (fs.existsSync(microPath)) {
  try {
    const micro = JSON.parse(fs.readFileSync(microPath, "utf8"));
    line("## Micro-benchmarks (`sse_micro`, Google Benchmark, pinned to core 0)");
    line();
    line("`broker_publish/N`: one publish of a shared 64-byte frame to N subscribers, the queues");
    line("drained with `pop_all` every 16 publishes outside the timed region; `broker_publish_and_drain/N`");
    line("times the drain too (amortized over the 16). Per subscriber = per publish / N.");
    line();
    line("| benchmark | per call / publish | per subscriber |");
    line("|---|---:|---:|");
    for (const b of micro.benchmarks ?? []) {
      if (b.run_type === "aggregate") continue;
      const unitNs = { ns: 1, us: 1e3, ms: 1e6, s: 1e9 }[b.time_unit] ?? 1;
      const ns = (b.real_time * unitNs) / (b.publishes_per_iteration ?? 1);
      const n = b.subscribers ?? null;
      line(`| ${b.name} | ${ns >= 10000 ? `${(ns / 1000).toFixed(1)} µs` : `${ns.toFixed(1)} ns`} | ${n ? `${(ns / n).toFixed(1)} ns` : ""} |`);
    }
    line();
  } catch {
    notes.push("the micro-benchmarks' JSON could not be read.");
  }
}
const microMtPath = path.join(dir, "micro_mt.json");
if (fs.existsSync(microMtPath)) {
  try {
    const all = (JSON.parse(fs.readFileSync(microMtPath, "utf8")).benchmarks ?? []).filter((b) => b.run_type !== "aggregate");
    line("### Concurrency (`sse_micro` on both cores)");
    line();
    line("`BM_concurrent_publish/1000`: each thread publishes to a topic of its own with 1,000 subscribers;");
    line("per iteration every thread makes 16 publishes between two barriers (timed: until the slowest");
    line("thread is done), then drains its subscribers with `pop_all` (not timed, no one publishing).");
    line("Publishes/s are over all threads. The process has had a second thread before the one-thread run:");
    line("glibc takes a mutex without atomic instructions in a process that never had one, which no");
    line("server using a broker is (the single-threaded figures above have that shortcut).");
    line();
    line("| threads | publishes/s | deliveries/s | time per round of 16 publishes, per thread | / 1 thread |");
    line("|---:|---:|---:|---:|---:|");
    const conc = all.filter((b) => b.name.startsWith("BM_concurrent_publish/"));
    const one = conc.find((b) => b.threads === 1);
    for (const b of conc) {
      const unitNs = { ns: 1, us: 1e3, ms: 1e6, s: 1e9 }[b.time_unit] ?? 1;
      // Google Benchmark divides the threads' mean time by their summed iterations.
      line(`| ${b.threads} | ${fmtInt(b.publishes_per_s)} | ${fmtInt(b.items_per_second)} | ${us((b.real_time * b.threads * unitNs) / 1000)} | ${ratio(b.publishes_per_s, one?.publishes_per_s)} |`);
    }
    line();
    const two = conc.find((b) => b.threads === 2);
    const k = div(two?.publishes_per_s, one?.publishes_per_s);
    targets.push(["Publish from 2 threads to 2 topics: ≥ 1.6× the rate of 1 thread (2 cores)", x(k), k == null ? null : k >= 1.6]);

    line("`BM_subscribe_during_publish/X`: a `subscribe` + `unsubscribe` pair due every 100 µs while another thread");
    line("publishes without pause to 100,000 subscribers of one topic (drop_oldest queues of 4 that nobody reads);");
    line("X is the topic the pairs use. p50/p99/max run from each pair's due time to its end: pairs held up behind");
    line("a blocked one count their wait (no slot is skipped), as a client arriving then would. \"Per call\" is the");
    line("pair's own time. \"Publishes/s\" is the publisher's rate meanwhile.");
    line();
    line("| pairs on | samples | p50 | p99 | max | per call p99 / max | subscribe p99 | unsubscribe p99 | publishes/s to 100,000 |");
    line("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    const control = all.find((b) => b.name.startsWith("BM_subscribe_during_publish/no_publisher"));
    for (const b of all.filter((b) => b.name.startsWith("BM_subscribe_during_publish/"))) {
      const what = b.name.split("/")[1].replace(/_/g, " ");
      line(`| ${what} | ${fmtInt(b.samples)} | ${us(b.p50_us)} | ${us(b.p99_us)} | ${us(b.max_us)} | ${us(b.call_p99_us)} / ${us(b.call_max_us)} | ${us(b.subscribe_p99_us)} | ${us(b.unsubscribe_p99_us)} | ${fmtInt(b.publishes_per_s)} |`);
      if (b.name.includes("/no_publisher")) continue;
      targets.push([`Subscribe + unsubscribe while another thread publishes to 100,000 subscribers (${what}): p99 < 1 ms`,
        `${us(b.p99_us)} (max ${us(b.max_us)}; per call ${us(b.call_p99_us)}; ${fmtInt(b.publishes_per_s)} publishes/s; with no publisher ${control ? us(control.p99_us) : "–"})`,
        b.samples > 0 ? b.p99_us < 1000 : null]);
    }
    line();
  } catch {
    notes.push("the concurrent micro-benchmarks' JSON could not be read.");
  }
}

if (targets.length) {
  line("## Targets (issue #12)");
  line();
  line("Each figure from this run; ratios between servers are of runs made minutes apart on the same cores.");
  line();
  line("| target | this run | |");
  line("|---|---|---|");
  for (const [what, figure, ok] of targets) line(`| ${what} | ${figure} | ${met(ok)} |`);
  line();
}

if (starved.length) {
  const worst = starved.reduce((a, b) => (b[1] > a[1] ? b : a));
  const worstLg = starved.reduce((a, b) => (b[2] > a[2] ? b : a));
  notes.unshift(
    `Other processes took CPU time during ${starved.length} of ${Object.keys(runs).length} runs ` +
      `(runnable-but-waiting over 10 % for the server or the load generator): the server waited up to ` +
      `${pct(worst[1])} (\`${worst[0]}\`), the load generator up to ${pct(worstLg[2])} (\`${worstLg[0]}\`). ` +
      `Throughput figures of those runs are low by about that much; ratios between servers measured ` +
      `under similar waits are more trustworthy than absolute numbers. The "waited" columns show each run's share.`,
  );
}
// The sections of bench/redis.sh ("Scale-out through Redis") and bench/h2.sh ("HTTP/2 and
// HTTPS") are their own: kept as they are in OUT.
if (fs.existsSync(out)) {
  const old = fs.readFileSync(out, "utf8");
  for (const title of ["Scale-out through Redis", "HTTP/2 and HTTPS"]) {
    const start = old.indexOf(`\n## ${title}\n`);
    if (start >= 0) {
      const next = old.indexOf("\n## ", start + 2);
      md.push(...old.slice(start + 1, next >= 0 ? next + 1 : old.length).replace(/\n+$/, "").split("\n"), "");
    }
  }
}
line("## Odd things in this run");
line();
if (notes.length === 0) line("Nothing: no loss, no failed connection, no starved process.");
for (const n of notes) line(`- ${n}`);
line();
line("## Rerun");
line();
line("```sh");
line("bench/run.sh            # everything, writes docs/benchmarks.md" + (meta.quick ? "" : ` (${Math.round(meta.wall_seconds / 60)} minutes here)`));
line("bench/run.sh --quick    # smoke run: tiny counts, 1 s each, written under build/bench/results/");
line("BENCH_DURATION=30 BENCH_WARMUP=5 BENCH_SERVERS='sse floor' bench/run.sh");
line("BENCH_SCENARIOS='s' BENCH_SERVERS='sse nchan' BENCH_DURATION=4 bench/run.sh   # one scenario (report under build/bench/results/)");
line("SSE_MICRO_SAMPLE_SECONDS=2 taskset -c 0,1 build/bench/bench/sse_micro --benchmark_filter='^BM_(concurrent|subscribe)_'");
line("```");
line();
line("Raw JSON of every run: `build/bench/results/<date>/` (not committed). The servers: the chat");
line("example (`examples/chat`), `bench/nchan.conf.in`, `bench/better-sse/server.mjs` and");
line("`bench/floor_server.cpp`.");

fs.writeFileSync(out, md.join("\n") + "\n");
console.log(`wrote ${out}`);
