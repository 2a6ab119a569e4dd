// Turns the JSON of one bench/redis.sh run into the section "Scale-out through Redis" of
// docs/benchmarks.md (replacing that section, keeping the rest of the file).
//   node bench/redis_report.mjs RESULTS_DIR OUT.md [--check]
// RESULTS_DIR holds <label>.json per load-generator run, <label>.commandstats.txt (INFO
// commandstats and INFO cpu after each run on Redis) and meta.json. --check: exit 1 when a run
// is missing, lost events, refused a POST or delivered nothing (the smoke test's verdict).
import fs from "node:fs";
import path from "node:path";

const [dir, out, flag] = process.argv.slice(2);
if (!dir || !out) {
  console.error("usage: node bench/redis_report.mjs RESULTS_DIR OUT.md [--check]");
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
/// INFO commandstats as { command: { calls, usec, usec_per_call } }.
const commandstats = (label) => {
  let text;
  try {
    text = fs.readFileSync(path.join(dir, `${label}.commandstats.txt`), "utf8");
  } catch {
    return null;
  }
  const stats = {};
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+),usec_per_call=([\d.]+)/gm))
    stats[m[1]] = { calls: Number(m[2]), usec: Number(m[3]), usec_per_call: Number(m[4]) };
  return stats;
};

const setups = ["inproc", "redis1", "redis2"];
const names = {
  inproc: "1 process, in-process broker",
  redis1: "1 process on Redis",
  redis2: "2 processes on one Redis",
};
const fmtInt = (v) => (v == null || v < 0 ? "–" : Math.round(v).toLocaleString("en-US"));
const us = (v) => (v == null || v < 0 ? "–" : v >= 10000 ? `${(v / 1000).toFixed(1)} ms` : `${v.toFixed(0)} µs`);
const pct = (v) => (v == null || v < 0 ? "–" : `${Math.round(v * 100)} %`);
const usd = (v) => (v == null || v < 0 ? "–" : `${v.toFixed(2)} µs`);
const x = (v) => (v == null || !isFinite(v) ? "–" : `${v.toFixed(2)}×`);

const problems = [];
const runs = {};
function take(label) {
  const r = load(label);
  runs[label] = r;
  if (!r) return problems.push(`\`${label}\`: the load generator produced no result (logs/${label}.loadgen.log).`), r;
  if (r.established !== r.subs) problems.push(`\`${label}\`: ${r.subs - r.established} of ${r.subs} subscribers did not stream.`);
  if (r.lost > 0) problems.push(`\`${label}\`: ${r.lost.toLocaleString("en-US")} events lost of ${r.expected.toLocaleString("en-US")} expected.`);
  if (r.publish_failed > 0 || r.publish_unanswered > 0)
    problems.push(`\`${label}\`: ${r.publish_failed} POSTs refused, ${r.publish_unanswered} unanswered.`);
  if (!(r.events_received > 0)) problems.push(`\`${label}\`: no event arrived.`);
  if (r.gaps > 0 || r.out_of_order > 0 || r.protocol_errors > 0 || r.foreign_events > 0)
    problems.push(`\`${label}\`: ${r.gaps} gaps, ${r.out_of_order} out of order, ${r.protocol_errors} protocol errors, ${r.foreign_events} foreign events.`);
  return r;
}

// (b): the run with the median p99 per setup.
const b = {};
for (const s of setups) {
  const rs = [];
  for (let i = 1; i <= meta.b_rounds; ++i) {
    const r = take(`b-${s}-r${i}`);
    if (r) rs.push(r);
  }
  rs.sort((p, q) => p.latency_us.p99 - q.latency_us.p99);
  b[s] = rs.length ? { ...rs[Math.floor((rs.length - 1) / 2)], rounds_p99: rs.map((r) => r.latency_us.p99) } : null;
}
const a = Object.fromEntries(setups.map((s) => [s, take(`a-${s}`)]));
const t = Object.fromEntries(setups.map((s) => [s, take(`t-${s}`)]));

const serverCpu = (r) =>
  r && r.server_cpu_s >= 0 && r.deliveries > 0 ? (r.server_cpu_s * 1e6) / r.deliveries : -1;

