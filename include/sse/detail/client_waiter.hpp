#pragma once

/// A pending `sse::client::async_next`: the handler, type-erased, completed on its own
/// executor.

#include <sse/detail/tracked_work.hpp>
#include <sse/parser.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/post.hpp>

#include <system_error>
#include <utility>

namespace sse::detail {

/// A pending `async_next`.
class next_waiter {
public:
  virtual ~next_waiter() = default;
  virtual void complete(std::error_code ec, parsed_event ev) = 0;
};

/// Holds `Handler` and keeps its executor's context busy until it completes, so a `run()`
/// does not return while an `async_next` is pending.
template <class Handler>
class async_next_waiter final : public next_waiter {
public:
  using executor_type = asio::associated_executor_t<Handler, asio::any_io_executor>;
  async_next_waiter(Handler h, asio::any_io_executor const& io_ex)
      : handler_(std::move(h)), work_(asio::get_associated_executor(handler_, io_ex)) {}
  void complete(std::error_code ec, parsed_event ev) override {
    auto ex = work_.get_executor();
    asio::post(ex, [h = std::move(handler_), ec, ev = std::move(ev)]() mutable {
      std::move(h)(ec, std::move(ev));
    });
  }

private:
  Handler handler_;
  tracked_work<executor_type> work_;
};

} // namespace sse::detail
