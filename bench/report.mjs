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
  if (!f.endsWith(".json") || f === "meta.json" || f === "micro.json") continue;
  try {
    runs[f.slice(0, -5)] = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
  } catch {
    runs[f.slice(0, -5)] = null; // a run that printed nothing usable: shown as "failed"
  }
}

const servers = meta.servers;
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
  if (r.foreign_events > 0) notes.push(`\`${label}\`: ${r.foreign_events} events the load generator did not send.`);
  if (r.loadgen_cpu > 0.9) {
    const serverBusy = r.server_cpu_util + Math.max(r.server_runq_wait, 0) > 0.9;
    notes.push(`\`${label}\`: the load generator used ${pct(r.loadgen_cpu)} of its core` +
      (serverBusy
        ? `, but the server was running or waiting for its core ${pct(r.server_cpu_util + Math.max(r.server_runq_wait, 0))} of the time, so the server set the rate (nothing was lost, so no socket backed up).`
        : `: it may be the bottleneck.`));
  }
  if (r.server_runq_wait > 0.1 || r.loadgen_runq_wait > 0.1) starved.push([label, r.server_runq_wait, r.loadgen_runq_wait]);
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

// --- (b) ---
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

// --- (c) ---
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

// --- (d) ---
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
line("```");
line();
line("Raw JSON of every run: `build/bench/results/<date>/` (not committed). The servers: the chat");
line("example (`examples/chat`), `bench/nchan.conf.in`, `bench/better-sse/server.mjs` and");
line("`bench/floor_server.cpp`.");

fs.writeFileSync(out, md.join("\n") + "\n");
console.log(`wrote ${out}`);
