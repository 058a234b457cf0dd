#pragma once

#include <functional>
#include <optional>
#include <string_view>

#include "glmproxy/export.hpp"

namespace glmproxy {

enum class LogLevel { Trace, Debug, Info, Warn, Error, Off };

/// "trace", "debug", "info", "warn", "error", "off".
GLMPROXY_API std::string_view to_string(LogLevel level) noexcept;
/// Accepts the names above in any case ("warning" too).
GLMPROXY_API std::optional<LogLevel> parse_log_level(std::string_view name) noexcept;

/// Receives the library's log lines. glmproxy itself never writes to stdout or stderr.
/// The string_view is valid only during the call. Called from whichever thread logs (caller
/// threads, the client's I/O thread and, with APIKEYS_FILE, its usage writer thread), so the
/// callback must be thread-safe. Messages never contain an API key.
using LogCallback = std::function<void(LogLevel level, std::string_view message)>;

}  // namespace glmproxy
