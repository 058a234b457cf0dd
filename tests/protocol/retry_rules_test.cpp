// src/protocol/errors.hpp: which statuses and codes the transport retries, and which 429 says
// "too many at once" (the AIMD cut). Pure functions.

#include <catch2/catch.hpp>

#include "protocol/errors.hpp"

using namespace glmproxy::detail;

TEST_CASE("retry rules: 408, 409, 429 and 5xx are retryable statuses", "[retry_rules]") {
  for (int status : {0, 408, 409, 429, 500, 502, 503, 504, 529}) {
    INFO(status);
    CHECK(is_retryable_status(status));
  }
  for (int status : {200, 400, 401, 403, 404, 413, 422}) {
    INFO(status);
    CHECK_FALSE(is_retryable_status(status));
  }
}

TEST_CASE("retry rules: business codes that make a 429 final", "[retry_rules]") {
  for (const char* code : {"1113", "1304", "1308", "1310", "1301", "1261"}) {
    INFO(code);
    CHECK(is_final_business_code(code));
  }
  for (const char* code : {"1302", "1303", "1305", "1312", ""}) {
    INFO(code);
    CHECK_FALSE(is_final_business_code(code));
  }
  glmproxy::Error e = glmproxy::make_error(glmproxy::ErrorCode::RateLimited, "x", 429);
  CHECK(e.retryable());
  e.upstream_code = "1113";
  CHECK_FALSE(e.retryable());
}

TEST_CASE("retry rules: 1302 (or a bare 429) means too many at once", "[retry_rules]") {
  CHECK(is_too_many_at_once(429, "1302"));
  CHECK(is_too_many_at_once(429, ""));
  CHECK_FALSE(is_too_many_at_once(429, "1113"));
  CHECK_FALSE(is_too_many_at_once(429, "1303"));
  CHECK_FALSE(is_too_many_at_once(503, "1302"));
  CHECK(reads_error_answer(429, false));
  CHECK_FALSE(reads_error_answer(503, false));
  CHECK(reads_error_answer(503, true));
  CHECK(is_server_failure(500));
  CHECK_FALSE(is_server_failure(429));
}
