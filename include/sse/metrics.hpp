#pragma once

/// Prometheus metrics of a server and its broker: a ready `GET /metrics` handler.

#include <sse/broker.hpp>
#include <sse/http.hpp>
#include <sse/server.hpp>
#include <sse/server_stats.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace sse {

/// The Content-Type of Prometheus' text exposition format, version 0.0.4.
inline constexpr std::string_view metrics_content_type = "text/plain; version=0.0.4; charset=utf-8";

namespace detail {

inline void append_metric(std::string& out, std::string_view name, std::string_view type,
                          std::string_view help, std::uint64_t value) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  out.append(name).append(" ").append(std::to_string(value)).append("\n");
}

} // namespace detail

/// Appends the server's metrics (`sse_connections`, `sse_streams`, `sse_bytes_written_total`,
/// `sse_requests_total{code="2xx"}`, ...) in the text exposition format, HELP and TYPE lines
/// included. No label takes a value from a client.
inline void append_metrics(std::string& out, server_stats const& s) {
  using detail::append_metric;
  append_metric(out, "sse_connections", "gauge", "Client connections open now.", s.connections);
  append_metric(out, "sse_connections_accepted_total", "counter", "Client connections accepted.",
                s.connections_accepted);
  append_metric(out, "sse_connections_rejected_total", "counter",
                "Client connections answered 503 at once (at max_connections, or stopping).",
                s.connections_rejected);
  append_metric(out, "sse_streams", "gauge", "Event streams open now.", s.streams);
  append_metric(out, "sse_streams_opened_total", "counter", "Event streams started.",
                s.streams_opened);
  append_metric(out, "sse_bytes_written_total", "counter",
                "Bytes written to clients: response heads, bodies and events.", s.bytes_written);
  out +=
      "# HELP sse_requests_total Requests answered, by status class (a stream counts as its 200).\n"
      "# TYPE sse_requests_total counter\n";
  for (std::size_t i = 0; i < s.requests.size(); ++i) {
    out += "sse_requests_total{code=\"";
    out += static_cast<char>('1' + i);
    out += "xx\"} ";
    out += std::to_string(s.requests[i]);
    out += '\n';
  }
}

/// Appends a broker's metrics (`sse_subscribers`, `sse_topics`, `sse_events_published_total`,
/// `sse_history_bytes`, ...) in the text exposition format. Topic names, which clients choose,
/// are never labels. One broker per exposition: a second one would repeat the names.
inline void append_metrics(std::string& out, broker_stats const& b) {
  using detail::append_metric;
  append_metric(out, "sse_subscribers", "gauge", "Broker subscribers now.", b.subscribers);
  append_metric(out, "sse_topics", "gauge", "Topics with at least one subscriber now.", b.topics);
  append_metric(out, "sse_events_published_total", "counter", "Events published to the broker.",
                b.published);
  append_metric(out, "sse_events_delivered_total", "counter",
                "Events queued to a subscriber, one per subscriber.", b.delivered);
  append_metric(out, "sse_events_dropped_total", "counter",
                "Events discarded for one subscriber by its overflow policy or size limit.",
                b.dropped);
  append_metric(out, "sse_events_refused_total", "counter",
                "Events refused whole: larger than the broker's max_message_bytes.", b.refused);
  append_metric(out, "sse_subscribers_evicted_total", "counter",
                "Subscribers removed because their queue overflowed.", b.evicted);
  append_metric(out, "sse_history_events", "gauge", "Events kept for resume, over all topics.",
                b.history_events);
  append_metric(out, "sse_history_bytes", "gauge", "Bytes of the events kept for resume.",
                b.history_bytes);
}

/// A 200 response carrying `text`, metrics in the text exposition format (as `append_metrics`
/// makes them, the application's own appended if it likes).
inline response metrics_response(std::string text) {
  response r(200);
  r.header("Content-Type", std::string(metrics_content_type));
  r.header("Cache-Control", "no-store");
  r.body(std::move(text));
  return r;
}

/// A route handler that serves `srv`'s metrics: `srv.route("GET", "/metrics",
/// sse::metrics_handler(srv))`. `srv` must outlive the route (it does when it is the server
/// the route is added to).
inline server::handler metrics_handler(server& srv) {
  return [&srv](request&) {
    std::string text;
    append_metrics(text, srv.stats());
    return metrics_response(std::move(text));
  };
}

/// A route handler that serves the metrics of `srv` and of `b`, the broker its streams come
/// from: `srv.route("GET", "/metrics", sse::metrics_handler(srv, broker))`. Both must outlive
/// the server.
template <class Message>
server::handler metrics_handler(server& srv, basic_broker<Message>& b) {
  return [&srv, &b](request&) {
    std::string text;
    append_metrics(text, srv.stats());
    append_metrics(text, b.stats());
    return metrics_response(std::move(text));
  };
}

} // namespace sse
