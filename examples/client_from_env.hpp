#pragma once

// How every example starts: a Config read from the environment (ZAI_API_KEY, ZAI_API_BASE,
// DEFAULT_MODEL, ...) and a client made from it. Either failing says why on stderr: a bad
// variable is named with its value (secrets masked).

#include <glmproxy/glmproxy.hpp>

#include <cstdio>
#include <optional>
#include <utility>

namespace example {

inline std::optional<glmproxy::ProxyClient> client_from_env() {
  auto config = glmproxy::Config::from_env();
  if (!config) {
    std::fprintf(stderr, "%s\n", config.error().message.c_str());
    return std::nullopt;
  }
  auto client = glmproxy::ProxyClient::create(*config);
  if (!client) {
    std::fprintf(stderr, "%s\n", client.error().describe().c_str());
    return std::nullopt;
  }
  return std::move(*client);
}

}  // namespace example
