#pragma once

// Telling an application, once, that a subscriber (a broker subscription or an event_stream) is
// over, and why: the listeners behind `on_close` and `async_wait_closed`, and where they run.

#include <sse/detail/tracked_work.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/dispatch.hpp>
#include <asio/post.hpp>
#include <asio/system_executor.hpp>

#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace sse::detail {

/// Told once that its subscriber is over. `complete` runs in a posted handler, never under a
/// lock; it may throw (it runs application code), and whoever runs it catches that.
class close_listener {
public:
  virtual ~close_listener() = default;
  virtual void complete(std::error_code why) = 0;
};

using close_listeners = std::vector<std::unique_ptr<close_listener>>;

/// `on_close`: a plain callback.
class function_close_listener final : public close_listener {
public:
  explicit function_close_listener(std::function<void(std::error_code)> f) : f_(std::move(f)) {}
  void complete(std::error_code why) override { f_(why); }

private:
  std::function<void(std::error_code)> f_;
};

/// `async_wait_closed`: an Asio completion handler, kept with work on its executor until it
/// completes, so that `use_future` and a waiting `io_context::run` both see it through.
template <class Handler>
class async_close_listener final : public close_listener {
public:
  using executor_type = asio::associated_executor_t<Handler, asio::any_io_executor>;
  async_close_listener(Handler h, asio::any_io_executor const& fallback)
      : handler_(std::move(h)), work_(asio::get_associated_executor(handler_, fallback)) {}
  void complete(std::error_code why) override {
    auto ex = work_.get_executor();
    // Already in a posted handler: dispatch, so that on its own executor it runs here.
    asio::dispatch(ex, [h = std::move(handler_), why]() mutable { std::move(h)(why); });
    work_.reset();
  }

private:
  Handler handler_;
  tracked_work<executor_type> work_;
};

/// Completes every listener with `why`; one that throws is reported and the others still run.
template <class Report>
void complete_all(close_listeners& ls, std::error_code why, Report const& report) noexcept {
  for (auto& l : ls) {
    char const* what = nullptr;
    std::string text;
    try {
      l->complete(why);
      continue;
    } catch (std::exception const& e) {
      try {
        text = std::string("an on_close callback threw: ") + e.what();
      } catch (...) {
      }
    } catch (...) {
      what = "an on_close callback threw an exception not derived from std::exception";
    }
    report(what ? std::string_view(what) : std::string_view(text));
  }
  ls.clear(); // the handlers go here, on the thread that ran them
}

/// Where a subscriber without a server runs its listeners: failures go to stderr, since
/// there is no error log to give them to.
inline void report_to_stderr(std::string_view what) noexcept {
  std::fprintf(stderr, "sse: %.*s\n", static_cast<int>(what.size()), what.data());
}

/// Where a subscriber's listeners run once it is over. A server that writes the subscriber
/// sets its own (its I/O thread, its error log); without one they are posted on an executor.
class close_runner {
public:
  virtual ~close_runner() = default;
  /// Arranges for `ls` to be completed with `why`, later, never inline; never throws.
  virtual void post(close_listeners ls, std::error_code why) noexcept = 0;
};

/// Posts `ls` on `ex`, failures to stderr. Out of memory, the listeners are dropped
/// (an `async_wait_closed` then never completes; its work guard is released).
inline void post_close_listeners(asio::any_io_executor const& ex, close_listeners ls,
                                 std::error_code why) noexcept {
  try {
    asio::post(ex ? ex : asio::any_io_executor(asio::system_executor()),
               [ls = std::move(ls), why]() mutable { complete_all(ls, why, report_to_stderr); });
  } catch (...) {
  }
}

} // namespace sse::detail
