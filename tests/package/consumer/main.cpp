// Built outside the tree against the installed package: uses the public API only.
#include <glmproxy/glmproxy.hpp>

#include <cstdio>
#include <map>
#include <string>

int main() {
  std::map<std::string, std::string> env = {{"POOL_MAX_CONNECTIONS", "4"},
                                            {"CACHE_ENABLED", "yes"}};
  auto config =
      glmproxy::Config::from_env([&](std::string_view name) -> std::optional<std::string> {
        auto it = env.find(std::string(name));
        if (it == env.end()) return std::nullopt;
        return it->second;
      });
  if (!config || config->pool.max_connections != 4 || !config->cache.enabled) return 1;

  env["POOL_MAX_CONNECTIONS"] = "ten";
  auto bad = glmproxy::Config::from_env([&](std::string_view name) -> std::optional<std::string> {
    auto it = env.find(std::string(name));
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
  if (bad || bad.error().code != glmproxy::ErrorCode::InvalidConfig) return 2;

  std::printf("glmproxy %s ok\n", glmproxy::kVersionString);
  return 0;
}
