#pragma once

/// Answering a request later, from any thread: the asynchronous handler's side.

#include <sse/http.hpp>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <utility>

namespace sse {

namespace detail {

/// What a responder completes; the server implements it for each pending request.
class pending_answer {
public:
  virtual ~pending_answer() = default;
  /// Hands the answer to the connection's thread; never blocks, never throws.
  virtual void answer(response&& r) noexcept = 0;
  /// The last responder went away without an answer.
  virtual void abandon() noexcept = 0;
  /// False once the client has left or the request timed out.
  virtual bool waiting() const noexcept = 0;
};

} // namespace detail

/// Completes one request, once, from any thread: the second argument of an asynchronous
/// handler, `void(sse::request&, sse::responder)`.
///
/// Copies share the request: the first `send` answers it (an ordinary response or a stream),
/// and a later one throws. If every copy is destroyed without an answer the client gets a 500
/// and the server's error log says so. If the client left (or `handler_timeout` passed) before
/// the answer, the answer is dropped: `waiting()` tells a producer it can stop. The request
/// the handler was given stays valid while any copy lives.
class responder {
public:
  responder() = default;
  explicit responder(std::shared_ptr<detail::pending_answer> target)
      : core_(std::make_shared<core>(std::move(target))) {}

  /// Answers the request.
  /// @throws std::logic_error if it was already answered, or for an empty responder.
  void send(response r) {
    if (!core_)
      throw std::logic_error("sse::responder::send: an empty responder answers nothing");
    if (core_->sent.exchange(true))
      throw std::logic_error("sse::responder::send: the request was already answered");
    core_->target->answer(std::move(r));
  }

  /// True while the request still waits for its answer (the client is there, no timeout, not
  /// answered yet).
  bool waiting() const noexcept {
    return core_ && !core_->sent.load() && core_->target->waiting();
  }

  explicit operator bool() const noexcept { return core_ != nullptr; }

private:
  struct core {
    explicit core(std::shared_ptr<detail::pending_answer> t) : target(std::move(t)) {}
    core(core const&) = delete;
    core& operator=(core const&) = delete;
    ~core() {
      if (!sent.load())
        target->abandon();
    }
    std::shared_ptr<detail::pending_answer> target;
    std::atomic<bool> sent{false};
  };
  std::shared_ptr<core> core_;
};

} // namespace sse
