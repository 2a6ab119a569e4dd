// sse_micro: Google Benchmark micro-benchmarks of the hot paths of a publish.
//
//   sse_micro [--benchmark_filter=REGEX] [--benchmark_format=json] ...
//
// One iteration of the broker benchmarks is 16 publishes of one shared frame to N subscribers,
// then a drain of every subscriber with pop_all into a reused vector; the reported time is per
// iteration (report.mjs divides by 16, and by N for the per-subscriber figure).
// broker_publish/N            only the 16 publishes are timed (manual timing around them); the
//                             drain is OUTSIDE the timed region.
// broker_publish_and_drain/N  publishes and drain are both timed: the broker's whole share of
//                             delivering 16 events to N streams.
// 16 stays below the ring size a queue keeps when it empties (it gives a burst's storage back
// above that), so neither variant measures ring growth.
//
// Concurrency (issue #12; bench/run.sh runs these on both cores, the others on one):
// concurrent_publish/N/threads:T  T threads, each publishing to a topic of its own with N
//                             subscribers: per iteration every thread does 16 publishes between
//                             two barriers, so the time is until the slowest is done and no
//                             thread's (untimed) drain overlaps another's publishes.
//                             publishes_per_s is over all threads; threads:2 / threads:1 is
//                             how well publishes to different topics run in parallel (both
//                             in a process that has had a second thread: see the function).
// subscribe_during_publish/X  subscribe + unsubscribe, one pair due every 100 µs for
//                             SSE_MICRO_SAMPLE_SECONDS (1), while another thread publishes
//                             without pause to 100,000 subscribers of one topic (drop_oldest
//                             queues of 4, never read, so memory stays bounded); X says which
//                             topic the pairs use: the published one, another, or no publisher.
//                             p50/p99/max_us are from each pair's due time to its end, so pairs
//                             held up behind a blocked one count their wait too (no slot is
//                             skipped: a sampler stuck for 5 ms owes 50 pairs, each late);
//                             call_p99_us is the pair's own time. publishes_per_s shows the
//                             publisher kept going.

#include <sse/sse.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

std::string payload(std::size_t size, bool newlines) {
  std::string s;
  s.reserve(size);
  for (std::size_t i = 0; i < size; ++i)
    s.push_back(newlines && i % 32 == 31 ? '\n' : static_cast<char>('a' + i % 26));
  return s;
}

void format_event(benchmark::State& state, std::size_t size, bool newlines) {
  std::string const data = payload(size, newlines);
  for (auto _ : state) {
    std::string out = sse::format_event(data);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(size));
}

void BM_format_event_64(benchmark::State& s) { format_event(s, 64, false); }
void BM_format_event_64_newlines(benchmark::State& s) { format_event(s, 64, true); }
void BM_format_event_4k(benchmark::State& s) { format_event(s, 4096, false); }
void BM_format_event_4k_newlines(benchmark::State& s) { format_event(s, 4096, true); }
BENCHMARK(BM_format_event_64);
BENCHMARK(BM_format_event_64_newlines);
BENCHMARK(BM_format_event_4k);
BENCHMARK(BM_format_event_4k_newlines);

/// frame(event): format into the per-thread scratch, then one allocation for the shared bytes.
void BM_frame_from_event(benchmark::State& state) {
  sse::event const ev(payload(static_cast<std::size_t>(state.range(0)), false));
  for (auto _ : state) {
    sse::frame f(ev);
    benchmark::DoNotOptimize(f.data());
  }
}
BENCHMARK(BM_frame_from_event)->Arg(64)->Arg(4096);

constexpr int drain_every = 16;

struct fan_out {
  sse::broker broker;
  std::vector<sse::subscription> subs;
  std::vector<sse::frame> out;
  sse::frame const f{sse::event(payload(64, false))};

  explicit fan_out(std::size_t n) {
    subs.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
      subs.push_back(broker.subscribe("t"));
    out.reserve(drain_every);
    // Warm up every ring to the size this traffic needs.
    for (int i = 0; i < drain_every; ++i)
      broker.publish("t", f);
    drain();
  }
  void drain() {
    for (auto& s : subs) {
      out.clear();
      s.pop_all(out);
    }
    out.clear();
  }
};

