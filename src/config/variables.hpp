#pragma once

// The table of environment variables behind Config (not public). One row per variable drives
// from_env() (parsing), validate() (ranges and text rules) and describe() (NAME=value), so a
// knob cannot be parsed but left unvalidated, or validated but missing from describe().

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "glmproxy/config.hpp"

namespace glmproxy::detail {

/// A pointer to the Config field a variable sets; the alternative says how to parse it.
using FieldRef = std::variant<std::string*, bool*, int*, std::size_t*, Milliseconds*, LogLevel*>;

/// What a string-valued variable may hold.
enum class TextKind {
  Any,     ///< anything without control characters (a file path); may be empty
  Url,     ///< http:// or https:// with a host, no blanks or control characters
  Secret,  ///< an API key: no blanks or control characters; may be empty; never echoed
  Token,   ///< a non-empty name without blanks or control characters (model, version)
  Proxy,   ///< "" or a proxy URL (http, https, socks4, socks4a, socks5, socks5h) with a host
};

struct ConfigVariable {
  std::string_view name;
  FieldRef (*field)(Config&);
  std::int64_t min = 0;  ///< integers only: inclusive range
  std::int64_t max = 0;
  TextKind text = TextKind::Any;  ///< strings only
};

/// Every variable Config::from_env() reads except GLMPROXY_PRESET, in docs/configuration.md order.
std::span<const ConfigVariable> config_variables() noexcept;

/// The field of `config` that `variable` names, for reading only.
inline FieldRef read_field(const ConfigVariable& variable, const Config& config) {
  // The accessors take Config& so that one table serves parsing too; callers of read_field
  // only read through the pointer, which is well-defined even for a const object.
  return variable.field(const_cast<Config&>(config));
}

/// `"value"` with control characters escaped (\n, \xNN) and long values shortened, for messages.
std::string quoted(std::string_view value);

/// The problem with string `value` for `variable` as a full message, or "" when it is fine.
/// A Secret is never echoed; its message shows redact_key(value).
std::string check_text(const ConfigVariable& variable, std::string_view value);

/// `text` with every occurrence of `secret` replaced by redact_key(secret) (no-op when empty).
std::string scrub_secret(std::string text, std::string_view secret);

/// scrub_secret() for each of `secrets` (the API key, the admin token, ...).
std::string scrub_secrets(std::string text, std::span<const std::string> secrets);

/// "invalid configuration: " + problems joined with "; ", with every secret scrubbed.
Error invalid_config(std::span<const std::string> problems, std::span<const std::string> secrets);

/// Every secret a Config holds, to scrub from messages: the upstream key, the admin token and
/// the passwords of its URLs (base URLs and proxy; core/url.hpp's url_password()).
std::vector<std::string> config_secrets(const Config& config);

/// The name of GLMPROXY_PROXY and GLMPROXY_NO_PROXY, which from_env() reads by their own rule.
inline constexpr std::string_view kProxyVariable = "GLMPROXY_PROXY";
inline constexpr std::string_view kNoProxyVariable = "GLMPROXY_NO_PROXY";

/// The part of Config::from_env() that picks the proxy (after every other variable, so that the
/// OpenAI base URL's scheme is known): GLMPROXY_PROXY when `lookup` has it at all ("" / "none" /
/// "direct" = no proxy), else https_proxy/HTTPS_PROXY or http_proxy by that scheme, then
/// all_proxy/ALL_PROXY (a value without "scheme://" is taken as http://, as libcurl does);
/// GLMPROXY_NO_PROXY when present, else no_proxy/NO_PROXY. Sets upstream.proxy, proxy_source
/// and no_proxy; bad values add to `problems`, proxy passwords to `secrets`.
void apply_proxy_env(const std::function<std::optional<std::string>(std::string_view)>& lookup,
                     Config& config, std::vector<std::string>& problems,
                     std::vector<std::string>& secrets);

}  // namespace glmproxy::detail
