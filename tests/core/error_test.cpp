#include "glmproxy/error.hpp"

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <utility>

using glmproxy::BadResultAccess;
using glmproxy::Error;
using glmproxy::ErrorCode;
using glmproxy::make_error;
using glmproxy::Result;

namespace {

struct Point {
  int x = 0;
  int y = 0;
};

Error upstream(ErrorCode code, int status, std::string upstream_code = {}) {
  Error e = make_error(code, "test", status);
  e.upstream_code = std::move(upstream_code);
  return e;
}

}  // namespace

TEST_CASE("Result<T> holding a value", "[result]") {
  Result<int> r = 42;
  CHECK(r.has_value());
  CHECK(static_cast<bool>(r));
  CHECK(r.value() == 42);
  CHECK(*r == 42);
  CHECK(r.value_or(7) == 42);
  // error() on a value is a shared Internal error, not undefined behaviour.
  CHECK(r.error().code == ErrorCode::Internal);

  const Result<int> c = 5;
  CHECK(c.value() == 5);
  CHECK(*c == 5);
}

TEST_CASE("Result<T> holding an error", "[result]") {
  Result<int> r = make_error(ErrorCode::Timeout, "connect deadline passed");
  CHECK_FALSE(r.has_value());
  CHECK_FALSE(static_cast<bool>(r));
  CHECK(r.error().code == ErrorCode::Timeout);
  CHECK(r.error().message == "connect deadline passed");
  CHECK(r.value_or(7) == 7);

  CHECK_THROWS_AS(r.value(), BadResultAccess);
  CHECK_THROWS_AS(*r, BadResultAccess);
  try {
    (void)r.value();
    FAIL("value() did not throw");
  } catch (const BadResultAccess& e) {
    CHECK(e.error().code == ErrorCode::Timeout);
    CHECK(std::string(e.what()) == "Timeout: connect deadline passed");
  }

  Error moved = std::move(r).error();
  CHECK(moved.message == "connect deadline passed");
}

TEST_CASE("Result<T>::operator-> reaches members", "[result]") {
  Result<Point> r = Point{3, 4};
  CHECK(r->x == 3);
  r->y = 9;
  CHECK(r.value().y == 9);
  const Result<Point>& cr = r;
  CHECK(cr->y == 9);

  Result<Point> bad = make_error(ErrorCode::BadResponse, "no");
  CHECK_THROWS_AS(bad->x, BadResultAccess);
}

TEST_CASE("Result<std::string> and default construction", "[result]") {
  Result<std::string> r;
  CHECK(r.has_value());
  CHECK(r.value().empty());
  Result<std::string> e = make_error(ErrorCode::Internal, "x");
  CHECK(e.value_or("fallback") == "fallback");
  CHECK(std::move(e).value_or("moved") == "moved");
}

TEST_CASE("Result<T> works with a move-only T", "[result]") {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(5);
  REQUIRE(r);
  CHECK(**r == 5);
  std::unique_ptr<int> taken = std::move(r).value();
  REQUIRE(taken != nullptr);
  CHECK(*taken == 5);

  Result<std::unique_ptr<int>> e = make_error(ErrorCode::QueueFull, "full");
  std::unique_ptr<int> fallback = std::move(e).value_or(nullptr);
  CHECK(fallback == nullptr);

  Result<std::unique_ptr<int>> moved_from = std::make_unique<int>(8);
  Result<std::unique_ptr<int>> moved_to = std::move(moved_from);
  CHECK(*moved_to.value() == 8);
}

TEST_CASE("Result<void>", "[result]") {
  Result<void> ok;
  CHECK(ok.has_value());
  CHECK(static_cast<bool>(ok));
  CHECK_NOTHROW(ok.value());
  CHECK_NOTHROW(*ok);
  CHECK(ok.error().code == ErrorCode::Internal);

  Result<void> bad = make_error(ErrorCode::InvalidConfig, "bad");
  CHECK_FALSE(bad.has_value());
  CHECK_FALSE(static_cast<bool>(bad));
  CHECK(bad.error().code == ErrorCode::InvalidConfig);
  CHECK_THROWS_AS(bad.value(), BadResultAccess);
  CHECK_THROWS_AS(*bad, BadResultAccess);
  Error e = std::move(bad).error();
  CHECK(e.message == "bad");
}

