#pragma once

#include <catch2/catch.hpp>

#include <stdexcept>

/// The expression throws std::invalid_argument whose message matches `matcher`.
#define CHECK_INVALID_ARGUMENT(expr, matcher)                                                       \
  do {                                                                                             \
    CHECK_THROWS_AS(expr, std::invalid_argument);                                                  \
    CHECK_THROWS_WITH(expr, matcher);                                                              \
  } while (false)
