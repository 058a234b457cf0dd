// is_loopback_host(): public, so that the admin component (built on public headers only) applies
// the same rule as Config::validate().

#include <algorithm>
#include <string_view>

#include "glmproxy/config.hpp"

namespace glmproxy {

bool is_loopback_host(std::string_view host) noexcept {
  if (host == "localhost" || host == "::1") return true;
  if (!host.starts_with("127.")) return false;
  int parts = 0;
  std::size_t i = 0;
  while (i <= host.size()) {
    const std::size_t end = std::min(host.find('.', i), host.size());
    const std::string_view part = host.substr(i, end - i);
    if (part.empty() || part.size() > 3) return false;
    int value = 0;
    for (char c : part) {
      if (c < '0' || c > '9') return false;
      value = value * 10 + (c - '0');
    }
    if (value > 255) return false;
    ++parts;
    i = end + 1;
  }
  return parts == 4;
}

}  // namespace glmproxy
