// Endpoint URLs.

#include <string>
#include <string_view>

#include "protocol/protocol.hpp"

namespace glmproxy::detail {

std::string join_url(std::string_view base, std::string_view path) {
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  std::string url;
  url.reserve(base.size() + 1 + path.size());
  url += base;
  if (!path.empty()) {
    url += '/';
    url += path;
  }
  return url;
}

std::string_view chat_path(Protocol protocol) noexcept {
  return protocol == Protocol::Anthropic ? "v1/messages" : "chat/completions";
}

}  // namespace glmproxy::detail
