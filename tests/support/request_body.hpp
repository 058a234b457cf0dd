#pragma once

// Shared by the tests that pin the exact body a protocol writer makes of a ChatRequest
// (tests/protocol/): detail::write_chat_request, no network. Test targets using it link
// simdjson::simdjson.

#include <simdjson.h>

#include <catch2/catch.hpp>
#include <string>
#include <string_view>

#include "glmproxy/error.hpp"
#include "glmproxy/request.hpp"
#include "protocol/protocol.hpp"

namespace test_support {

/// The body written for `request` as `model`, checked to be JSON that simdjson reads; fails
/// the test case, with the writer's error, when no body is written.
inline std::string body_of(const glmproxy::ChatRequest& request, std::string_view model = "glm-4.6",
                           bool stream = false) {
  auto body = glmproxy::detail::write_chat_request(request, model, stream);
  INFO((body ? std::string() : body.error().describe()));
  REQUIRE(body.has_value());
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  REQUIRE(parser.parse(*body).get(root) == simdjson::SUCCESS);
  return *body;
}

/// The error the writer gives `request` as `model`; fails the test case when it writes a body.
inline glmproxy::Error error_of(const glmproxy::ChatRequest& request,
                                std::string_view model = "glm-4.6") {
  auto body = glmproxy::detail::write_chat_request(request, model, false);
  REQUIRE_FALSE(body.has_value());
  return body.error();
}

/// The message of the writer's refusal of `request`, checked to be InvalidArgument.
inline std::string refused(const glmproxy::ChatRequest& request,
                           std::string_view model = "glm-4.6") {
  const glmproxy::Error e = error_of(request, model);
  INFO(e.message);
  CHECK(e.code == glmproxy::ErrorCode::InvalidArgument);
  return e.message;
}

}  // namespace test_support
