#pragma once

// The table of environment variables behind Config (not public). One row per variable drives
// from_env() (parsing), validate() (ranges and text rules) and describe() (NAME=value), so a
// knob cannot be parsed but left unvalidated, or validated but missing from describe().

#include <cstdint>
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

/// A loopback address: 127.0.0.0/8 in dotted decimal, "::1" or "localhost" (where the admin
/// endpoint may listen, and the Host names it answers).
bool is_loopback_host(std::string_view host);

/// The password of a URL's user:pass@ userinfo ("" when it has none).
std::string url_password(std::string_view url);

/// Every secret a Config holds: the upstream key, the admin token, the passwords of its URLs.
std::vector<std::string> config_secrets(const Config& config);

/// scrub_secret() for each of `secrets` (the API key, the admin token, ...).
std::string scrub_secrets(std::string text, std::span<const std::string> secrets);

/// "invalid configuration: " + problems joined with "; ", with every secret scrubbed.
Error invalid_config(std::span<const std::string> problems, std::span<const std::string> secrets);

}  // namespace glmproxy::detail