const md = [];
const line = (s = "") => md.push(s);
line("## Scale-out through Redis");
line();
if (meta.quick) line("**This is a `--quick` smoke run: tiny counts and 1 s runs; the figures mean nothing.**\n");
line(
  `The chat example as one process with its in-process broker, as one process with \`--redis\`, and ` +
    `as two processes on one Redis (\`sse::redis::backend\`), measured in one run of \`${meta.command}\` ` +
    `by \`sse_loadgen\`. ${meta.date}; ${meta.nproc} CPUs, ${meta.cpu_model}, ${meta.memory}; ` +
    `${meta.redis_version.replace(/ sha=.*/, "")}; sse ${meta.sse_commit}; load average ${meta.load_before} at the start; ` +
    `wall time ${meta.wall_seconds} s.`,
);
line();
line(
  `Every chat process (1 server thread, plus the backend's thread on Redis) runs on core ` +
    `${meta.server_cpus}; the load generator on core ${meta.loadgen_cpus}; Redis on core ${meta.redis_cpus ?? meta.server_cpus}` +
    `${(meta.redis_cpus ?? meta.server_cpus) === meta.server_cpus ? ", beside the chat processes, which pay for it out of their core" : ", as it would run on a core (or machine) of its own in a deployment"}. ` +
    `So the chat processes get the same one core in every row; the second process shares it. Subscribers and publisher ` +
    `connections alternate between the two processes; every subscriber listens to the one topic ` +
    `published to. ${meta.duration} s measured per run after ${meta.warmup} s of warm-up, 64-byte ` +
    `events; latency and "lost" as in the sections above. Server CPU is the chat processes' and ` +
    `Redis' together.`,
);
line();

