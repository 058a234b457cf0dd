// URL parts and redaction.

#include "core/url.hpp"

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

std::string redact_url(std::string_view url) {
  const std::size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::string(url);
  const std::size_t begin = scheme_end + 3;
  // Wider than split_url's userinfo on purpose: up to the last '@' before the query, not before
  // the first '/'. "http://user:pa/ss@host" (a password with an unencoded '/') is a malformed
  // URL whose password would otherwise be shown in the very message that says it is malformed.
  const std::string_view before_query = url.substr(0, url.find_first_of("?#", begin));
  const std::size_t at = before_query.rfind('@');
  if (at == std::string_view::npos || at < begin) return std::string(url);
  std::string out(url.substr(0, begin));
  out += "***";
  out += url.substr(at);
  return out;
}

std::string_view url_password(std::string_view url) noexcept {
  const std::optional<UrlParts> parts = split_url(url);
  if (!parts || !parts->userinfo) return {};
  const std::string_view userinfo = *parts->userinfo;
  const std::size_t colon = userinfo.find(':');
  if (colon == std::string_view::npos) return userinfo;
  return userinfo.substr(colon + 1);
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

}  // namespace glmproxy::detail
