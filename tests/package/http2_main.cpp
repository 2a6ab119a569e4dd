#include <sse/http2.hpp>

#include <iostream>
#include <stdexcept>
#include <string>

int main() {
  // sse::tls and sse::http2 through the package: OpenSSL and nghttp2 came in with them.
  sse::server srv;
  sse::tls::options tls;
  tls.cert_chain_file = "no-such-cert.pem";
  tls.private_key_file = "no-such-key.pem";
  sse::tls::enable(srv, tls);
  sse::http2::enable(srv);
  try {
    srv.start();
    std::cout << "tls: started with no certificate\n";
    return 1;
  } catch (std::runtime_error const& e) {
    std::string const what = e.what();
    std::cout << "tls: " << (what.find("no-such-cert.pem") != std::string::npos ? "refused" : what)
              << "\n";
  }
  sse::server h2c;
  sse::http2::enable(h2c);
  h2c.start();
  h2c.stop();
  std::cout << "http2: nghttp2 " << nghttp2_version(0)->version_str << "\n";
}
