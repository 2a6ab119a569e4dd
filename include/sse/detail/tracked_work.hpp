#pragma once

#include <asio/execution/outstanding_work.hpp>
#include <asio/prefer.hpp>

#include <optional>
#include <utility>

namespace sse::detail {

/// Keeps an executor's context busy until `reset()`, like `asio::executor_work_guard`, but
/// through the standard executors' `outstanding_work.tracked` property, which every executor
/// a handler can be bound to has (`executor_work_guard` needs the older `on_work_started`,
/// which e.g. `asio::strand<asio::any_io_executor>` lacks in Asio 1.22).
template <class Executor>
class tracked_work {
public:
  explicit tracked_work(Executor const& ex)
      : work_(asio::prefer(ex, asio::execution::outstanding_work.tracked)) {}
  /// The executor (still tracking work until `reset()`).
  auto const& get_executor() const noexcept { return *work_; }
  void reset() noexcept { work_.reset(); }

private:
  std::optional<std::decay_t<decltype(asio::prefer(
      std::declval<Executor const&>(), asio::execution::outstanding_work.tracked))>>
      work_;
};

} // namespace sse::detail