void BM_broker_publish(benchmark::State& state) {
  fan_out fo(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    auto const t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < drain_every; ++i)
      benchmark::DoNotOptimize(fo.broker.publish("t", fo.f));
    auto const t1 = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    fo.drain(); // not timed
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * drain_every * state.range(0));
  state.counters["subscribers"] = static_cast<double>(state.range(0));
  state.counters["publishes_per_iteration"] = drain_every;
}
BENCHMARK(BM_broker_publish)->UseManualTime()->Arg(1)->Arg(100)->Arg(10000);

void BM_broker_publish_and_drain(benchmark::State& state) {
  fan_out fo(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    for (int i = 0; i < drain_every; ++i)
      benchmark::DoNotOptimize(fo.broker.publish("t", fo.f));
    fo.drain();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * drain_every * state.range(0));
  state.counters["subscribers"] = static_cast<double>(state.range(0));
  state.counters["publishes_per_iteration"] = drain_every;
}
BENCHMARK(BM_broker_publish_and_drain)->Arg(1)->Arg(100)->Arg(10000);

// --- concurrency --------------------------------------------------------------------------

/// A barrier for the threads of one benchmark run (std::barrier is C++20). It spins, yielding:
/// the phases it separates last tens of microseconds, less than a sleep and a wake-up.
class spin_barrier {
public:
  void wait(int n) {
    int const gen = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == n) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
      return;
    }
    while (generation_.load(std::memory_order_acquire) == gen)
      std::this_thread::yield();
  }

private:
  std::atomic<int> arrived_{0}, generation_{0};
};

void BM_concurrent_publish(benchmark::State& state) {
  // glibc (2.34 and later) locks and unlocks a mutex without atomic instructions while the
  // process has never had a second thread, which halves the cost of a push here. A broker is
  // there to be shared by threads, as in every server: one thread is timed as it runs there,
  // after a thread has existed, or "1 thread" would measure glibc's shortcut, not the broker.
  static bool const threaded = [] {
    std::thread([] {}).join();
    return true;
  }();
  (void)threaded;
  // One broker and one barrier for every thread of every run: function-local statics, made
  // once whichever thread comes first.
  static sse::broker broker;
  static spin_barrier barrier;
  auto const n = static_cast<std::size_t>(state.range(0));
  std::string const topic = "topic-" + std::to_string(state.thread_index());
  sse::frame const f{sse::event(payload(64, false))}; // per thread: no reference count shared
  std::vector<sse::subscription> subs;
  subs.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    subs.push_back(broker.subscribe(topic));
  std::vector<sse::frame> out;
  out.reserve(drain_every);
  auto drain = [&] {
    for (auto& s : subs) {
      out.clear();
      s.pop_all(out);
    }
    out.clear();
  };
  for (int i = 0; i < drain_every; ++i) // warm every ring up, as fan_out does
    broker.publish(topic, f);
  drain();
  for (auto _ : state) {
    barrier.wait(state.threads());
    auto const t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < drain_every; ++i)
      benchmark::DoNotOptimize(broker.publish(topic, f));
    barrier.wait(state.threads()); // until every thread's publishes are done
    auto const t1 = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    drain(); // not timed; the other threads drain too, and none publishes before the barrier
  }
  auto const publishes = static_cast<double>(state.iterations()) * drain_every;
  state.SetItemsProcessed(static_cast<std::int64_t>(publishes) * state.range(0));
  // Summed over the threads, then divided by the (per-thread, averaged) manual time.
  state.counters["publishes_per_s"] = benchmark::Counter(publishes, benchmark::Counter::kIsRate);
  state.counters["subscribers"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kAvgThreads);
  state.counters["publishes_per_iteration"] = benchmark::Counter(drain_every, benchmark::Counter::kAvgThreads);
}
BENCHMARK(BM_concurrent_publish)->Arg(1000)->UseManualTime()->Threads(1)->Threads(2);

double sample_seconds() {
  char const* v = std::getenv("SSE_MICRO_SAMPLE_SECONDS");
  double const s = v ? std::atof(v) : 1.0;
  return s > 0 ? s : 1.0;
}

enum class publisher_load { none, same_topic, other_topic };

double quantile_us(std::vector<std::int64_t>& ns, double q) {
  if (ns.empty())
    return -1;
  auto const k = std::min(ns.size() - 1, static_cast<std::size_t>(q * static_cast<double>(ns.size())));
  std::nth_element(ns.begin(), ns.begin() + static_cast<std::ptrdiff_t>(k), ns.end());
  return static_cast<double>(ns[k]) / 1000.0;
}

