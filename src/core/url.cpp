// URL parts and redaction.

#include "core/url.hpp"

#include <optional>

namespace glmproxy::detail {

std::optional<UrlParts> split_url(std::string_view url) noexcept {
  const std::size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::nullopt;
  UrlParts parts;
  parts.scheme = url.substr(0, scheme_end);
  std::string_view rest = url.substr(scheme_end + 3);
  const std::size_t authority_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, authority_end);
  rest = authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);
  if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
    parts.userinfo = authority.substr(0, at);
    authority.remove_prefix(at + 1);
  }
  // A bracketed IPv6 literal holds ':' of its own; the port is after the ']'.
  std::size_t colon = std::string_view::npos;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close != std::string_view::npos) colon = authority.find(':', close);
  } else {
    colon = authority.find(':');
  }
  parts.host = authority.substr(0, colon);
  if (colon != std::string_view::npos) parts.port = authority.substr(colon + 1);
  if (const std::size_t hash = rest.find('#'); hash != std::string_view::npos) {
    parts.fragment = rest.substr(hash + 1);
    rest = rest.substr(0, hash);
  }
  if (const std::size_t q = rest.find('?'); q != std::string_view::npos) {
    parts.query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  parts.path = rest;
  return parts;
}

namespace {

// The userinfo as a malformed URL may hold it: up to the last '@' anywhere after "://" (an
// unencoded '/', '?' or '#' in a password would otherwise hide it from split_url and show it in
// the very message that says the URL is malformed). Hides more rather than less.
std::optional<std::string_view> wide_userinfo(std::string_view url) noexcept {
  const std::size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::nullopt;
  const std::size_t begin = scheme_end + 3;
  const std::size_t at = url.rfind('@');
  if (at == std::string_view::npos || at < begin) return std::nullopt;
  return url.substr(begin, at - begin);
}

}  // namespace

namespace {

// The userinfo to hide: the well-formed one, or a wider one that looks like "user:password".
std::optional<std::string_view> secret_userinfo(std::string_view url) noexcept {
  if (const std::optional<UrlParts> parts = split_url(url); parts && parts->userinfo) {
    return parts->userinfo;
  }
  if (auto wide = wide_userinfo(url); wide && wide->find(':') != std::string_view::npos) {
    return wide;  // "http://alice:s3cr#t@proxy": the password holds a '#', '?' or '/'
  }
  return std::nullopt;
}

}  // namespace

std::string redact_url(std::string_view url) {
  const std::optional<std::string_view> userinfo = secret_userinfo(url);
  if (!userinfo) return std::string(url);
  const std::size_t begin = static_cast<std::size_t>(userinfo->data() - url.data());
  std::string out(url.substr(0, begin));
  out += "***";
  out += url.substr(begin + userinfo->size());
  return out;
}

std::string_view url_password(std::string_view url) noexcept {
  const std::optional<std::string_view> userinfo = secret_userinfo(url);
  if (!userinfo) return {};
  const std::size_t colon = userinfo->find(':');
  if (colon == std::string_view::npos) return *userinfo;
  return userinfo->substr(colon + 1);
}

std::string url_origin(std::string_view url) {
  const std::optional<UrlParts> parts = split_url(url);
  if (!parts) return std::string(url);
  std::string out(parts->scheme);
  out += "://";
  out += parts->host;
  if (parts->port) {
    out += ':';
    out += *parts->port;
  }
  return out;
}

std::string percent_decode(std::string_view text) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
      out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

}  // namespace glmproxy::detail
