#include "core/url.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace detail = glmproxy::detail;

TEST_CASE("split_url finds every part", "[core][url]") {
  auto p = detail::split_url("https://user:pw@api.z.ai:8443/api/paas/v4?tenant=abc#frag");
  REQUIRE(p);
  CHECK(p->scheme == "https");
  REQUIRE(p->userinfo);
  CHECK(*p->userinfo == "user:pw");
  CHECK(p->host == "api.z.ai");
  REQUIRE(p->port);
  CHECK(*p->port == "8443");
  CHECK(p->path == "/api/paas/v4");
  REQUIRE(p->query);
  CHECK(*p->query == "tenant=abc");
  REQUIRE(p->fragment);
  CHECK(*p->fragment == "frag");

  p = detail::split_url("http://[::1]:9000");
  REQUIRE(p);
  CHECK(p->host == "[::1]");
  CHECK(*p->port == "9000");
  CHECK_FALSE(p->userinfo);
  CHECK(p->path.empty());
  CHECK_FALSE(p->query);

  p = detail::split_url("http://h?x=1");
  REQUIRE(p);
  CHECK(p->host == "h");
  CHECK(p->path.empty());
  CHECK(*p->query == "x=1");
  // The userinfo ends at the authority's last '@' (a password may hold '@' percent-encoded or not).
  p = detail::split_url("http://u:p@ss@h/x@y");
  REQUIRE(p);
  CHECK(*p->userinfo == "u:p@ss");
  CHECK(p->host == "h");
  CHECK(p->path == "/x@y");
  CHECK_FALSE(detail::split_url("api.z.ai/v4"));
}

TEST_CASE("redact_url hides the userinfo and nothing else", "[core][url]") {
  CHECK(detail::redact_url("http://user:secret-pw@127.0.0.1:3128") == "http://***@127.0.0.1:3128");
  CHECK(detail::redact_url("socks5h://token@proxy:1080/") == "socks5h://***@proxy:1080/");
  CHECK(detail::redact_url("https://u:p@h/v4?a=b@c") == "https://***@h/v4?a=b@c");
  CHECK(detail::redact_url("https://h/v4/x") == "https://h/v4/x");
  // A password with an unencoded '/' makes a malformed URL; it is hidden all the same.
  CHECK(detail::redact_url("http://user:pa/ss@host/x") == "http://***@host/x");
  // Erring on the side of hiding: an '@' in the path hides what comes before it.
  // An '@' in a path is no userinfo unless what precedes it looks like "user:password".
  CHECK(detail::redact_url("https://h/v4/x@y") == "https://h/v4/x@y");
  CHECK(detail::redact_url("http://alice:s3cr#t99@proxy:3128") == "http://***@proxy:3128");
  CHECK(detail::redact_url("http://alice:s3?cr@proxy:3128") == "http://***@proxy:3128");
  CHECK(detail::url_password("http://alice:s3cr#t99@proxy:3128") == "s3cr#t99");
  CHECK(detail::percent_decode("p%40ss%2Fw%2fd") == "p@ss/w/d");
  CHECK(detail::percent_decode("100%") == "100%");
  CHECK(detail::percent_decode("%zz%4") == "%zz%4");
  CHECK(detail::redact_url("https://h/v4?next=a@b#c@d") == "https://h/v4?next=a@b#c@d");
  CHECK(detail::redact_url("https://api.z.ai/api/paas/v4") == "https://api.z.ai/api/paas/v4");
  CHECK(detail::redact_url("https://:pw@h") == "https://***@h");
  CHECK(detail::redact_url("") == "");
}

TEST_CASE("url_password and url_origin", "[core][url]") {
  CHECK(detail::url_password("http://user:pw-123@h/") == "pw-123");
  CHECK(detail::url_password("http://token-only@h/") == "token-only");
  CHECK(detail::url_password("http://h/").empty());
  CHECK(detail::url_password("http://user:@h/").empty());
  CHECK(detail::url_password("no scheme").empty());
  CHECK(detail::url_origin("https://user:pw@api.z.ai:8443/api?x#y") == "https://api.z.ai:8443");
  CHECK(detail::url_origin("http://[::1]/x") == "http://[::1]");
  CHECK(detail::url_origin("not a url") == "not a url");
}
