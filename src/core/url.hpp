#pragma once

// Splitting URLs into their parts and hiding their credentials (not public). Shared by the
// config checks, the protocol layer's URL join and the transport's messages. Pure functions,
// thread-safe.

#include <optional>
#include <string>
#include <string_view>

namespace glmproxy::detail {

/// The parts of "scheme://[userinfo@]host[:port][/path][?query][#fragment]" (RFC 3986 generic
/// syntax; no decoding, no validation beyond finding the delimiters). Views into the input.
struct UrlParts {
  std::string_view scheme;                   ///< "https" (without "://")
  std::optional<std::string_view> userinfo;  ///< "user:pass" (without '@') when present
  std::string_view host;                     ///< "api.z.ai", "127.0.0.1" or "[::1]"
  std::optional<std::string_view> port;      ///< "8080" (without ':') when present
  std::string_view path;                     ///< "/api/paas/v4" or ""
  std::optional<std::string_view> query;     ///< without '?' when present
  std::optional<std::string_view> fragment;  ///< without '#' when present
};

/// The parts of `url`, or nullopt when it has no "scheme://". The authority ends at the first
/// '/', '?' or '#'; the userinfo is what comes before the authority's last '@'.
std::optional<UrlParts> split_url(std::string_view url) noexcept;

/// `url` with its userinfo replaced by "***": "http://user:pw@h:1/x" -> "http://***@h:1/x".
/// A URL without userinfo comes back unchanged, so this is safe to apply to any URL that goes
/// into a message, a log line or describe(). It errs on the side of hiding: whatever comes
/// between "://" and the last '@' before the query is hidden, so a malformed
/// "http://user:pa/ss@h" does not show "pa/ss" (nor does "https://h/v1/x@y" show "h/v1/x").
std::string redact_url(std::string_view url);

/// The password of `url`'s userinfo ("pw" in "http://user:pw@h/"), or "" when it has none. A
/// userinfo without ':' is all username, and a username can be a token too: then the whole
/// userinfo is returned, so that callers scrubbing secrets scrub it.
std::string_view url_password(std::string_view url) noexcept;

/// "scheme://host[:port]" of `url`, without userinfo, path, query or fragment; `url` itself
/// when it has no "scheme://".
std::string url_origin(std::string_view url);

/// `text` with every %XX (two hex digits) replaced by its byte; other '%' stay as they are.
std::string percent_decode(std::string_view text);

}  // namespace glmproxy::detail
