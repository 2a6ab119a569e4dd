#pragma once

/// Everything in sse: include this one header.

#include <sse/broker.hpp>
#include <sse/error.hpp>
#include <sse/format.hpp>
#include <sse/frame.hpp>
#include <sse/json.hpp>
#include <sse/queue_limits.hpp>
