// Config::from_env(): the variable table and the parsers behind it.

#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <variant>
#include <vector>

#include <fmt/format.h>

#include "config/variables.hpp"
#include "core/strings.hpp"
#include "core/url.hpp"
#include "glmproxy/config.hpp"

namespace glmproxy {

namespace detail {

namespace {

template <auto Section, auto Member>
FieldRef field(Config& c) {
  return &((c.*Section).*Member);
}

template <auto Member>
FieldRef top_field(Config& c) {
  return &(c.*Member);
}

constexpr std::int64_t kSecond = 1'000;
constexpr std::int64_t kMinute = 60 * kSecond;
constexpr std::int64_t kHour = 60 * kMinute;
constexpr std::int64_t kDay = 24 * kHour;
constexpr std::int64_t kMiB = 1 << 20;
constexpr std::int64_t kGiB = 1 << 30;
// Byte budgets are size_t; on a 32-bit target they cannot reach the 64-bit ranges below.
constexpr std::int64_t kMaxBytes =
    sizeof(std::size_t) >= 8 ? 1024 * kGiB : static_cast<std::int64_t>(SIZE_MAX);

using C = Config;

// The ranges are documented in docs/configuration.md; keep the two in step.
constexpr ConfigVariable kVariables[] = {
    // Upstream.
    {"ZAI_API_KEY", field<&C::upstream, &UpstreamConfig::api_key>, 0, 0, TextKind::Secret},
    {"ZAI_API_BASE", field<&C::upstream, &UpstreamConfig::openai_base_url>, 0, 0, TextKind::Url},
    {"ANTHROPIC_API_BASE", field<&C::upstream, &UpstreamConfig::anthropic_base_url>, 0, 0,
     TextKind::Url},
    {"DEFAULT_MODEL", field<&C::upstream, &UpstreamConfig::default_model>, 0, 0, TextKind::Token},
    {"GLMPROXY_EMBEDDING_MODEL", field<&C::upstream, &UpstreamConfig::embedding_model>, 0, 0,
     TextKind::Token},
    {"GLMPROXY_ANTHROPIC_VERSION", field<&C::upstream, &UpstreamConfig::anthropic_version>, 0, 0,
     TextKind::Token},
    // File paths; validate() checks that they exist.
    {"GLMPROXY_CA_FILE", field<&C::upstream, &UpstreamConfig::ca_file>, 0, 0, TextKind::Any},
    {"GLMPROXY_CA_PATH", field<&C::upstream, &UpstreamConfig::ca_path>, 0, 0, TextKind::Any},
    // Read by apply_proxy_env() (present-but-empty counts), validated and described here.
    {kProxyVariable, field<&C::upstream, &UpstreamConfig::proxy>, 0, 0, TextKind::Proxy},
    {kNoProxyVariable, field<&C::upstream, &UpstreamConfig::no_proxy>, 0, 0, TextKind::Any},
    // Timeouts.
    {"GLMPROXY_CONNECT_TIMEOUT_MS", field<&C::timeouts, &TimeoutConfig::connect>, 1, 10 * kMinute},
    {"GLMPROXY_FIRST_BYTE_TIMEOUT_MS", field<&C::timeouts, &TimeoutConfig::first_byte>, 1,
     1 * kDay},
    {"GLMPROXY_STREAM_IDLE_TIMEOUT_MS", field<&C::timeouts, &TimeoutConfig::stream_idle>, 1,
     1 * kDay},
    {"GLMPROXY_TOTAL_TIMEOUT_MS", field<&C::timeouts, &TimeoutConfig::total>, 1, 1 * kDay},
    // Retries.
    {"GLMPROXY_MAX_ATTEMPTS", field<&C::retry, &RetryConfig::max_attempts>, 1, 20},
    {"GLMPROXY_RETRY_BASE_DELAY_MS", field<&C::retry, &RetryConfig::base_delay>, 0, 10 * kMinute},
    {"GLMPROXY_RETRY_MAX_DELAY_MS", field<&C::retry, &RetryConfig::max_delay>, 0, 1 * kHour},
    {"GLMPROXY_RETRY_AFTER_MAX_MS", field<&C::retry, &RetryConfig::retry_after_cap>, 0, 1 * kDay},
    // Connection pool.
    {"POOL_MIN_CONNECTIONS", field<&C::pool, &PoolConfig::min_connections>, 0, 10'000},
    {"POOL_MAX_CONNECTIONS", field<&C::pool, &PoolConfig::max_connections>, 1, 10'000},
    {"POOL_WARM", field<&C::pool, &PoolConfig::warm>},
    {"POOL_ACQUIRE_TIMEOUT", field<&C::pool, &PoolConfig::acquire_timeout>, 0, 1 * kHour},
    {"DISABLE_CONNECTION_POOL", field<&C::pool, &PoolConfig::disabled>},
    {"GLMPROXY_POOL_MAX_IDLE_MS", field<&C::pool, &PoolConfig::max_idle>, 1 * kSecond, 1 * kDay},
    // Upstream protection.
    {"GLMPROXY_MODEL_CONCURRENCY", field<&C::admission, &AdmissionConfig::model_concurrency>, 0,
     10'000},
    {"GLMPROXY_AIMD_INCREASE_INTERVAL_MS",
     field<&C::admission, &AdmissionConfig::increase_interval>, 0, 1 * kHour},
    {"GLMPROXY_BREAKER_FAILURES", field<&C::admission, &AdmissionConfig::breaker_failures>, 0,
     1'000'000},
    {"GLMPROXY_BREAKER_WINDOW_MS", field<&C::admission, &AdmissionConfig::breaker_window>, 1,
     1 * kDay},
    {"GLMPROXY_BREAKER_COOLDOWN_MS", field<&C::admission, &AdmissionConfig::breaker_cooldown>, 1,
     1 * kDay},
    // Response cache.
    {"CACHE_ENABLED", field<&C::cache, &CacheConfig::enabled>},
    {"CACHE_TTL_MS", field<&C::cache, &CacheConfig::ttl>, 1, 30 * kDay},
    {"CACHE_MAX_SIZE", field<&C::cache, &CacheConfig::max_entries>, 0, 100'000'000},
    {"GLMPROXY_CACHE_MAX_BYTES", field<&C::cache, &CacheConfig::max_bytes>, 0, kMaxBytes},
    {"GLMPROXY_COALESCE_ENABLED", field<&C::cache, &CacheConfig::coalesce>},
    // Batching.
    {"BATCHING_ENABLED", field<&C::batch, &BatchConfig::enabled>},
    {"BATCH_WINDOW_MS", field<&C::batch, &BatchConfig::window>, 1, 1 * kMinute},
    {"BATCH_MAX_SIZE", field<&C::batch, &BatchConfig::max_size>, 1, 10'000},
    {"BATCH_MAX_QUEUE_SIZE", field<&C::batch, &BatchConfig::max_queue_size>, 1, 10'000'000},
    // Streaming.
    {"STREAM_REQUEST_CHUNK_SIZE", field<&C::stream, &StreamConfig::request_chunk_size>, 1024,
     16 * kMiB},
    // libcurl caps CURLOPT_BUFFERSIZE at CURL_MAX_READ_SIZE (512 KiB) and floors it at 1 KiB.
    {"STREAM_RESPONSE_CHUNK_SIZE", field<&C::stream, &StreamConfig::response_chunk_size>, 1024,
     512 * 1024},
    {"STREAM_BUFFER_POOL_ENABLED", field<&C::stream, &StreamConfig::buffer_pool_enabled>},
    {"GLMPROXY_SSE_MAX_LINE_BYTES", field<&C::stream, &StreamConfig::max_line_bytes>, 1024,
     1 * kGiB},
    {"GLMPROXY_SSE_MAX_EVENT_BYTES", field<&C::stream, &StreamConfig::max_event_bytes>, 1024,
     1 * kGiB},
    {"GLMPROXY_MAX_RESPONSE_BYTES", field<&C::stream, &StreamConfig::max_response_bytes>, 4096,
     std::min<std::int64_t>(4 * kGiB, kMaxBytes)},
    // Tenant keys.
    {"APIKEYS_FILE", field<&C::keys, &KeysConfig::file>, 0, 0, TextKind::Any},
    {"APIKEY_CACHE_SIZE", field<&C::keys, &KeysConfig::cache_size>, 1, 100'000'000},
    {"APIKEY_CACHE_TTL_MS", field<&C::keys, &KeysConfig::cache_ttl>, 1, 30 * kDay},
    // Usage persistence.
    {"RATE_LIMIT_BATCH_INTERVAL_MS", field<&C::rate_limit, &RateLimitConfig::batch_interval>, 1,
     1 * kHour},
    {"RATE_LIMIT_MAX_BATCH_SIZE", field<&C::rate_limit, &RateLimitConfig::max_batch_size>, 1,
     1'000'000},
    // Metrics and profiling.
    {"METRICS_ENABLED", field<&C::metrics, &MetricsConfig::enabled>},
    {"METRICS_RETENTION_MS", field<&C::metrics, &MetricsConfig::retention>, 1 * kSecond, 7 * kDay},
    {"METRICS_AGGREGATION_INTERVAL_MS", field<&C::metrics, &MetricsConfig::aggregation_interval>,
     10, 1 * kDay},
    {"PROFILING_ENABLED", field<&C::profiling, &ProfilingConfig::enabled>},
    {"GLMPROXY_PROFILING_RING_SIZE", field<&C::profiling, &ProfilingConfig::ring_size>, 1,
     10'000'000},
    // The admin endpoint (glmproxy::admin).
    {"GLMPROXY_ADMIN_ENABLED", field<&C::admin, &AdminConfig::enabled>},
    {"GLMPROXY_ADMIN_HOST", field<&C::admin, &AdminConfig::host>, 0, 0, TextKind::Token},
    {"GLMPROXY_ADMIN_PORT", field<&C::admin, &AdminConfig::port>, 0, 65535},
    {"GLMPROXY_ADMIN_TOKEN", field<&C::admin, &AdminConfig::token>, 0, 0, TextKind::Secret},
    // Logging.
    {"GLMPROXY_LOG_LEVEL", top_field<&C::log_level>},
    // Callbacks.
    {"GLMPROXY_CALLBACK_THREADS", top_field<&C::callback_threads>, 1, 256},
};

// The one boolean parser: 1/0/true/false/yes/no/on/off in any case.
std::optional<bool> parse_bool(std::string_view s) noexcept {
  for (std::string_view t : {"1", "true", "yes", "on"}) {
    if (iequals(s, t)) return true;
  }
  for (std::string_view f : {"0", "false", "no", "off"}) {
    if (iequals(s, f)) return false;
  }
  return std::nullopt;
}

// Digits only (no sign, no blanks, no fraction or exponent), all of `s`, within [min, max].
std::optional<std::int64_t> parse_int(std::string_view s, std::int64_t min,
                                      std::int64_t max) noexcept {
  if (s.empty() || s.front() < '0' || s.front() > '9') return std::nullopt;
  std::int64_t v = 0;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc{} || ptr != end || v < min || v > max) return std::nullopt;
  return v;
}

// Parses `value` (trimmed, non-empty) into the field `variable` names; "" or a message.
std::string apply(const ConfigVariable& variable, std::string_view value, Config& config) {
  const std::string_view name = variable.name;
  auto int_or_message = [&](auto assign) -> std::string {
    if (auto v = parse_int(value, variable.min, variable.max)) {
      assign(*v);
      return {};
    }
    return fmt::format("{} must be an integer in [{}, {}], got {}", name, variable.min,
                       variable.max, quoted(value));
  };
  auto visitor = [&](auto* target) -> std::string {
    using T = std::remove_pointer_t<decltype(target)>;
    if constexpr (std::is_same_v<T, std::string>) {
      std::string message = check_text(variable, value);
      if (message.empty()) *target = std::string(value);
      return message;
    } else if constexpr (std::is_same_v<T, bool>) {
      if (auto b = parse_bool(value)) {
        *target = *b;
        return {};
      }
      return fmt::format("{} must be a boolean (1/0/true/false/yes/no/on/off), got {}", name,
                         quoted(value));
    } else if constexpr (std::is_same_v<T, LogLevel>) {
      if (auto level = parse_log_level(value)) {
        *target = *level;
        return {};
      }
      return fmt::format("{} must be one of trace/debug/info/warn/error/off, got {}", name,
                         quoted(value));
    } else if constexpr (std::is_same_v<T, Milliseconds>) {
      return int_or_message([&](std::int64_t v) { *target = Milliseconds{v}; });
    } else {
      static_assert(std::is_same_v<T, int> || std::is_same_v<T, std::size_t>);
      // The range check has already bounded v to the table's [min, max], which fits T.
      return int_or_message([&](std::int64_t v) { *target = static_cast<T>(v); });
    }
  };
  return std::visit(visitor, variable.field(config));
}

std::string preset_names() {
  std::string names;
  for (Preset p : {Preset::Default, Preset::LowLatency, Preset::HighThroughput, Preset::Development,
                   Preset::Edge}) {
    if (!names.empty()) names += '/';
    names += to_string(p);
  }
  return names;
}

}  // namespace

std::span<const ConfigVariable> config_variables() noexcept { return kVariables; }

}  // namespace detail

Result<Config> Config::from_env() {
  return from_env([](std::string_view name) -> std::optional<std::string> {
    // getenv needs a NUL-terminated name; the table's names are literals, but do not rely on it.
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  });
}

Result<Config> Config::from_env(
    const std::function<std::optional<std::string>(std::string_view)>& lookup) try {
  if (!lookup) {
    return make_error(ErrorCode::InvalidArgument, "Config::from_env: lookup function is empty");
  }
  // Surrounding blanks are dropped and a blank value counts as unset.
  auto read = [&](std::string_view name) -> std::optional<std::string> {
    std::optional<std::string> raw = lookup(name);
    if (!raw) return std::nullopt;
    std::string_view trimmed = detail::trim(*raw);
    if (trimmed.empty()) return std::nullopt;
    return std::string(trimmed);
  };

  std::vector<std::string> problems;
  Config config;
  if (std::optional<std::string> name = read("GLMPROXY_PRESET")) {
    if (std::optional<Preset> p = parse_preset(*name)) {
      config = preset(*p);
    } else {
      problems.push_back(fmt::format("GLMPROXY_PRESET must be one of {}, got {}",
                                     detail::preset_names(), detail::quoted(*name)));
    }
  }

  std::vector<std::string> secrets;  // to scrub from messages even when they are invalid
  for (const detail::ConfigVariable& variable : detail::config_variables()) {
    if (variable.name == detail::kProxyVariable || variable.name == detail::kNoProxyVariable) {
      continue;  // after the loop: they need the final base URL, and "" means something
    }
    std::optional<std::string> value = read(variable.name);
    if (!value) continue;
    if (variable.text == detail::TextKind::Secret) secrets.push_back(*value);
    if (variable.text == detail::TextKind::Url) {
      if (std::string_view password = detail::url_password(*value); !password.empty()) {
        secrets.emplace_back(password);
      }
    }
    std::string problem = detail::apply(variable, *value, config);
    if (!problem.empty()) problems.push_back(std::move(problem));
  }
  detail::apply_proxy_env(lookup, config, problems, secrets);
  if (!problems.empty()) return detail::invalid_config(problems, secrets);

  if (Result<void> valid = config.validate(); !valid) return std::move(valid).error();
  return config;
} catch (...) {
  // Nothing leaves the library as an exception.
  return make_error(ErrorCode::InvalidConfig,
                    "Config::from_env(): out of memory, or the lookup function threw");
}

}  // namespace glmproxy
