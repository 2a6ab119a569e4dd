#pragma once

/// Asio opens and accepts sockets without close-on-exec. A program the application spawns
/// (posix_spawn, fork+exec, std::system) would inherit them: a listening socket keeps the port
/// bound, with connections queueing that nobody accepts, and an accepted one stays open, after
/// the server has closed its own copy.

#if __has_include(<fcntl.h>)
#include <fcntl.h>
#endif

namespace sse::detail {

/// Marks `s` (an open Asio socket or acceptor) close-on-exec. Best effort: a descriptor
/// that cannot be marked is still a working socket.
template <class Socket>
void set_close_on_exec(Socket& s) noexcept {
#if defined(FD_CLOEXEC)
  int const fd = s.native_handle();
  int const flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0 && (flags & FD_CLOEXEC) == 0)
    ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
#else
  (void)s;
#endif
}

} // namespace sse::detail
