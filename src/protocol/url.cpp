// Endpoint URLs.

#include <string>
#include <string_view>

#include "protocol/protocol.hpp"

namespace glmproxy::detail {

std::string join_url(std::string_view base, std::string_view path) {
  // A query on the base (e.g. "?tenant=abc") stays a query: the path goes before it. A
  // fragment is never sent (Config::validate() refuses one in a base URL).
  base = base.substr(0, base.find('#'));
  std::string_view base_query;
  if (const std::size_t q = base.find('?'); q != std::string_view::npos) {
    base_query = base.substr(q + 1);
    base = base.substr(0, q);
  }
  std::string_view path_query;
  if (const std::size_t q = path.find('?'); q != std::string_view::npos) {
    path_query = path.substr(q + 1);
    path = path.substr(0, q);
  }
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  std::string url;
  url.reserve(base.size() + path.size() + base_query.size() + path_query.size() + 3);
  url += base;
  if (!path.empty()) {
    url += '/';
    url += path;
  }
  if (!base_query.empty() || !path_query.empty()) {
    url += '?';
    url += base_query;
    if (!base_query.empty() && !path_query.empty()) url += '&';
    url += path_query;
  }
  return url;
}

std::string_view chat_path(Protocol protocol) noexcept {
  return protocol == Protocol::Anthropic ? "v1/messages" : "chat/completions";
}

}  // namespace glmproxy::detail