void BM_subscribe_during_publish(benchmark::State& state, publisher_load load) {
  using clock = std::chrono::steady_clock;
  constexpr std::size_t fan_out_subscribers = 100000;
  sse::broker broker;
  sse::subscribe_options bounded; // nobody reads them: the oldest goes, memory stays put
  bounded.limits = sse::queue_limits{4, 64 * 1024, sse::overflow_policy::drop_oldest};
  std::vector<sse::subscription> subs;
  subs.reserve(fan_out_subscribers);
  for (std::size_t i = 0; i < fan_out_subscribers; ++i)
    subs.push_back(broker.subscribe("fan-out", bounded));

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> published{0};
  std::thread publisher;
  if (load != publisher_load::none)
    publisher = std::thread([&] {
      sse::frame const f{sse::event(payload(64, false))};
      while (!stop.load(std::memory_order_relaxed)) {
        broker.publish("fan-out", f);
        published.fetch_add(1, std::memory_order_relaxed);
      }
    });
  std::string const topic = load == publisher_load::other_topic ? "elsewhere" : "fan-out";
  auto const seconds = std::chrono::duration<double>(sample_seconds());
  // One pair due every 100 µs, not back to back: a sampler that never lets go of the broker
  // would measure its own hold on it, and starve the publisher it is meant to compete with.
  auto const pace = std::chrono::microseconds(100);
  std::vector<std::int64_t> arrival_ns, pair_ns, sub_ns, unsub_ns;
  std::uint64_t publishes = 0;
  double measured = 0;
  for (auto _ : state) {
    while (load != publisher_load::none && published.load(std::memory_order_relaxed) == 0)
      std::this_thread::yield(); // the publisher is under way
    std::uint64_t const p0 = published.load(std::memory_order_relaxed);
    auto const start = clock::now();
    auto const end = start + std::chrono::duration_cast<clock::duration>(seconds);
    for (auto due = start; due < end; due += pace) { // every slot, late ones as soon as possible
      // Spin, without yielding: on a busy machine a yield gives the core away for a whole time
      // slice, and the sampler's own lateness would be counted against the broker.
      while (clock::now() < due) {
      }
      auto const t0 = clock::now();
      sse::subscription s = broker.subscribe(topic);
      auto const t1 = clock::now();
      s.unsubscribe();
      auto const t2 = clock::now();
      sub_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
      unsub_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t2 - t1).count());
      pair_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t2 - t0).count());
      arrival_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t2 - due).count());
    }
    measured = std::chrono::duration<double>(clock::now() - start).count();
    publishes = published.load(std::memory_order_relaxed) - p0;
  }
  stop = true;
  if (publisher.joinable())
    publisher.join();
  auto max_us = [](std::vector<std::int64_t> const& v) {
    return v.empty() ? -1 : static_cast<double>(*std::max_element(v.begin(), v.end())) / 1000.0;
  };
  state.counters["samples"] = static_cast<double>(arrival_ns.size());
  state.counters["p50_us"] = quantile_us(arrival_ns, 0.5);
  state.counters["p99_us"] = quantile_us(arrival_ns, 0.99);
  state.counters["max_us"] = max_us(arrival_ns);
  state.counters["call_p50_us"] = quantile_us(pair_ns, 0.5);
  state.counters["call_p99_us"] = quantile_us(pair_ns, 0.99);
  state.counters["call_max_us"] = max_us(pair_ns);
  state.counters["subscribe_p99_us"] = quantile_us(sub_ns, 0.99);
  state.counters["unsubscribe_p99_us"] = quantile_us(unsub_ns, 0.99);
  state.counters["publishes_per_s"] = measured > 0 ? static_cast<double>(publishes) / measured : 0;
  state.counters["fan_out_subscribers"] = static_cast<double>(fan_out_subscribers);
}
BENCHMARK_CAPTURE(BM_subscribe_during_publish, same_topic, publisher_load::same_topic)
    ->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_subscribe_during_publish, other_topic, publisher_load::other_topic)
    ->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_subscribe_during_publish, no_publisher, publisher_load::none)
    ->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

} // namespace

BENCHMARK_MAIN();
