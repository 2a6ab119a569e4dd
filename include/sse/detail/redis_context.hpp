#pragma once

// The one place that sees hiredis' C API: a redisAsyncContext whose events are driven by
// asio::posix::stream_descriptor::async_wait, owned with RAII and reporting std::error_code.
//
// Everything here runs on one strand, the connection's. hiredis calls back from inside
// redisAsyncHandleRead/Write (and redisAsyncFree); those callbacks only copy the reply and post,
// so no user code and no session logic ever runs inside hiredis.

#include <sse/detail/close_on_exec.hpp>
#include <sse/redis/error.hpp>
#include <sse/redis/reply.hpp>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <asio/any_io_executor.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace sse::detail::redis {

using strand = asio::strand<asio::any_io_executor>;

/// A command in RESP, formatted by hiredis (never by hand), ready to be queued.
class formatted_command {
public:
  formatted_command() = default;
  explicit formatted_command(std::vector<std::string> const& args) {
    if (args.empty())
      throw std::invalid_argument("sse::redis: a command needs at least its name");
    std::vector<char const*> argv;
    std::vector<std::size_t> argvlen;
    argv.reserve(args.size());
    argvlen.reserve(args.size());
    for (auto const& a : args) {
      argv.push_back(a.data());
      argvlen.push_back(a.size());
    }
    char* target = nullptr;
    auto len = redisFormatCommandArgv(&target, static_cast<int>(args.size()), argv.data(),
                                      argvlen.data());
    if (len < 0 || !target)
      throw std::bad_alloc();
    data_.reset(target);
    size_ = static_cast<std::size_t>(len);
  }
  char const* data() const noexcept { return data_.get(); }
  std::size_t size() const noexcept { return size_; }
  explicit operator bool() const noexcept { return static_cast<bool>(data_); }

private:
  struct free_command {
    void operator()(char* p) const noexcept { redisFreeCommand(p); }
  };
  std::unique_ptr<char, free_command> data_;
  std::size_t size_ = 0;
};

/// A command's completion. `complete` is called exactly once, possibly from inside hiredis: it
/// must only post.
class pending {
public:
  virtual ~pending() = default;
  virtual void complete(std::error_code ec, sse::redis::reply r) = 0;
};

class context;

/// What a context tells its owner; both are posted to the strand, never called inside hiredis.
class listener {
public:
  virtual ~listener() = default;
  /// A pub/sub reply (subscribe/unsubscribe confirmation or message).
  virtual void on_push(context const* from, sse::redis::reply r) = 0;
  /// The connection ended by itself (not by `close`): `ec` and hiredis' text say why.
  virtual void on_closed(context const* from, std::error_code ec, std::string what) = 0;
};

inline sse::redis::reply to_reply(redisReply const* r) {
  using sse::redis::reply;
  switch (r->type) {
  case REDIS_REPLY_STRING:
    return reply::make(reply::kind::string, std::string(r->str, r->len));
  case REDIS_REPLY_STATUS:
    return reply::make(reply::kind::status, std::string(r->str, r->len));
  case REDIS_REPLY_ERROR:
    return reply::make(reply::kind::error, std::string(r->str, r->len));
  case REDIS_REPLY_INTEGER:
    return reply::make_integer(r->integer);
  case REDIS_REPLY_ARRAY: {
    std::vector<reply> elements;
    elements.reserve(r->elements);
    for (std::size_t i = 0; i < r->elements; ++i)
      elements.push_back(to_reply(r->element[i]));
    return reply::make_array(std::move(elements));
  }
  default:
    return reply();
  }
}

/// One redisAsyncContext on one file descriptor. Made per connection attempt; never reused.
class context : public std::enable_shared_from_this<context> {
public:
  context(strand ex, std::weak_ptr<listener> owner)
      : ex_(std::move(ex)), descriptor_(ex_), owner_(std::move(owner)) {}

  context(context const&) = delete;
  context& operator=(context const&) = delete;

  /// Frees the hiredis context without completing what is pending (the owner is gone): their
  /// handlers are destroyed, never invoked.
  ~context() {
    silent_ = true;
    close({});
  }

  /// Starts a non-blocking connect to a numeric address. False, with hiredis' text, when it
  /// fails at once.
  bool connect(std::string const& ip, std::uint16_t port, std::string& what) {
    redisAsyncContext* ac = redisAsyncConnect(ip.c_str(), port);
    if (!ac) {
      what = "out of memory";
      return false;
    }
    if (ac->err) {
      what = ac->errstr;
      redisAsyncFree(ac);
      return false;
    }
    ac->data = this;
    redisEnableKeepAlive(&ac->c);
    std::error_code ec;
    descriptor_.assign(ac->c.fd, ec);
    if (ec) {
      what = "cannot watch the socket: " + ec.message();
      redisAsyncFree(ac);
      return false;
    }
    set_close_on_exec(descriptor_); // hiredis opens it without, as Asio does (close_on_exec.hpp)
    ac_ = ac;
    ac->ev.data = this;
    ac->ev.addRead = [](void* p) { static_cast<context*>(p)->want(false, true); };
    ac->ev.delRead = [](void* p) { static_cast<context*>(p)->want(false, false); };
    ac->ev.addWrite = [](void* p) { static_cast<context*>(p)->want(true, true); };
    ac->ev.delWrite = [](void* p) { static_cast<context*>(p)->want(true, false); };
    ac->ev.cleanup = [](void* p) { static_cast<context*>(p)->on_cleanup(); };
    return true;
  }

