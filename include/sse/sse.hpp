#pragma once

/// Everything in sse: include this one header.

#include <sse/broker.hpp>
#include <sse/client.hpp>
#include <sse/client_options.hpp>
#include <sse/error.hpp>
#include <sse/format.hpp>
#include <sse/frame.hpp>
#include <sse/json.hpp>
#include <sse/metrics.hpp>
#include <sse/parser.hpp>
#include <sse/queue_limits.hpp>
#include <sse/http.hpp>
#include <sse/responder.hpp>
#include <sse/server.hpp>
#include <sse/server_options.hpp>
#include <sse/server_stats.hpp>
#include <sse/stream.hpp>
