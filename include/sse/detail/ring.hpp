#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <utility>

namespace sse::detail {

/// A FIFO on a power-of-two ring that grows on demand up to a cap set by its owner. Storage is
/// allocated on the first push, so an idle subscriber costs nothing here, and a push into a ring
/// with room never allocates.
template <class T>
class ring {
public:
  ring() = default;
  ring(ring const&) = delete;
  ring& operator=(ring const&) = delete;
  ~ring() {
    clear();
    std::allocator<T>().deallocate(buf_, cap_);
  }

  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return cap_; }

  T& front() noexcept { return buf_[head_]; }

  /// Appends `v`, growing the storage if full. `v` must be nothrow-movable.
  template <class U>
  void push_back(U&& v) {
    if (size_ == cap_)
      grow();
    ::new (static_cast<void*>(buf_ + ((head_ + size_) & (cap_ - 1)))) T(std::forward<U>(v));
    ++size_;
  }

  void pop_front() noexcept {
    buf_[head_].~T();
    head_ = (head_ + 1) & (cap_ - 1);
    --size_;
  }

  /// Takes back the last push_back (a caller undoing half of a two-part enqueue).
  void pop_back() noexcept {
    --size_;
    buf_[(head_ + size_) & (cap_ - 1)].~T();
  }

  void clear() noexcept {
    while (size_ != 0)
      pop_front();
    head_ = 0;
  }

  /// Exchanges contents and storage: a batch is taken out in O(1), and both rings keep
  /// their capacity for the next one.
  void swap(ring& other) noexcept {
    std::swap(buf_, other.buf_);
    std::swap(cap_, other.cap_);
    std::swap(head_, other.head_);
    std::swap(size_, other.size_);
  }

  /// Gives the storage back when a burst is over, so a long-lived idle subscriber stays small.
  void shrink_if_empty(std::size_t keep) noexcept {
    if (size_ == 0 && cap_ > keep) {
      std::allocator<T>().deallocate(buf_, cap_);
      buf_ = nullptr;
      cap_ = 0;
      head_ = 0;
    }
  }

private:
  void grow() {
    std::size_t const ncap = cap_ == 0 ? 4 : cap_ * 2;
    T* nbuf = std::allocator<T>().allocate(ncap);
    for (std::size_t i = 0; i < size_; ++i) {
      T& src = buf_[(head_ + i) & (cap_ - 1)];
      ::new (static_cast<void*>(nbuf + i)) T(std::move(src));
      src.~T();
    }
    std::allocator<T>().deallocate(buf_, cap_);
    buf_ = nbuf;
    cap_ = ncap;
    head_ = 0;
  }

  T* buf_ = nullptr;
  std::size_t cap_ = 0;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

} // namespace sse::detail