  /// Queues a command whose reply completes `p`. False (p untouched) when it cannot be taken.
  bool send(formatted_command const& cmd, std::unique_ptr<pending>& p) {
    if (!ac_ || closing_)
      return false;
    if (redisAsyncFormattedCommand(ac_, &context::on_command_reply, p.get(), cmd.data(),
                                   cmd.size()) != REDIS_OK)
      return false;
    p.release(); // hiredis holds it until the reply, or a null reply when it is freed
    return true;
  }

  /// Queues SUBSCRIBE or UNSUBSCRIBE; its confirmations and the messages arrive as pushes.
  bool send_pubsub(formatted_command const& cmd) {
    if (!ac_ || closing_)
      return false;
    return redisAsyncFormattedCommand(ac_, &context::on_push_reply, nullptr, cmd.data(),
                                      cmd.size()) == REDIS_OK;
  }

  /// Closes now: what is pending completes with `reason`; the owner hears nothing more.
  void close(std::error_code reason) {
    if (!ac_ || closing_)
      return;
    closing_ = true;
    reason_ = reason;
    redisAsyncFree(ac_); // runs the pending callbacks (null replies), then on_cleanup
  }

  /// Connected and not closed.
  bool open() const noexcept { return ac_ && !closing_; }

private:
  static void on_command_reply(redisAsyncContext* ac, void* r, void* privdata) {
    std::unique_ptr<pending> p(static_cast<pending*>(privdata));
    auto* self = static_cast<context*>(ac->data);
    if (!p || self->silent_)
      return;
    if (!r) {
      p->complete(self->drop_reason(), {});
      return;
    }
    auto const* rr = static_cast<redisReply const*>(r);
    std::error_code ec;
    if (rr->type == REDIS_REPLY_ERROR)
      ec = sse::redis::errc::reply_error;
    p->complete(ec, to_reply(rr));
  }

  static void on_push_reply(redisAsyncContext* ac, void* r, void*) {
    auto* self = static_cast<context*>(ac->data);
    if (!r || self->silent_ || self->closing_)
      return; // null: the context is being freed
    auto l = self->owner_.lock();
    auto from = self->weak_from_this().lock();
    if (!l || !from)
      return;
    asio::post(self->ex_, [l = std::move(l), from = std::move(from),
                           rep = to_reply(static_cast<redisReply const*>(r))]() mutable {
      l->on_push(from.get(), std::move(rep));
    });
  }

  // Why pending commands fail: our own reason when we close, else what hiredis saw.
  std::error_code drop_reason() const {
    if (closing_)
      return reason_ ? reason_ : std::error_code(asio::error::operation_aborted);
    if (!(ac_->c.flags & REDIS_CONNECTED))
      return sse::redis::errc::connect_failed;
    if (ac_->err == REDIS_ERR_PROTOCOL)
      return sse::redis::errc::protocol_error;
    return sse::redis::errc::connection_lost;
  }

  void want(bool write, bool on) {
    (write ? want_write_ : want_read_) = on;
    if (on)
      arm(write);
  }

  void arm(bool write) {
    bool& waiting = write ? write_waiting_ : read_waiting_;
    if (waiting || !ac_)
      return;
    auto self = weak_from_this().lock();
    if (!self)
      return; // being destroyed
    waiting = true;
    descriptor_.async_wait(
        write ? asio::posix::stream_descriptor::wait_write
              : asio::posix::stream_descriptor::wait_read,
        [self = std::move(self), write](std::error_code ec) {
          (write ? self->write_waiting_ : self->read_waiting_) = false;
          if (ec || !self->ac_ || !(write ? self->want_write_ : self->want_read_))
            return; // released, or hiredis no longer wants this event
          if (write)
            redisAsyncHandleWrite(self->ac_); // may free the context (on_cleanup)
          else
            redisAsyncHandleRead(self->ac_);
        });
  }

  // hiredis is about to close the descriptor: stop watching it first, and (when it ended by
  // itself) tell the owner why.
  void on_cleanup() {
    redisAsyncContext* ac = std::exchange(ac_, nullptr);
    want_read_ = want_write_ = false;
    descriptor_.release(); // hiredis owns the fd and closes it; the waits end with aborted
    if (closing_ || silent_)
      return;
    closing_ = true;
    std::error_code ec;
    if (!(ac->c.flags & REDIS_CONNECTED))
      ec = sse::redis::errc::connect_failed;
    else if (ac->err == REDIS_ERR_PROTOCOL)
      ec = sse::redis::errc::protocol_error;
    else
      ec = sse::redis::errc::connection_lost;
    std::string what = ac->errstr[0] ? std::string(ac->errstr) : ec.message();
    auto l = owner_.lock();
    auto from = weak_from_this().lock();
    if (l && from)
      asio::post(ex_, [l = std::move(l), from = std::move(from), ec,
                       what = std::move(what)]() mutable {
        l->on_closed(from.get(), ec, std::move(what));
      });
  }

  strand ex_;
  asio::posix::stream_descriptor descriptor_;
  std::weak_ptr<listener> owner_;
  redisAsyncContext* ac_ = nullptr;
  bool want_read_ = false, want_write_ = false;
  bool read_waiting_ = false, write_waiting_ = false;
  bool closing_ = false, silent_ = false;
  std::error_code reason_;
};

} // namespace sse::detail::redis