TEST_CASE("to_string names every ErrorCode", "[error]") {
  CHECK(to_string(ErrorCode::InvalidArgument) == "InvalidArgument");
  CHECK(to_string(ErrorCode::InvalidConfig) == "InvalidConfig");
  CHECK(to_string(ErrorCode::ConnectionFailed) == "ConnectionFailed");
  CHECK(to_string(ErrorCode::Timeout) == "Timeout");
  CHECK(to_string(ErrorCode::Cancelled) == "Cancelled");
  CHECK(to_string(ErrorCode::RateLimited) == "RateLimited");
  CHECK(to_string(ErrorCode::QuotaExceeded) == "QuotaExceeded");
  CHECK(to_string(ErrorCode::Unauthorized) == "Unauthorized");
  CHECK(to_string(ErrorCode::Forbidden) == "Forbidden");
  CHECK(to_string(ErrorCode::UpstreamError) == "UpstreamError");
  CHECK(to_string(ErrorCode::BadResponse) == "BadResponse");
  CHECK(to_string(ErrorCode::QueueFull) == "QueueFull");
  CHECK(to_string(ErrorCode::PoolTimeout) == "PoolTimeout");
  CHECK(to_string(ErrorCode::ShuttingDown) == "ShuttingDown");
  CHECK(to_string(ErrorCode::Internal) == "Internal");
  CHECK(to_string(static_cast<ErrorCode>(999)) == "Unknown");
}

TEST_CASE("Error::retryable", "[error]") {
  SECTION("429 depends on the Z.AI business code") {
    CHECK(upstream(ErrorCode::RateLimited, 429, "1302").retryable());  // concurrency
    CHECK(upstream(ErrorCode::RateLimited, 429, "1303").retryable());  // frequency
    CHECK(upstream(ErrorCode::RateLimited, 429).retryable());
    CHECK_FALSE(upstream(ErrorCode::RateLimited, 429, "1113").retryable());  // arrears
    CHECK_FALSE(upstream(ErrorCode::QuotaExceeded, 429, "1113").retryable());
    CHECK_FALSE(upstream(ErrorCode::RateLimited, 429, "1304").retryable());
    CHECK_FALSE(upstream(ErrorCode::RateLimited, 429, "1308").retryable());
    CHECK_FALSE(upstream(ErrorCode::RateLimited, 429, "1310").retryable());
  }
  SECTION("server errors are, client errors are not") {
    CHECK(upstream(ErrorCode::UpstreamError, 500).retryable());
    CHECK(upstream(ErrorCode::UpstreamError, 503).retryable());
    CHECK(upstream(ErrorCode::UpstreamError, 529, "overloaded_error").retryable());
    CHECK(upstream(ErrorCode::UpstreamError, 408).retryable());
    CHECK(upstream(ErrorCode::UpstreamError, 409).retryable());
    CHECK_FALSE(upstream(ErrorCode::UpstreamError, 400).retryable());
    CHECK_FALSE(upstream(ErrorCode::UpstreamError, 404).retryable());
    CHECK_FALSE(upstream(ErrorCode::UpstreamError, 400, "1261").retryable());
    CHECK_FALSE(upstream(ErrorCode::UpstreamError, 500, "1301").retryable());
  }
  SECTION("local failures") {
    CHECK(make_error(ErrorCode::Timeout, "t").retryable());
    CHECK(make_error(ErrorCode::ConnectionFailed, "c").retryable());
    // A certificate that could not be verified is presented again on the next handshake.
    CHECK_FALSE(upstream(ErrorCode::ConnectionFailed, 0, "tls_certificate").retryable());
    CHECK(make_error(ErrorCode::QueueFull, "q").retryable());
    CHECK(make_error(ErrorCode::PoolTimeout, "p").retryable());
    CHECK_FALSE(upstream(ErrorCode::Unauthorized, 401).retryable());
    CHECK_FALSE(upstream(ErrorCode::Forbidden, 403).retryable());
    CHECK_FALSE(make_error(ErrorCode::InvalidArgument, "a").retryable());
    CHECK_FALSE(make_error(ErrorCode::InvalidConfig, "c").retryable());
    CHECK_FALSE(make_error(ErrorCode::Cancelled, "c").retryable());
    CHECK_FALSE(make_error(ErrorCode::BadResponse, "b").retryable());
    CHECK_FALSE(make_error(ErrorCode::ShuttingDown, "s").retryable());
    CHECK_FALSE(make_error(ErrorCode::Internal, "i").retryable());
  }
}

TEST_CASE("Error::describe", "[error]") {
  CHECK(make_error(ErrorCode::Timeout, "first byte").describe() == "Timeout: first byte");
  CHECK(make_error(ErrorCode::Cancelled, "").describe() == "Cancelled");
  CHECK(upstream(ErrorCode::RateLimited, 429, "1302").describe() ==
        "RateLimited (HTTP 429, upstream code 1302): test");
  CHECK(upstream(ErrorCode::UpstreamError, 503).describe() == "UpstreamError (HTTP 503): test");
  CHECK(upstream(ErrorCode::UpstreamError, 0, "overloaded_error").describe() ==
        "UpstreamError (upstream code overloaded_error): test");
}

TEST_CASE("make_error fills code, message and status", "[error]") {
  Error e = make_error(ErrorCode::Unauthorized, "unknown key", 401);
  CHECK(e.code == ErrorCode::Unauthorized);
  CHECK(e.message == "unknown key");
  CHECK(e.http_status == 401);
  CHECK(e.upstream_code.empty());
  CHECK_FALSE(e.retry_after.has_value());
}
