#pragma once

// Checks of what a caller hands over to be put on the wire (not public): ProxyClient::send()'s
// method, headers and path, and a chat request's request_id (sent as X-Request-ID). A header
// line or request line built from unchecked text could be split by a CR/LF into requests the
// caller never wrote, and a path with ".." could leave the base URL's API prefix.
//
// Pure functions, thread-safe. Every failure is ErrorCode::InvalidArgument whose message names
// the field and says what is wrong with a byte offset; a header value is never echoed (it may
// carry a secret), nor is the path (its query may).

#include <cstddef>
#include <string>
#include <string_view>

#include "glmproxy/error.hpp"
#include "glmproxy/request.hpp"

namespace glmproxy::detail {

/// RFC 9110 tchar: ALPHA DIGIT and !#$%&'*+-.^_`|~ (what a method and a header name are made of).
bool is_tchar(char c) noexcept;

/// A method is a non-empty token (RFC 9110 section 9.1).
Result<void> check_method(std::string_view method);

/// Header `index` of a request: the name a non-empty token, the value without control characters
/// except HTAB (no NUL, CR, LF or DEL). Messages name the header, never show the value.
Result<void> check_header(std::size_t index, std::string_view name, std::string_view value);

/// The path of a raw request, made safe to join under the base URL's path: no control
/// characters, spaces or non-ASCII bytes (percent-encode them), no '\\', no '#' fragment. Dot
/// segments in the part before '?' (".", "..", and their %2e/%2E spellings) are resolved; a ".."
/// that would climb above the base path is refused. Returns the resolved path, query unchanged.
/// Example: "a/./b/../models?x=1" -> "a/models?x=1"; "../../etc/x" -> InvalidArgument.
Result<std::string> resolve_request_path(std::string_view path);

/// Every check above for `request`; the resolved path on success.
Result<std::string> check_http_request(const HttpRequest& request);

/// A request_id goes out as the X-Request-ID header value: no control characters but HTAB.
Result<void> check_request_id(std::string_view request_id);

}  // namespace glmproxy::detail
