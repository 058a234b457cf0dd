// Config::from_env()'s proxy rule: GLMPROXY_PROXY / GLMPROXY_NO_PROXY, else the standard
// variables libcurl would read, all through the caller's lookup.

#include <string>
#include <string_view>

#include "config/variables.hpp"
#include "core/strings.hpp"
#include "core/url.hpp"

namespace glmproxy::detail {

namespace {

const ConfigVariable& variable_named(std::string_view name) {
  for (const ConfigVariable& variable : config_variables()) {
    if (variable.name == name) return variable;
  }
  return config_variables().front();  // unreachable: both proxy rows are in the table
}

void remember_password(std::vector<std::string>& secrets, std::string_view url) {
  if (std::string_view password = url_password(url); !password.empty()) {
    secrets.emplace_back(password);
  }
}

}  // namespace

void apply_proxy_env(const std::function<std::optional<std::string>(std::string_view)>& lookup,
                     Config& config, std::vector<std::string>& problems,
                     std::vector<std::string>& secrets) {
  // Present (even empty) vs absent matters here, unlike for every other variable.
  auto present = [&](std::string_view name) -> std::optional<std::string> {
    std::optional<std::string> raw = lookup(name);
    if (!raw) return std::nullopt;
    return std::string(trim(*raw));
  };
  auto non_empty = [&](std::string_view name) -> std::optional<std::string> {
    std::optional<std::string> value = present(name);
    if (value && value->empty()) return std::nullopt;
    return value;
  };
  UpstreamConfig& upstream = config.upstream;
  const ConfigVariable& proxy_variable = variable_named(kProxyVariable);

  if (std::optional<std::string> value = present(kProxyVariable)) {
    upstream.proxy_source = std::string(kProxyVariable);
    if (value->empty() || iequals(*value, "none") || iequals(*value, "direct")) {
      upstream.proxy.clear();
    } else {
      remember_password(secrets, *value);
      std::string problem = check_text(proxy_variable, *value);
      if (problem.empty()) {
        upstream.proxy = std::move(*value);
      } else {
        problems.push_back(std::move(problem));
      }
    }
  } else {
    // libcurl's order: the scheme's own variable (http_proxy lowercase only: HTTP_PROXY can be
    // set by a CGI client's "Proxy:" header, httpoxy), then all_proxy.
    const std::optional<UrlParts> base = split_url(upstream.openai_base_url);
    const bool https = base && iequals(base->scheme, "https");
    const std::string_view https_names[] = {"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};
    const std::string_view http_names[] = {"http_proxy", "all_proxy", "ALL_PROXY"};
    const std::span<const std::string_view> names =
        https ? std::span<const std::string_view>(https_names)
              : std::span<const std::string_view>(http_names);
    for (std::string_view name : names) {
      std::optional<std::string> found = non_empty(name);
      if (!found) continue;
      // libcurl takes a proxy without a scheme as http://.
      if (found->find("://") == std::string::npos) found->insert(0, "http://");
      remember_password(secrets, *found);
      std::string problem = check_text(proxy_variable, *found);
      if (problem.empty()) {
        upstream.proxy = std::move(*found);
        upstream.proxy_source = std::string(name);
      } else {
        problems.push_back(problem + " (from " + std::string(name) + ")");
      }
      break;
    }
  }

  const ConfigVariable& no_proxy_variable = variable_named(kNoProxyVariable);
  std::optional<std::string> no_proxy = present(kNoProxyVariable);
  std::string_view no_proxy_name = kNoProxyVariable;
  for (std::string_view name : {"no_proxy", "NO_PROXY"}) {
    if (no_proxy) break;
    no_proxy = non_empty(name);
    no_proxy_name = name;
  }
  if (no_proxy) {
    std::string problem = check_text(no_proxy_variable, *no_proxy);
    if (problem.empty()) {
      upstream.no_proxy = std::move(*no_proxy);
    } else {
      if (no_proxy_name != kNoProxyVariable)
        problem += " (from " + std::string(no_proxy_name) + ")";
      problems.push_back(std::move(problem));
    }
  }
}

}  // namespace glmproxy::detail
