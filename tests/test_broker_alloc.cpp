// The broker's fan-out allocates nothing per subscriber per event. A global operator new that
// counts proves it; sanitizer runtimes replace operator new themselves, so this test is built
// only without them.
#include <sse/broker.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<std::size_t> g_allocations{0};
}
// These replace the global pair, so delete must free what new malloc'd; g++ at -O2 does not
// know that the pair is replaced together.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1))
    return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

TEST_CASE("publish allocates nothing per subscriber once queues have room", "[broker][alloc]") {
  sse::broker b;
  std::vector<sse::subscription> subs;
  for (int i = 0; i < 200; ++i)
    subs.push_back(b.subscribe("t"));
  sse::frame const f(sse::event("x"));
  std::vector<sse::frame> out;
  out.reserve(64);
  // Warm up: let every ring grow to the size it needs for this traffic.
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 8; ++i)
      b.publish("t", f);
    for (auto& s : subs) {
      out.clear();
      s.pop_all(out);
    }
  }
  auto const before = g_allocations.load();
  for (int i = 0; i < 8; ++i)
    CHECK(b.publish("t", f).receivers == 200);
  auto const after_publish = g_allocations.load();
  for (auto& s : subs) {
    out.clear();
    CHECK(s.pop_all(out) == 8);
  }
  CHECK(after_publish - before == 0);
  CHECK(g_allocations.load() - before == 0);
}

