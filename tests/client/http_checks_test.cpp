#include "client/http_checks.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

using glmproxy::ErrorCode;
using glmproxy::HttpRequest;
namespace detail = glmproxy::detail;

namespace {

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

template <class R>
std::string message_of(const R& r) {
  if (r) return "<accepted>";
  CHECK(r.error().code == ErrorCode::InvalidArgument);
  return r.error().message;
}

std::string resolved(std::string_view path) {
  auto r = detail::resolve_request_path(path);
  INFO(path << ": " << (r ? "" : r.error().message));
  REQUIRE(r);
  return *r;
}

}  // namespace

TEST_CASE("methods are RFC 9110 tokens", "[client][http_checks]") {
  for (const char* good : {"GET", "POST", "PATCH", "M-SEARCH", "x!#$%&'*+-.^_`|~9"}) {
    INFO(good);
    CHECK(detail::check_method(good));
  }
  CHECK(contains(message_of(detail::check_method("")), "HttpRequest::method must not be empty"));
  CHECK(contains(message_of(detail::check_method("GET\r\nX: y")),
                 "HttpRequest::method must be an HTTP token (RFC 9110 tchar); it has byte 0x0D "
                 "at offset 3"));
  for (const std::string& bad :
       std::vector<std::string>{"GE T", "GET\t", std::string("G\0T", 3), "GET/", "G\x7F", "G(",
                                "G\xC3\xA9", "G:", "G\"", "G@", "G,"}) {
    INFO(bad);
    CHECK(contains(message_of(detail::check_method(bad)), "must be an HTTP token"));
  }
}

TEST_CASE("header names are tokens, values hold no control character but HTAB",
          "[client][http_checks]") {
  CHECK(detail::check_header(0, "X-Custom_Header.1", "any value\twith tab, \xC3\xA9 and : ; \""));
  CHECK(detail::check_header(0, "X-Empty", ""));
  CHECK(contains(message_of(detail::check_header(3, "", "v")),
                 "HttpRequest::headers[3]: the name must not be empty"));
  CHECK(contains(message_of(detail::check_header(1, "X-Bad:Name", "v")),
                 "HttpRequest::headers[1]: the name must be an HTTP token (RFC 9110 tchar); it "
                 "has byte 0x3A at offset 5"));
  CHECK(contains(message_of(detail::check_header(0, "X Y", "v")), "byte 0x20 at offset 1"));
  CHECK(contains(message_of(detail::check_header(0, "X\nY", "v")), "byte 0x0A at offset 1"));

  const std::string secret = "sk-very-secret-value";
  for (const std::string& bad : {secret + "\r\nX-Injected: 1", secret + "\n",
                                 secret + std::string(1, '\0'), secret + "\x7F", secret + "\x01"}) {
    const std::string message = message_of(detail::check_header(2, "Authorization", bad));
    INFO(message);
    CHECK(contains(message, "HttpRequest::headers[2] (Authorization): the value has byte 0x"));
    CHECK(contains(message, "at offset 20"));
    CHECK_FALSE(contains(message, "secret"));
  }
}

TEST_CASE("paths: no control characters, spaces, non-ASCII or fragments", "[client][http_checks]") {
  CHECK(contains(message_of(detail::resolve_request_path("model\ns")),
                 "HttpRequest::path has byte 0x0A at offset 5"));
  CHECK(contains(message_of(detail::resolve_request_path("a b")), "byte 0x20 at offset 1"));
  CHECK(contains(message_of(detail::resolve_request_path("a\rb")), "byte 0x0D at offset 1"));
  CHECK(contains(message_of(detail::resolve_request_path(std::string("a\0b", 3))),
                 "byte 0x00 at offset 1"));
  CHECK(contains(message_of(detail::resolve_request_path("a\tb")), "byte 0x09"));
  CHECK(contains(message_of(detail::resolve_request_path("a\x7F")), "byte 0x7F"));
  CHECK(contains(message_of(detail::resolve_request_path("mod\xC3\xA8les")),
                 "byte 0xC3 at offset 3"));
  CHECK(contains(message_of(detail::resolve_request_path("..\\..\\etc")), "byte 0x5C"));
  CHECK(contains(message_of(detail::resolve_request_path("models#top")),
                 "HttpRequest::path has a fragment ('#' at offset 6)"));
  CHECK(contains(message_of(detail::resolve_request_path("models?q=1#x")), "fragment"));
  // Percent-encoded, they are fine.
  CHECK(resolved("models/a%20b%0A?q=%C3%A9") == "models/a%20b%0A?q=%C3%A9");
}