line(`### Latency at a steady ${meta.b_rate} events/s, ${fmtInt(meta.subs)} subscribers`);
line();
line("| setup | p50 | p99 | max | p99 / in-process p99 | deliveries/s | lost | server CPU per delivery | waited | all p99s |");
line("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
const baseP99 = b.inproc ? b.inproc.latency_us.p99 : null;
for (const s of setups) {
  const r = b[s];
  if (!r) {
    line(`| ${names[s]} | failed |||||||||`);
    continue;
  }
  line(
    `| ${names[s]} | ${us(r.latency_us.p50)} | ${us(r.latency_us.p99)} | ${us(r.latency_us.max)} | ` +
      `${s === "inproc" ? "1" : x(r.latency_us.p99 / baseP99)} | ${fmtInt(r.deliveries_per_s)} | ${fmtInt(r.lost)} | ` +
      `${usd(serverCpu(r))} | ${pct(r.server_runq_wait)} | ${r.rounds_p99.map(us).join(", ")} |`,
  );
}
line();
line(
  `Each setup ran ${meta.b_rounds} time${meta.b_rounds > 1 ? "s" : ""}, taking turns with the others; the row is its run with the median p99. ` +
    `"Waited" is the time the server-side threads (summed) were runnable but not running.`,
);
const noisy = setups.filter((s) => b[s] && b[s].server_runq_wait > 0.1);
if (noisy.length) {
  const min = (s) => (b[s] ? Math.min(...b[s].rounds_p99) : null);
  line(
    `Other processes took the servers' core: ${noisy.map((s) => `${names[s]} waited ${pct(b[s].server_runq_wait)}`).join(", ")} ` +
      `in its median run, so these p99s and their ratios say more about the machine than about the setups. ` +
      `The lowest p99 of each setup: ${setups.map((s) => `${names[s]} ${us(min(s))}`).join(", ")} ` +
      `(ratios ${["redis1", "redis2"].map((s) => x(min(s) / min("inproc"))).join(" and ")}).`,
  );
}
const per = b.redis2 && b.redis2.per_sub_url;
if (per) line(`Two processes, per process: ${per.map((p, i) => `node ${i + 1} p50 ${us(p.latency_us.p50)}, p99 ${us(p.latency_us.p99)}`).join("; ")}.`);
line();

line(`### As fast as accepted`);
line();
line(
  `(a) ${fmtInt(meta.subs)} subscribers, ${meta.window} POSTs outstanding; (t) one subscriber per process, ` +
    `${meta.t_window} POSTs outstanding: the publish path alone (HTTP, Redis, pub/sub), with almost no fan-out.`,
);
line();
line("| run | setup | events/s accepted | deliveries/s | p50 | p99 | lost | server CPU | server CPU per event | waited | loadgen CPU |");
line("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const [tag, set] of [["a", a], ["t", t]]) {
  for (const s of setups) {
    const r = set[s];
    if (!r) {
      line(`| ${tag} | ${names[s]} | failed |||||||||`);
      continue;
    }
    const perEvent = r.server_cpu_s >= 0 && r.publish_rate > 0 ? (r.server_cpu_s * 1e6) / (r.publish_rate * r.measured_s) : -1;
    line(
      `| ${tag} | ${names[s]} | ${fmtInt(r.publish_rate)} | ${fmtInt(r.deliveries_per_s)} | ${us(r.latency_us.p50)} | ` +
        `${us(r.latency_us.p99)} | ${fmtInt(r.lost)} | ${pct(r.server_cpu_util)} | ${usd(perEvent)} | ${pct(r.server_runq_wait)} | ${pct(r.loadgen_cpu)} |`,
    );
  }
}
line();

// Redis commands per event, from the (t) runs: the most events, and the history (1,000 events)
// full, so every publish also trims one.
line("### Redis commands per event");
line();
line(
  "From `INFO commandstats` (reset before each run) divided by the events published in that run " +
    "(warm-up included). The client sends one `EVALSHA` per publish; the rest run inside the " +
    "publish script. In (b) the history never fills, so nothing is trimmed there.",
);
line();
const statRuns = [];
for (const [tag, set] of [["t", t], ["a", a]]) for (const s of ["redis1", "redis2"]) statRuns.push([`${tag}-${s}`, set[s]]);
for (const s of ["redis1", "redis2"]) statRuns.push([`b-${s}`, b[s]]);
const statOf = {};
for (const [label, r] of statRuns) {
  const lbl = label.startsWith("b-") && r ? r.label : label;
  statOf[label] = r ? commandstats(lbl) : null;
}
// Commands of the benchmark itself (CONFIG RESETSTAT) and of setting up (SUBSCRIBE, PING,
// SCRIPT LOAD, the first EVAL: under 0.01 per event) are left out of the table.
const cmds = new Set();
const setupCmds = new Set();
for (const [label, r] of statRuns) {
  const st = statOf[label];
  if (!st || !r || !(r.published > 0)) continue;
  for (const [c, v] of Object.entries(st)) {
    if (c.startsWith("config")) continue;
    if (v.calls / r.published >= 0.01) cmds.add(c);
    else setupCmds.add(c);
  }
}
for (const c of cmds) setupCmds.delete(c);
const order = ["evalsha", "eval"];
const cmdList = [...order.filter((c) => cmds.has(c)), ...[...cmds].filter((c) => !order.includes(c)).sort()];
const perEvent = {};
line(`| command | ${statRuns.map(([l]) => `${l} calls/event`).join(" | ")} | µs per call (t-redis1) |`);
line(`|---|${statRuns.map(() => "---:").join("|")}|---:|`);
for (const c of cmdList) {
  const cells = statRuns.map(([label, r]) => {
    const st = statOf[label];
    if (!st || !r || !(r.published > 0)) return "–";
    const v = st[c] ? st[c].calls / r.published : 0;
    (perEvent[label] ??= {})[c] = v;
    return v === 0 ? "0" : v.toFixed(v >= 0.1 ? 2 : 4);
  });
  const st = statOf["t-redis1"];
  line(`| ${c} | ${cells.join(" | ")} | ${st && st[c] ? st[c].usec_per_call.toFixed(2) : "–"} |`);
}
const totals = statRuns.map(([label]) => {
  const p = perEvent[label];
  if (!p) return "–";
  const inner = Object.entries(p).filter(([c]) => cmds.has(c) && c !== "evalsha" && c !== "eval").reduce((s, [, v]) => s + v, 0);
  return `${((p.evalsha ?? 0) + (p.eval ?? 0)).toFixed(2)} + ${inner.toFixed(1)}`;
});
line(`| **sent + inside the script** | ${totals.join(" | ")} | |`);
line();
if (setupCmds.size)
  line(`Left out, under 0.01 per event (connecting, loading the scripts): ${[...setupCmds].sort().map((c) => `\`${c}\``).join(", ")}.`);
line();
const st1 = statOf["t-redis1"];
const scriptUs = st1 && st1.evalsha ? st1.evalsha.usec_per_call : null;
if (scriptUs) {
  const inner = Object.entries(st1).filter(([c]) => cmds.has(c) && !["evalsha", "eval"].includes(c));
  const innerUs = inner.reduce((s, [, v]) => s + v.usec, 0) / (t.redis1 ? t.redis1.published : 1);
  line(
    `One publish script takes ${scriptUs.toFixed(1)} µs of Redis' time (t-redis1), of which the commands it ` +
      `calls account for ${innerUs.toFixed(1)} µs: the rest is Lua itself. One Redis core can then run at ` +
      `most ${fmtInt(1e6 / scriptUs)} publishes/s, whatever the number of processes.`,
  );
  line();
}

