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

#include <sse/sse.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
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

} // namespace

BENCHMARK_MAIN();