TEST_CASE("paths: dot segments are resolved and cannot climb above the base path",
          "[client][http_checks]") {
  // An encoded slash or backslash is refused: a server might decode it before normalising.
  for (std::string_view p : {"a/..%2f..%2fadmin", "x%2Fy", "a%5c..", "a%5C"}) {
    INFO(p);
    auto r = glmproxy::detail::resolve_request_path(p);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == glmproxy::ErrorCode::InvalidArgument);
  }
  CHECK(resolved("models") == "models");
  CHECK(resolved("/models") == "models");
  CHECK(resolved("") == "");
  CHECK(resolved("a/./b/../models?x=1") == "a/models?x=1");
  CHECK(resolved("./models") == "models");
  CHECK(resolved("a/b/..") == "a/");
  CHECK(resolved("a/.") == "a/");
  CHECK(resolved("a/") == "a/");
  CHECK(resolved("a/..") == "");
  CHECK(resolved("a//b") == "a//b");
  CHECK(resolved("a/%2e%2e/b") == "b");
  CHECK(resolved("a/.%2E/b") == "b");
  CHECK(resolved("a/%2E/b") == "a/b");
  // Not dot segments: more than two dots, dots inside a name, dots in the query.
  CHECK(resolved(".../x") == ".../x");
  CHECK(resolved("a/..b/c.") == "a/..b/c.");
  CHECK(resolved("a?p=../../x") == "a?p=../../x");
  CHECK(resolved("?p=..") == "?p=..");

  for (const char* bad : {"..", "../models", "../../etc/x", "/../x", "a/../../x", "a/b/../../..",
                          "%2e%2e/x", "%2E%2E", ".%2e/x", "./../x", "a/./../.."}) {
    INFO(bad);
    CHECK(contains(message_of(detail::resolve_request_path(bad)),
                   "HttpRequest::path climbs above the base URL's path"));
  }
  CHECK(contains(message_of(detail::resolve_request_path("a/../../etc")),
                 "the \"..\" segment at offset 5"));
}

TEST_CASE("check_http_request checks every part and returns the resolved path",
          "[client][http_checks]") {
  HttpRequest request;
  request.method = "POST";
  request.path = "/x/../models?limit=2";
  request.headers = {{"X-One", "1"}, {"X-Two", "2"}};
  auto r = detail::check_http_request(request);
  REQUIRE(r);
  CHECK(*r == "models?limit=2");

  request.headers.emplace_back("X-Three", "a\nb");
  CHECK(contains(message_of(detail::check_http_request(request)), "headers[2] (X-Three)"));
  request.headers.pop_back();
  request.method = "PO ST";
  CHECK(contains(message_of(detail::check_http_request(request)), "HttpRequest::method"));
  request.method = "POST";
  request.path = "../x";
  CHECK(contains(message_of(detail::check_http_request(request)), "HttpRequest::path"));
}

TEST_CASE("request ids must be header values", "[client][http_checks]") {
  CHECK(detail::check_request_id(""));
  CHECK(detail::check_request_id("req-42"));
  CHECK(detail::check_request_id("req\t42 with spaces \xC3\xA9"));
  for (const std::string& bad :
       std::vector<std::string>{"req\r\nX-Injected: 1", "req\n", std::string("r\0", 2), "r\x7F"}) {
    INFO(bad);
    const std::string message = message_of(detail::check_request_id(bad));
    CHECK(contains(message, "request_id has byte 0x"));
    CHECK(contains(message, "X-Request-ID"));
  }
  CHECK(contains(message_of(detail::check_request_id("abc\n")), "byte 0x0A at offset 3"));
}
