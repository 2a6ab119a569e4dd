// sse_h2_loadgen: sse_loadgen (bench/loadgen.cpp) with TLS (OpenSSL) and HTTP/2 subscribers
// (nghttp2's client API): https:// URLs, --h2 and --conns. The same measurements, computed the
// same way, so its figures stand beside sse_loadgen's. bench/h2.sh drives it.
#define SSE_LOADGEN_H2 1
#include "loadgen.cpp"
