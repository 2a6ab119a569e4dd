#pragma once

// The client side of TLS for the tests (OpenSSL over a non-blocking socket the caller owns),
// and a self-signed certificate for "localhost" made once per process with the openssl
// command line. Certificates are not verified: the tests check the server, not the PKI.

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

namespace sse_test {

/// The PEM files of a self-signed P-256 certificate for CN=localhost, in a temp directory.
struct test_cert {
  std::string dir, cert, key;
};

/// Made on first use (the openssl command line), shared by every test of the process.
inline test_cert const& self_signed() {
  static test_cert const c = [] {
    char tmpl[] = "/tmp/sse-test-cert-XXXXXX";
    char* d = ::mkdtemp(tmpl);
    if (!d)
      throw std::runtime_error("mkdtemp failed");
    test_cert r{d, std::string(d) + "/cert.pem", std::string(d) + "/key.pem"};
    std::string const cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                            "-keyout '" + r.key + "' -out '" + r.cert +
                            "' -days 2 -subj /CN=localhost >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0)
      throw std::runtime_error("openssl req failed: is the openssl command installed?");
    std::atexit([] {
      auto const& c2 = self_signed();
      ::unlink(c2.cert.c_str());
      ::unlink(c2.key.c_str());
      ::rmdir(c2.dir.c_str());
    });
    return r;
  }();
  return c;
}

inline SSL_CTX* client_tls_context() {
  static SSL_CTX* const ctx = [] {
    // OpenSSL's socket BIO writes with write(): a server that closed first must not kill the
    // test process with SIGPIPE.
    ::signal(SIGPIPE, SIG_IGN);
    SSL_CTX* c = SSL_CTX_new(TLS_client_method());
    if (!c)
      throw std::runtime_error("SSL_CTX_new failed");
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
    // A peer that closes without close_notify reads as a plain end of stream, as over TCP.
    SSL_CTX_set_options(c, SSL_OP_IGNORE_UNEXPECTED_EOF);
    return c;
  }();
  return ctx;
}

/// One TLS client connection over a connected, non-blocking socket (not owned).
class tls_conn {
public:
  enum : long { would_block = -1, failed = -2 };

  /// Handshakes within `timeout`; `alpn` in wire format ("\x02h2"), empty: no ALPN offered.
  /// ok() tells whether it succeeded.
  tls_conn(int fd, std::string_view alpn, std::chrono::milliseconds timeout) : fd_(fd) {
    ssl_ = SSL_new(client_tls_context());
    SSL_set_fd(ssl_, fd);
    SSL_set_tlsext_host_name(ssl_, "localhost");
    SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (!alpn.empty())
      SSL_set_alpn_protos(ssl_, reinterpret_cast<unsigned char const*>(alpn.data()),
                          static_cast<unsigned>(alpn.size()));
    auto const deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      int const r = SSL_connect(ssl_);
      if (r == 1) {
        ok_ = true;
        break;
      }
      int const e = SSL_get_error(ssl_, r);
      short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
      if (ev == 0)
        break;
      auto const left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        break;
      pollfd p{fd_, ev, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
    }
    ERR_clear_error();
  }
  tls_conn(tls_conn const&) = delete;
  tls_conn& operator=(tls_conn const&) = delete;
  ~tls_conn() {
    if (ssl_)
      SSL_free(ssl_);
  }

  bool ok() const { return ok_; }
  std::string alpn() const {
    unsigned char const* p = nullptr;
    unsigned n = 0;
    SSL_get0_alpn_selected(ssl_, &p, &n);
    return p ? std::string(reinterpret_cast<char const*>(p), n) : std::string();
  }
  /// Decrypted bytes already buffered (poll() would not see them).
  bool pending() const { return SSL_pending(ssl_) > 0; }
  /// What the last would_block waits for: POLLIN or POLLOUT.
  short wants() const { return wants_; }

  /// > 0 bytes, 0 end of stream, would_block, or failed.
  long read(char* buf, std::size_t n) { return io(SSL_read(ssl_, buf, static_cast<int>(n))); }
  long write(char const* buf, std::size_t n) {
    return n == 0 ? 0 : io(SSL_write(ssl_, buf, static_cast<int>(n)));
  }
  /// Sends close_notify (best effort).
  void shutdown() {
    SSL_shutdown(ssl_);
    ERR_clear_error();
  }

private:
  long io(int r) {
    if (r > 0)
      return r;
    int const e = SSL_get_error(ssl_, r);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ) {
      wants_ = POLLIN;
      return would_block;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
      wants_ = POLLOUT;
      return would_block;
    }
    if (e == SSL_ERROR_ZERO_RETURN)
      return 0;
    return failed;
  }

  int fd_;
  SSL* ssl_ = nullptr;
  bool ok_ = false;
  short wants_ = POLLIN;
};

} // namespace sse_test