// Targets (issue #9).
const p99ratio = (s) => (b[s] && baseP99 ? b[s].latency_us.p99 / baseP99 : null);
const worstRatio = Math.max(...["redis1", "redis2"].map((s) => p99ratio(s) ?? Infinity));
const redisRate = Math.min(...["redis1", "redis2"].map((s) => (t[s] ? t[s].publish_rate : 0)));
const lostTotal = Object.values(runs).reduce((s, r) => s + (r ? r.lost : 0), 0);
const refused = Object.values(runs).reduce((s, r) => s + (r ? r.publish_failed + r.publish_unanswered : 0), 0);
const missing = Object.values(runs).filter((r) => !r).length;
const met = (ok) => (ok ? "**met**" : "**not met**");
line("### Targets");
line();
line("| target | measured | |");
line("|---|---|---|");
line(
  `| p99 through Redis within 1.5× of the in-process p99 (same run, ${meta.b_rate} events/s) | ` +
    `1 process ${x(p99ratio("redis1"))}, 2 processes ${x(p99ratio("redis2"))} | ${met(worstRatio <= 1.5)} |`,
);
line(
  `| at least 20,000 events/s through Redis | (t): 1 process ${fmtInt(t.redis1?.publish_rate)}/s, 2 processes ` +
    `${fmtInt(t.redis2?.publish_rate)}/s; with ${fmtInt(meta.subs)} subscribers (a): ${fmtInt(a.redis1?.publish_rate)}/s and ` +
    `${fmtInt(a.redis2?.publish_rate)}/s (in-process ${fmtInt(a.inproc?.publish_rate)}/s) | ${met(redisRate >= 20000)} |`,
);
line(
  `| no loss | ${fmtInt(lostTotal)} events lost, ${fmtInt(refused)} POSTs refused or unanswered, in ${Object.keys(runs).length - missing} runs` +
    `${missing ? ` (${missing} runs failed)` : ""} | ${met(lostTotal === 0 && refused === 0 && missing === 0)} |`,
);
line();
line(
  `With ${fmtInt(meta.subs)} subscribers the fan-out, not Redis, bounds the publish rate ` +
    `(${fmtInt(meta.subs)} deliveries per event, in every setup), so the events/s target is measured by (t).`,
);
line();
const perEventCpu = (r) => (r && r.server_cpu_s >= 0 && r.publish_rate > 0 ? (r.server_cpu_s * 1e6) / (r.publish_rate * r.measured_s) : null);
if (redisRate < 20000 && perEventCpu(t.redis1)) {
  const c1 = perEventCpu(t.redis1), c0 = perEventCpu(t.inproc);
  line(
    `What limits (t): through Redis the server side spends ${c1.toFixed(1)} µs of CPU per event ` +
      `(chat and Redis together, 1 process) against ${c0 ? c0.toFixed(1) : "–"} µs in-process; on the one core they share ` +
      `that is at most ${fmtInt(1e6 / c1)} events/s even with no other load` +
      (scriptUs ? `, Redis' publish script being ${scriptUs.toFixed(1)} µs of it` : "") +
      `. The server side also waited ${pct(t.redis1.server_runq_wait)} (1 process) and ${pct(t.redis2?.server_runq_wait)} ` +
      `(2 processes) of the window for its core.`,
  );
  line();
}
if (problems.length) {
  line("Problems in this run:");
  line();
  for (const p of problems) line(`- ${p}`);
  line();
}
line("Rerun: `bench/redis.sh` (rewrites this section only), `bench/redis.sh --quick` (a smoke run, written under");
line("`build/bench/results/`). Raw JSON and `INFO commandstats` per run: `build/bench/results/redis-<date>/`.");
line();

// Splice the section into OUT: replace the old one, else before "## Odd things in this run",
// else at the end.
const section = md.join("\n") + "\n";
let doc = fs.existsSync(out) ? fs.readFileSync(out, "utf8") : "";
const head = "## Scale-out through Redis";
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
  for (const p of problems) console.error(`bench/redis.sh: ${p}`);
  process.exit(1);
}
