#pragma once

/// An immutable, reference-counted byte buffer holding one or more formatted frames.

#include <sse/format.hpp>

#include <atomic>
#include <cstddef>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <utility>

namespace sse {

/// Encoded once at publish, then shared: copying a frame adds a reference, never the bytes.
///
/// One allocation holds the count and the bytes, and a handle is one pointer, so a subscriber
/// queue of frames costs eight bytes per entry. Copies may be used from any thread.
class frame {
public:
  /// An empty frame (no allocation).
  frame() noexcept = default;

  /// Copies `bytes` (already formatted) into a new shared buffer.
  explicit frame(std::string_view bytes) {
    if (!bytes.empty()) {
      rep_ = allocate(bytes.size());
      std::memcpy(rep_->bytes(), bytes.data(), bytes.size());
    }
  }

  /// Formats `ev` straight into a new shared buffer.
  explicit frame(event const& ev) {
    // Format into a reused per-thread scratch, then copy once: no second allocation.
    thread_local std::string scratch;
    scratch.clear();
    format_to(scratch, ev);
    if (!scratch.empty()) {
      rep_ = allocate(scratch.size());
      std::memcpy(rep_->bytes(), scratch.data(), scratch.size());
    }
    if (scratch.capacity() > 64 * 1024)
      std::string().swap(scratch);
  }

  frame(frame const& other) noexcept : rep_(other.rep_) {
    if (rep_)
      rep_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  frame(frame&& other) noexcept : rep_(std::exchange(other.rep_, nullptr)) {}
  frame& operator=(frame const& other) noexcept {
    frame(other).swap(*this);
    return *this;
  }
  frame& operator=(frame&& other) noexcept {
    frame(std::move(other)).swap(*this);
    return *this;
  }
  ~frame() { release(); }

  void swap(frame& other) noexcept { std::swap(rep_, other.rep_); }

  char const* data() const noexcept { return rep_ ? rep_->bytes() : nullptr; }
  std::size_t size() const noexcept { return rep_ ? rep_->size : 0; }
  bool empty() const noexcept { return size() == 0; }
  std::string_view view() const noexcept { return {data(), size()}; }
  /// How many handles share this buffer (0 for an empty frame); for tests and diagnostics.
  std::size_t use_count() const noexcept {
    return rep_ ? rep_->refs.load(std::memory_order_relaxed) : 0;
  }

  friend bool operator==(frame const& a, frame const& b) noexcept { return a.view() == b.view(); }
  friend bool operator!=(frame const& a, frame const& b) noexcept { return !(a == b); }

private:
  struct rep {
    std::atomic<std::size_t> refs{1};
    std::size_t size = 0;
    char* bytes() noexcept { return reinterpret_cast<char*>(this + 1); }
  };

  static rep* allocate(std::size_t size) {
    void* mem = ::operator new(sizeof(rep) + size);
    rep* r = ::new (mem) rep;
    r->size = size;
    return r;
  }

  void release() noexcept {
    if (rep_ && rep_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      rep_->~rep();
      ::operator delete(rep_);
    }
    rep_ = nullptr;
  }

  rep* rep_ = nullptr;
};

inline void swap(frame& a, frame& b) noexcept { a.swap(b); }

} // namespace sse
