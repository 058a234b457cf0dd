#include "glmproxy/log.hpp"

#include "core/strings.hpp"

namespace glmproxy {

std::string_view to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::Trace:
      return "trace";
    case LogLevel::Debug:
      return "debug";
    case LogLevel::Info:
      return "info";
    case LogLevel::Warn:
      return "warn";
    case LogLevel::Error:
      return "error";
    case LogLevel::Off:
      return "off";
  }
  return "unknown";
}

std::optional<LogLevel> parse_log_level(std::string_view name) noexcept {
  if (detail::iequals(name, "trace")) return LogLevel::Trace;
  if (detail::iequals(name, "debug")) return LogLevel::Debug;
  if (detail::iequals(name, "info")) return LogLevel::Info;
  if (detail::iequals(name, "warn") || detail::iequals(name, "warning")) return LogLevel::Warn;
  if (detail::iequals(name, "error")) return LogLevel::Error;
  if (detail::iequals(name, "off") || detail::iequals(name, "none")) return LogLevel::Off;
  return std::nullopt;
}

}  // namespace glmproxy
