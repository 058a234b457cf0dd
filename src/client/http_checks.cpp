// Checks of caller-supplied request parts before they reach the wire.

#include "client/http_checks.hpp"

#include <fmt/format.h>

#include <vector>

namespace glmproxy::detail {

namespace {

bool is_ctl(unsigned char c) noexcept { return c < 0x20 || c == 0x7F; }

std::string byte_at(std::string_view s, std::size_t i) {
  return fmt::format("byte 0x{:02X} at offset {}",
                     static_cast<unsigned>(static_cast<unsigned char>(s[i])), i);
}

// "." or ".." with any dot spelled %2e or %2E (RFC 3986 section 2.3: they are the same
// characters, and servers decode them): 1, 2, or 0 for any other segment.
int dot_segment(std::string_view segment) noexcept {
  int dots = 0;
  for (std::size_t i = 0; i < segment.size();) {
    if (segment[i] == '.') {
      ++i;
    } else if (segment.substr(i, 3) == "%2e" || segment.substr(i, 3) == "%2E") {
      i += 3;
    } else {
      return 0;
    }
    if (++dots > 2) return 0;
  }
  return dots;
}

}  // namespace

bool is_tchar(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

Result<void> check_method(std::string_view method) {
  if (method.empty()) {
    return make_error(ErrorCode::InvalidArgument, "HttpRequest::method must not be empty");
  }
  for (std::size_t i = 0; i < method.size(); ++i) {
    if (!is_tchar(method[i])) {
      return make_error(ErrorCode::InvalidArgument,
                        fmt::format("HttpRequest::method must be an HTTP token (RFC 9110 tchar); "
                                    "it has {}",
                                    byte_at(method, i)));
    }
  }
  return {};
}

Result<void> check_header(std::size_t index, std::string_view name, std::string_view value) {
  if (name.empty()) {
    return make_error(ErrorCode::InvalidArgument,
                      fmt::format("HttpRequest::headers[{}]: the name must not be empty", index));
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!is_tchar(name[i])) {
      return make_error(ErrorCode::InvalidArgument,
                        fmt::format("HttpRequest::headers[{}]: the name must be an HTTP token "
                                    "(RFC 9110 tchar); it has {}",
                                    index, byte_at(name, i)));
    }
  }
  for (std::size_t i = 0; i < value.size(); ++i) {
    const auto c = static_cast<unsigned char>(value[i]);
    if (is_ctl(c) && c != '\t') {
      // The name is a token by now, safe to show; the value is not shown at all.
      return make_error(ErrorCode::InvalidArgument,
                        fmt::format("HttpRequest::headers[{}] ({}): the value has {}; a header "
                                    "value may hold no control character but HTAB",
                                    index, name, byte_at(value, i)));
    }
  }
  return {};
}

Result<std::string> resolve_request_path(std::string_view path) {
  for (std::size_t i = 0; i < path.size(); ++i) {
    const auto c = static_cast<unsigned char>(path[i]);
    if (is_ctl(c) || c == ' ' || c >= 0x80 || c == '\\') {
      return make_error(ErrorCode::InvalidArgument,
                        fmt::format("HttpRequest::path has {}; a path may hold no control "
                                    "characters, spaces, backslashes or non-ASCII bytes "
                                    "(percent-encode them)",
                                    byte_at(path, i)));
    }
    if (c == '#') {
      return make_error(ErrorCode::InvalidArgument,
                        fmt::format("HttpRequest::path has a fragment ('#' at offset {}); a "
                                    "fragment is never sent to a server",
                                    i));
    }
  }
  const std::size_t query = std::min(path.find('?'), path.size());
  // An encoded '/' or '\' in the path part would let a server that decodes before it
  // normalises see segments (and "..") that are not checked here.
  for (std::size_t i = 0; i + 2 < query; ++i) {
    if (path[i] != '%') continue;
    const std::string_view code = path.substr(i + 1, 2);
    if (code == "2f" || code == "2F" || code == "5c" || code == "5C") {
      return make_error(ErrorCode::InvalidArgument,
                        fmt::format("HttpRequest::path has an encoded '/' or '\\' (%{} at "
                                    "offset {}); put real segments in the path",
                                    code, i));
    }
  }
  // Leading slashes are dropped: "/models" and "models" both name a path under the base path.
  std::size_t pos = 0;
  while (pos < query && path[pos] == '/') ++pos;
  std::vector<std::string_view> kept;
  bool trailing_slash = false;
  while (pos < query) {
    const std::size_t end = std::min(path.find('/', pos), query);
    const std::string_view segment = path.substr(pos, end - pos);
    const int dots = dot_segment(segment);
    // RFC 3986 section 5.2.4: a dot segment at the end leaves a directory ("a/." is "a/").
    trailing_slash = dots != 0 && end == query;
    if (dots == 2) {
      if (kept.empty()) {
        return make_error(ErrorCode::InvalidArgument,
                          fmt::format("HttpRequest::path climbs above the base URL's path (the "
                                      "\"..\" segment at offset {})",
                                      pos));
      }
      kept.pop_back();
    } else if (dots == 0) {
      kept.push_back(segment);
    }
    if (end == query) break;
    pos = end + 1;
    if (pos == query) kept.emplace_back();  // "a/" keeps its trailing slash
  }
  std::string out;
  out.reserve(path.size());
  for (std::size_t i = 0; i < kept.size(); ++i) {
    if (i != 0) out += '/';
    out += kept[i];
  }
  if (trailing_slash && !kept.empty()) out += '/';
  out += path.substr(query);
  return out;
}

Result<std::string> check_http_request(const HttpRequest& request) {
  if (auto ok = check_method(request.method); !ok) return std::move(ok).error();
  for (std::size_t i = 0; i < request.headers.size(); ++i) {
    const auto& [name, value] = request.headers[i];
    if (auto ok = check_header(i, name, value); !ok) return std::move(ok).error();
  }
  return resolve_request_path(request.path);
}

Result<void> check_request_id(std::string_view request_id) {
  for (std::size_t i = 0; i < request_id.size(); ++i) {
    const auto c = static_cast<unsigned char>(request_id[i]);
    if (is_ctl(c) && c != '\t') {
      return make_error(ErrorCode::InvalidArgument,
                        fmt::format("request_id has {}; it is sent as the X-Request-ID header, "
                                    "whose value may hold no control character but HTAB",
                                    byte_at(request_id, i)));
    }
  }
  return {};
}

}  // namespace glmproxy::detail
