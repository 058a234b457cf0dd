// Config::validate(), Config::describe(), redact_key() and the message helpers they share with
// from_env().

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/variables.hpp"
#include "core/strings.hpp"
#include "core/url.hpp"
#include "glmproxy/config.hpp"

namespace glmproxy {

namespace {

constexpr std::string_view kEllipsis = "\xE2\x80\xA6";  // U+2026, UTF-8
constexpr std::size_t kMaxQuoted = 120;                 // bytes of a value echoed in a message

bool is_control(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7F;
}

bool has_control(std::string_view s) noexcept {
  for (char c : s) {
    if (is_control(c)) return true;
  }
  return false;
}

bool has_blank_or_control(std::string_view s) noexcept {
  for (char c : s) {
    if (c == ' ' || is_control(c)) return true;
  }
  return false;
}

bool is_port(std::string_view port) noexcept {
  if (port.empty() || port.size() > 5) return false;
  unsigned value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value >= 1 && value <= 65535;
}

bool is_host(std::string_view host) {
  if (host.empty()) return false;
  if (host.front() != '[') return host.find_first_of("[]") == std::string_view::npos;
  // An IPv6 literal: what inet_pton accepts between the brackets (no zone identifier).
  if (host.size() < 3 || host.back() != ']') return false;
  const std::string inner(host.substr(1, host.size() - 2));
  in6_addr address{};
  return ::inet_pton(AF_INET6, inner.c_str(), &address) == 1;
}

// One of `schemes` (any case) + "://", then a non-empty host (name, IPv4 or [IPv6] that
// inet_pton accepts) and an optional numeric port; no blanks or control characters anywhere.
// Userinfo is allowed; path and query too unless `authority_only` (a proxy: at most a "/").
// A fragment is judged by the caller.
bool is_url(std::string_view url, std::initializer_list<std::string_view> schemes,
            bool authority_only) {
  if (has_blank_or_control(url)) return false;
  const std::optional<detail::UrlParts> parts = detail::split_url(url);
  if (!parts) return false;
  bool scheme_ok = false;
  for (std::string_view scheme : schemes) {
    scheme_ok = scheme_ok || detail::iequals(parts->scheme, scheme);
  }
  if (!scheme_ok || !is_host(parts->host)) return false;
  if (parts->port && !is_port(*parts->port)) return false;
  if (authority_only && (parts->query || (!parts->path.empty() && parts->path != "/"))) {
    return false;
  }
  return true;
}

bool is_http_url(std::string_view url) {
  return is_url(url.substr(0, url.find('#')), {"http", "https"}, false);
}

bool is_proxy_url(std::string_view url) {
  return url.find('#') == std::string_view::npos &&
         is_url(url, {"http", "https", "socks4", "socks4a", "socks5", "socks5h"}, true);
}

// Control characters as \n, \r, \t or \xNN so a value cannot forge lines in a log; with
// `in_quotes`, '"' and '\\' are backslash-escaped too.
void append_escaped(std::string& out, std::string_view value, bool in_quotes) {
  for (char c : value) {
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '"':
      case '\\':
        if (in_quotes) out += '\\';
        out += c;
        break;
      default:
        if (is_control(c)) {
          out += fmt::format("\\x{:02X}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        } else {
          out += c;
        }
    }
  }
}

std::string escape(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  append_escaped(out, value, false);
  return out;
}

// Byte offset where the code point after the first `n` begins, or npos when `s` has <= n.
std::size_t code_point_offset(std::string_view s, std::size_t n) noexcept {
  std::size_t seen = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool continuation = (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80;
    if (continuation) continue;
    if (seen == n) return i;
    ++seen;
  }
  return std::string_view::npos;
}

template <class T>
std::int64_t as_int64(T value) noexcept {
  if constexpr (std::is_same_v<T, Milliseconds>) {
    return static_cast<std::int64_t>(value.count());
  } else if constexpr (std::is_same_v<T, std::size_t>) {
    // Larger than any range in the table either way.
    return value > static_cast<std::size_t>(INT64_MAX) ? INT64_MAX
                                                       : static_cast<std::int64_t>(value);
  } else {
    return static_cast<std::int64_t>(value);
  }
}

std::string value_text(const detail::ConfigVariable& variable, const Config& config) {
  auto visitor = [&](auto* p) -> std::string {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(p)>>;
    if constexpr (std::is_same_v<T, std::string>) {
      // Escaped like every other value: a key set in code with a control character in its
      // first four would otherwise break the line (or forge one) in a log.
      if (variable.text == detail::TextKind::Secret) return escape(redact_key(*p));
      if (variable.text == detail::TextKind::Url) return escape(detail::redact_url(*p));
      if (variable.text == detail::TextKind::Proxy) {
        // The one line that says whether requests go direct, and which variable decided.
        const std::string& source = config.upstream.proxy_source;
        if (p->empty()) return " (direct)";
        std::string line = escape(detail::redact_url(*p));
        if (!source.empty() && source != detail::kProxyVariable) line += " (from " + source + ")";
        return line;
      }
      return escape(*p);
    } else if constexpr (std::is_same_v<T, bool>) {
      return *p ? "true" : "false";
    } else if constexpr (std::is_same_v<T, LogLevel>) {
      return std::string(to_string(*p));
    } else if constexpr (std::is_same_v<T, Milliseconds>) {
      return std::to_string(p->count());
    } else {
      return std::to_string(*p);
    }
  };
  return std::visit(visitor, detail::read_field(variable, config));
}

// Range and text rules of one variable's current value; "" when fine.
std::string check_value(const detail::ConfigVariable& variable, const Config& config) {
  auto visitor = [&](auto* p) -> std::string {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(p)>>;
    if constexpr (std::is_same_v<T, std::string>) {
      std::string problem = detail::check_text(variable, *p);
      const std::string& source = config.upstream.proxy_source;
      if (!problem.empty() && variable.text == detail::TextKind::Proxy && !source.empty() &&
          source != detail::kProxyVariable) {
        problem += " (from " + source + ")";
      }
      return problem;
    } else if constexpr (std::is_same_v<T, bool>) {
      return {};
    } else if constexpr (std::is_same_v<T, LogLevel>) {
      if (to_string(*p) != "unknown") return {};
      return fmt::format("{} must be one of trace/debug/info/warn/error/off, got LogLevel({})",
                         variable.name, static_cast<int>(*p));
    } else {
      const std::int64_t v = as_int64(*p);
      if (v >= variable.min && v <= variable.max) return {};
      return fmt::format("{} must be an integer in [{}, {}], got {}", variable.name, variable.min,
                         variable.max, value_text(variable, config));
    }
  };
  return std::visit(visitor, detail::read_field(variable, config));
}

// Appends a problem when `path` is set but is not a readable regular file (`directory` false)
// or not a directory (curl would only say so at the first request, as a certificate error).
// POSIX stat rather than <filesystem>, whose std::quoted would be found by ADL for the
// unqualified quoted() calls above.
void require_path(std::vector<std::string>& problems, std::string_view name,
                  const std::string& path, bool directory) {
  if (path.empty()) return;
  struct stat st {};
  const char* why = nullptr;
  if (::stat(path.c_str(), &st) != 0) {
    why = "it does not exist";
  } else if (directory && !S_ISDIR(st.st_mode)) {
    why = "not a directory";
  } else if (!directory && !S_ISREG(st.st_mode)) {
    why = "not a regular file";
  } else if (!directory && ::access(path.c_str(), R_OK) != 0) {
    why = "not readable";
  }
  if (why != nullptr) {
    problems.push_back(fmt::format("{} must name {}, got {} ({})", name,
                                   directory ? "a directory" : "a readable regular file",
                                   detail::quoted(path), why));
  }
}

// Appends "A (a) must not exceed B (b)" when a > b.
template <class T>
void require_not_above(std::vector<std::string>& problems, std::string_view a_name, T a,
                       std::string_view b_name, T b) {
  if (as_int64(a) > as_int64(b)) {
    problems.push_back(
        fmt::format("{} ({}) must not exceed {} ({})", a_name, as_int64(a), b_name, as_int64(b)));
  }
}

}  // namespace

namespace detail {

std::string quoted(std::string_view value) {
  std::string_view shown = value;
  bool cut = false;
  if (shown.size() > kMaxQuoted) {
    std::size_t end = kMaxQuoted;
    // Do not split a UTF-8 sequence.
    while (end > 0 && (static_cast<unsigned char>(shown[end]) & 0xC0) == 0x80) --end;
    shown = shown.substr(0, end);
    cut = true;
  }
  std::string out = "\"";
  append_escaped(out, shown, true);
  if (cut) out += kEllipsis;
  out += '"';
  return out;
}

std::string check_text(const ConfigVariable& variable, std::string_view value) {
  switch (variable.text) {
    case TextKind::Any:
      if (!has_control(value)) return {};
      return fmt::format("{} must not contain control characters, got {}", variable.name,
                         quoted(value));
    case TextKind::Url:
      // Shown redacted: a URL's userinfo holds a password.
      if (!is_http_url(value)) {
        return fmt::format("{} must be an http:// or https:// URL with a host, got {}",
                           variable.name, quoted(redact_url(value)));
      }
      if (value.find('#') != std::string_view::npos) {
        return fmt::format(
            "{} must not have a fragment ('#...'), which is never sent to a server; "
            "got {}",
            variable.name, quoted(redact_url(value)));
      }
      return {};
    case TextKind::Proxy:
      if (value.empty() || is_proxy_url(value)) return {};
      return fmt::format(
          "{} must be \"\" (direct) or a proxy URL: http://, https://, socks4://, socks4a://, "
          "socks5:// or socks5h://, optionally user:pass@, a host and a port, nothing after; "
          "got {}",
          variable.name, quoted(redact_url(value)));
    case TextKind::Secret:
      if (!has_blank_or_control(value)) return {};
      return fmt::format("{} must not contain spaces or control characters, got {}", variable.name,
                         quoted(redact_key(value)));
    case TextKind::Token:
      if (value.empty()) return fmt::format("{} must not be empty", variable.name);
      if (!has_blank_or_control(value)) return {};
      return fmt::format("{} must be a name without spaces or control characters, got {}",
                         variable.name, quoted(value));
  }
  return {};
}

std::string scrub_secret(std::string text, std::string_view secret) {
  // Four characters or fewer would match ordinary text (a password "pw" in every word); such a
  // secret is never shown whole by redact_key() or redact_url() anyway.
  if (secret.size() <= 4) return text;
  const std::string replacement = redact_key(secret);
  for (std::size_t pos = text.find(secret); pos != std::string::npos;
       pos = text.find(secret, pos + replacement.size())) {
    text.replace(pos, secret.size(), replacement);
  }
  return text;
}

std::string scrub_secrets(std::string text, std::span<const std::string> secrets) {
  // Longest first, so that a secret containing another is replaced whole.
  std::vector<std::string_view> order(secrets.begin(), secrets.end());
  std::sort(order.begin(), order.end(),
            [](std::string_view a, std::string_view b) { return a.size() > b.size(); });
  for (std::string_view secret : order) text = scrub_secret(std::move(text), secret);
  return text;
}

Error invalid_config(std::span<const std::string> problems, std::span<const std::string> secrets) {
  std::string message = "invalid configuration: ";
  for (std::size_t i = 0; i < problems.size(); ++i) {
    if (i != 0) message += "; ";
    message += problems[i];
  }
  // A key pasted into the wrong variable would otherwise be echoed back.
  return make_error(ErrorCode::InvalidConfig, scrub_secrets(std::move(message), secrets));
}

std::vector<std::string> config_secrets(const Config& config) {
  std::vector<std::string> secrets = {config.upstream.api_key, config.admin.token};
  for (const std::string* url : {&config.upstream.openai_base_url,
                                 &config.upstream.anthropic_base_url, &config.upstream.proxy}) {
    if (std::string_view password = url_password(*url); !password.empty()) {
      secrets.emplace_back(password);
      // libcurl sends it decoded ("p%40ss" as "p@ss"): an echo would show that form.
      std::string decoded = percent_decode(password);
      if (decoded != password) secrets.push_back(std::move(decoded));
    }
  }
  return secrets;
}

}  // namespace detail

Result<void> Config::validate() const try {
  std::vector<std::string> problems;
  for (const detail::ConfigVariable& variable : detail::config_variables()) {
    std::string problem = check_value(variable, *this);
    if (!problem.empty()) problems.push_back(std::move(problem));
  }

  // Contradictions between knobs, each naming both variables and their values.
  require_not_above(problems, "POOL_MIN_CONNECTIONS", pool.min_connections, "POOL_MAX_CONNECTIONS",
                    pool.max_connections);
  require_not_above(problems, "BATCH_MAX_SIZE", batch.max_size, "BATCH_MAX_QUEUE_SIZE",
                    batch.max_queue_size);
  require_not_above(problems, "GLMPROXY_RETRY_BASE_DELAY_MS", retry.base_delay,
                    "GLMPROXY_RETRY_MAX_DELAY_MS", retry.max_delay);
  // A connect timeout above the overall deadline can never fire and is surely a typo. The
  // first-byte and idle timeouts may exceed it: the total deadline simply wins, and lowering
  // only GLMPROXY_TOTAL_TIMEOUT_MS is a common, sensible adjustment.
  require_not_above(problems, "GLMPROXY_CONNECT_TIMEOUT_MS", timeouts.connect,
                    "GLMPROXY_TOTAL_TIMEOUT_MS", timeouts.total);
  require_not_above(problems, "METRICS_AGGREGATION_INTERVAL_MS", metrics.aggregation_interval,
                    "METRICS_RETENTION_MS", metrics.retention);
  require_not_above(problems, "GLMPROXY_SSE_MAX_LINE_BYTES", stream.max_line_bytes,
                    "GLMPROXY_SSE_MAX_EVENT_BYTES", stream.max_event_bytes);
  if (!is_loopback_host(admin.host)) {
    problems.push_back(fmt::format(
        "GLMPROXY_ADMIN_HOST must be a loopback address (127.x.y.z, ::1 or localhost), got {}",
        detail::quoted(admin.host)));
  }
  require_path(problems, "GLMPROXY_CA_FILE", upstream.ca_file, /*directory=*/false);
  require_path(problems, "GLMPROXY_CA_PATH", upstream.ca_path, /*directory=*/true);
  if (cache.enabled && cache.max_entries == 0) {
    problems.emplace_back(
        "CACHE_ENABLED is true but CACHE_MAX_SIZE is 0 (nothing could be cached)");
  }
  if (cache.enabled && cache.max_bytes == 0) {
    problems.emplace_back(
        "CACHE_ENABLED is true but GLMPROXY_CACHE_MAX_BYTES is 0 (nothing could be cached)");
  }

  if (problems.empty()) return {};
  const std::vector<std::string> secrets = detail::config_secrets(*this);
  return detail::invalid_config(problems, secrets);
} catch (...) {
  // Nothing leaves the library as an exception.
  return make_error(ErrorCode::Internal,
                    "Config::validate(): out of memory or an unexpected exception");
}

std::string Config::describe() const try {
  std::string out;
  for (const detail::ConfigVariable& variable : detail::config_variables()) {
    out += variable.name;
    out += '=';
    out += value_text(variable, *this);
    out += '\n';
  }
  // The key is redacted in its own line; this catches it pasted into another field, and the
  // passwords of URLs.
  const std::vector<std::string> secrets = detail::config_secrets(*this);
  return detail::scrub_secrets(std::move(out), secrets);
} catch (...) {
  // Nothing leaves the library as an exception.
  return std::string();
}

std::string redact_key(std::string_view key) {
  if (key.empty()) return {};
  // Four code points, not bytes, so a multi-byte character is never cut in half. A key of
  // four or fewer is shown as "…" alone: showing all of it would not be redaction.
  const std::size_t end = code_point_offset(key, 4);
  if (end == std::string_view::npos) return std::string(kEllipsis);
  std::string out(key.substr(0, end));
  out += kEllipsis;
  return out;
}

}  // namespace glmproxy
