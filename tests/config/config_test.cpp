#include "glmproxy/config.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/variables.hpp"

using namespace std::chrono_literals;
using glmproxy::Config;
using glmproxy::ErrorCode;
using glmproxy::LogLevel;
using glmproxy::Preset;
using glmproxy::Result;

namespace {

using Env = std::map<std::string, std::string, std::less<>>;

Result<Config> load(const Env& env) {
  return Config::from_env([&env](std::string_view name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
}

// The message of a failed load, or a marker that makes the calling CHECK fail readably.
std::string error_of(const Result<Config>& r) {
  if (r) return "<loaded without error>";
  CHECK(r.error().code == ErrorCode::InvalidConfig);
  return r.error().message;
}

std::string error_of(const Result<void>& r) {
  if (r) return "<valid>";
  CHECK(r.error().code == ErrorCode::InvalidConfig);
  return r.error().message;
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

constexpr std::string_view kEllipsis = "\xE2\x80\xA6";

}  // namespace

TEST_CASE("defaults are the tuning guide's", "[config][defaults]") {
  const Config c;
  // ARCHITECTURE.md "What each knob does".
  CHECK(c.pool.min_connections == 2);
  CHECK(c.pool.max_connections == 10);
  CHECK_FALSE(c.pool.warm);
  CHECK(c.pool.acquire_timeout == 5000ms);
  CHECK_FALSE(c.pool.disabled);
  CHECK_FALSE(c.cache.enabled);
  CHECK(c.cache.ttl == 300'000ms);
  CHECK(c.cache.max_entries == 1000);
  CHECK_FALSE(c.batch.enabled);
  CHECK(c.batch.window == 50ms);
  CHECK(c.batch.max_size == 10);
  CHECK(c.batch.max_queue_size == 1000);
  CHECK(c.stream.request_chunk_size == 32'768);
  CHECK(c.stream.response_chunk_size == 32'768);
  CHECK(c.stream.buffer_pool_enabled);
  CHECK(c.keys.cache_size == 1000);
  CHECK(c.keys.cache_ttl == 300'000ms);
  CHECK(c.rate_limit.batch_interval == 5000ms);
  CHECK(c.rate_limit.max_batch_size == 100);
  CHECK(c.metrics.enabled);
  CHECK(c.metrics.retention == 60'000ms);
  CHECK(c.metrics.aggregation_interval == 1000ms);
  CHECK_FALSE(c.profiling.enabled);
  CHECK(c.keys.file.empty());
  CHECK(c.upstream.api_key.empty());
  CHECK(c.upstream.openai_base_url == "https://api.z.ai/api/paas/v4");
  CHECK(c.upstream.anthropic_base_url == "https://api.z.ai/api/anthropic");
  CHECK(c.upstream.default_model == "glm-4.7");
  // config.hpp's own defaults for the knobs the guide does not have.
  CHECK(c.upstream.anthropic_version == "2023-06-01");
  CHECK(c.timeouts.connect == 10'000ms);
  CHECK(c.timeouts.first_byte == 300'000ms);
  CHECK(c.timeouts.stream_idle == 120'000ms);
  CHECK(c.timeouts.total == 600'000ms);
  CHECK(c.retry.max_attempts == 3);
  CHECK(c.retry.base_delay == 500ms);
  CHECK(c.retry.max_delay == 8000ms);
  CHECK(c.retry.retry_after_cap == 60'000ms);
  CHECK(c.pool.max_idle == 30'000ms);
  CHECK(c.cache.max_bytes == 64u << 20);
  CHECK(c.stream.max_line_bytes == 1u << 20);
  CHECK(c.stream.max_event_bytes == 8u << 20);
  CHECK(c.profiling.ring_size == 1000);
  CHECK(c.log_level == LogLevel::Warn);

  CHECK(c.validate());
  CHECK(Config::preset(Preset::Default).describe() == c.describe());
}

TEST_CASE("from_env with nothing set gives the defaults", "[config][env]") {
  Result<Config> r = load({});
  REQUIRE(r);
  CHECK(r->describe() == Config{}.describe());
}

TEST_CASE("from_env with an empty lookup function is an error, not a throw", "[config][env]") {
  Result<Config> r = Config::from_env({});
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::InvalidArgument);
}

TEST_CASE("every boolean spelling is accepted", "[config][env]") {
  for (const char* yes : {"1", "true", "TRUE", "True", "yes", "YES", "on", "On"}) {
    INFO("CACHE_ENABLED=" << yes);
    Result<Config> r = load({{"CACHE_ENABLED", yes}});
    REQUIRE(r);
    CHECK(r->cache.enabled);
  }
  for (const char* no : {"0", "false", "FALSE", "no", "No", "off", "OFF"}) {
    INFO("METRICS_ENABLED=" << no);
    Result<Config> r = load({{"METRICS_ENABLED", no}});
    REQUIRE(r);
    CHECK_FALSE(r->metrics.enabled);
  }
  for (const char* bad : {"maybe", "2", "y", "n", "enabled", "truee", "-1", "t"}) {
    INFO("CACHE_ENABLED=" << bad);
    std::string message = error_of(load({{"CACHE_ENABLED", bad}}));
    CHECK(contains(message, "CACHE_ENABLED must be a boolean (1/0/true/false/yes/no/on/off)"));
  }
}

TEST_CASE("all bad values are reported together", "[config][env]") {
  Result<Config> r = load({{"POOL_MAX_CONNECTIONS", "ten"}, {"CACHE_ENABLED", "maybe"}});
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::InvalidConfig);
  const std::string& message = r.error().message;
  CHECK(message.rfind("invalid configuration: ", 0) == 0);
  CHECK(contains(message, R"(POOL_MAX_CONNECTIONS must be an integer in [1, 10000], got "ten")"));
  CHECK(contains(message,
                 R"(CACHE_ENABLED must be a boolean (1/0/true/false/yes/no/on/off), got "maybe")"));
  CHECK(contains(message, "; "));
  CHECK_FALSE(r.error().retryable());
}

TEST_CASE("integers are whole, unsigned and in range", "[config][env]") {
  SECTION("malformed") {
    for (const char* bad :
         {"10.5", "1e3", "+5", "-5", "0x10", "5 5", "five", "5ms", "", "99999999999999999999999"}) {
      INFO("POOL_MAX_CONNECTIONS=" << bad);
      Result<Config> r = load({{"POOL_MAX_CONNECTIONS", bad}});
      if (std::string_view(bad).empty()) {
        CHECK(r);  // empty is unset
        continue;
      }
      CHECK(contains(error_of(r),
                     std::string("POOL_MAX_CONNECTIONS must be an integer in [1, 10000], got \"") +
                         bad + "\""));
    }
  }
  SECTION("out of range") {
    CHECK(contains(error_of(load({{"POOL_MAX_CONNECTIONS", "0"}})), R"(got "0")"));
    CHECK(contains(error_of(load({{"POOL_MAX_CONNECTIONS", "10001"}})), R"(got "10001")"));
    CHECK(contains(error_of(load({{"GLMPROXY_MAX_ATTEMPTS", "21"}})),
                   R"(GLMPROXY_MAX_ATTEMPTS must be an integer in [1, 20], got "21")"));
    CHECK(contains(error_of(load({{"STREAM_RESPONSE_CHUNK_SIZE", "524289"}})),
                   "STREAM_RESPONSE_CHUNK_SIZE must be an integer in [1024, 524288]"));
    CHECK(contains(error_of(load({{"STREAM_REQUEST_CHUNK_SIZE", "1023"}})),
                   "STREAM_REQUEST_CHUNK_SIZE must be an integer in [1024, 16777216]"));
    CHECK(contains(error_of(load({{"CACHE_TTL_MS", "0"}})), "CACHE_TTL_MS"));
  }
  SECTION("the edges of a range are accepted") {
    Result<Config> r = load({{"POOL_MAX_CONNECTIONS", "10000"},
                             {"POOL_MIN_CONNECTIONS", "0"},
                             {"STREAM_RESPONSE_CHUNK_SIZE", "524288"},
                             {"STREAM_REQUEST_CHUNK_SIZE", "1024"},
                             {"GLMPROXY_MAX_ATTEMPTS", "20"}});
    REQUIRE(r);
    CHECK(r->pool.max_connections == 10000);
    CHECK(r->pool.min_connections == 0);
    CHECK(r->stream.response_chunk_size == 524'288);
    CHECK(r->stream.request_chunk_size == 1024);
    CHECK(r->retry.max_attempts == 20);
  }
  SECTION("leading zeros are digits too") {
    Result<Config> r = load({{"POOL_MAX_CONNECTIONS", "007"}});
    REQUIRE(r);
    CHECK(r->pool.max_connections == 7);
  }
}

TEST_CASE("values are trimmed and blank means unset", "[config][env]") {
  Result<Config> r = load({{"POOL_MAX_CONNECTIONS", " 7 "},
                           {"CACHE_ENABLED", "\tyes\n"},
                           {"DEFAULT_MODEL", "  glm-4.5-air  "},
                           {"ZAI_API_BASE", "   "},
                           {"CACHE_TTL_MS", ""}});
  REQUIRE(r);
  CHECK(r->pool.max_connections == 7);
  CHECK(r->cache.enabled);
  CHECK(r->upstream.default_model == "glm-4.5-air");
  CHECK(r->upstream.openai_base_url == Config{}.upstream.openai_base_url);
  CHECK(r->cache.ttl == Config{}.cache.ttl);
}

namespace {

struct Knob {
  const char* name;
  const char* value;
  std::function<bool(const Config&)> is_set;  // true once `value` reached the field
};

// Written independently of the parser's table, so a variable dropped from the parser fails here.
const std::vector<Knob>& knobs() {
  static const std::vector<Knob> kKnobs = {
      {"ZAI_API_KEY", "sk-test-0123456789",
       [](const Config& c) { return c.upstream.api_key == "sk-test-0123456789"; }},
      {"ZAI_API_BASE", "https://api.z.ai/api/coding/paas/v4",
       [](const Config& c) {
         return c.upstream.openai_base_url == "https://api.z.ai/api/coding/paas/v4";
       }},
      {"ANTHROPIC_API_BASE", "http://127.0.0.1:8080/anthropic",
       [](const Config& c) {
         return c.upstream.anthropic_base_url == "http://127.0.0.1:8080/anthropic";
       }},
      {"DEFAULT_MODEL", "glm-4.5-air",
       [](const Config& c) { return c.upstream.default_model == "glm-4.5-air"; }},
      {"GLMPROXY_ANTHROPIC_VERSION", "2024-01-01",
       [](const Config& c) { return c.upstream.anthropic_version == "2024-01-01"; }},
      {"GLMPROXY_PROXY", "http://proxy.example:3128",
       [](const Config& c) { return c.upstream.proxy == "http://proxy.example:3128"; }},
      {"GLMPROXY_NO_PROXY", "localhost,.internal",
       [](const Config& c) { return c.upstream.no_proxy == "localhost,.internal"; }},
      {"GLMPROXY_EMBEDDING_MODEL", "embedding-2",
       [](const Config& c) { return c.upstream.embedding_model == "embedding-2"; }},
      {"GLMPROXY_CONNECT_TIMEOUT_MS", "2500",
       [](const Config& c) { return c.timeouts.connect == 2500ms; }},
      {"GLMPROXY_FIRST_BYTE_TIMEOUT_MS", "45000",
       [](const Config& c) { return c.timeouts.first_byte == 45'000ms; }},
      {"GLMPROXY_STREAM_IDLE_TIMEOUT_MS", "15000",
       [](const Config& c) { return c.timeouts.stream_idle == 15'000ms; }},
      {"GLMPROXY_TOTAL_TIMEOUT_MS", "700000",
       [](const Config& c) { return c.timeouts.total == 700'000ms; }},
      {"GLMPROXY_MAX_ATTEMPTS", "5", [](const Config& c) { return c.retry.max_attempts == 5; }},
      {"GLMPROXY_RETRY_BASE_DELAY_MS", "750",
       [](const Config& c) { return c.retry.base_delay == 750ms; }},
      {"GLMPROXY_RETRY_MAX_DELAY_MS", "9000",
       [](const Config& c) { return c.retry.max_delay == 9000ms; }},
      {"GLMPROXY_RETRY_AFTER_MAX_MS", "1000",
       [](const Config& c) { return c.retry.retry_after_cap == 1000ms; }},
      {"POOL_MIN_CONNECTIONS", "7", [](const Config& c) { return c.pool.min_connections == 7; }},
      {"POOL_MAX_CONNECTIONS", "33", [](const Config& c) { return c.pool.max_connections == 33; }},
      {"POOL_WARM", "true", [](const Config& c) { return c.pool.warm; }},
      {"POOL_ACQUIRE_TIMEOUT", "1234",
       [](const Config& c) { return c.pool.acquire_timeout == 1234ms; }},
      {"DISABLE_CONNECTION_POOL", "yes", [](const Config& c) { return c.pool.disabled; }},
      {"GLMPROXY_POOL_MAX_IDLE_MS", "90000",
       [](const Config& c) { return c.pool.max_idle == 90'000ms; }},
      {"GLMPROXY_MODEL_CONCURRENCY", "3",
       [](const Config& c) { return c.admission.model_concurrency == 3; }},
      {"GLMPROXY_AIMD_INCREASE_INTERVAL_MS", "2500",
       [](const Config& c) { return c.admission.increase_interval == 2500ms; }},
      {"GLMPROXY_BREAKER_FAILURES", "9",
       [](const Config& c) { return c.admission.breaker_failures == 9; }},
      {"GLMPROXY_BREAKER_WINDOW_MS", "45000",
       [](const Config& c) { return c.admission.breaker_window == 45'000ms; }},
      {"GLMPROXY_BREAKER_COOLDOWN_MS", "7000",
       [](const Config& c) { return c.admission.breaker_cooldown == 7000ms; }},
      {"CACHE_ENABLED", "on", [](const Config& c) { return c.cache.enabled; }},
      {"CACHE_TTL_MS", "120000", [](const Config& c) { return c.cache.ttl == 120'000ms; }},
      {"CACHE_MAX_SIZE", "2500", [](const Config& c) { return c.cache.max_entries == 2500; }},
      {"GLMPROXY_CACHE_MAX_BYTES", "1048576",
       [](const Config& c) { return c.cache.max_bytes == 1'048'576; }},
      {"GLMPROXY_COALESCE_ENABLED", "off", [](const Config& c) { return !c.cache.coalesce; }},
      {"BATCHING_ENABLED", "1", [](const Config& c) { return c.batch.enabled; }},
      {"BATCH_WINDOW_MS", "75", [](const Config& c) { return c.batch.window == 75ms; }},
      {"BATCH_MAX_SIZE", "17", [](const Config& c) { return c.batch.max_size == 17; }},
      {"BATCH_MAX_QUEUE_SIZE", "2000",
       [](const Config& c) { return c.batch.max_queue_size == 2000; }},
      {"STREAM_REQUEST_CHUNK_SIZE", "65536",
       [](const Config& c) { return c.stream.request_chunk_size == 65'536; }},
      {"STREAM_RESPONSE_CHUNK_SIZE", "16384",
       [](const Config& c) { return c.stream.response_chunk_size == 16'384; }},
      {"STREAM_BUFFER_POOL_ENABLED", "off",
       [](const Config& c) { return !c.stream.buffer_pool_enabled; }},
      {"GLMPROXY_SSE_MAX_LINE_BYTES", "2097152",
       [](const Config& c) { return c.stream.max_line_bytes == 2'097'152; }},
      {"GLMPROXY_SSE_MAX_EVENT_BYTES", "16777216",
       [](const Config& c) { return c.stream.max_event_bytes == 16'777'216; }},
      {"GLMPROXY_MAX_RESPONSE_BYTES", "1048576",
       [](const Config& c) { return c.stream.max_response_bytes == 1'048'576; }},
      // validate() checks only that these exist (a readable file, a directory): any will do.
      {"GLMPROXY_CA_FILE", "/etc/passwd",
       [](const Config& c) { return c.upstream.ca_file == "/etc/passwd"; }},
      {"GLMPROXY_CA_PATH", "/etc", [](const Config& c) { return c.upstream.ca_path == "/etc"; }},
      {"APIKEYS_FILE", "/var/lib/glmproxy/apikeys.json",
       [](const Config& c) { return c.keys.file == "/var/lib/glmproxy/apikeys.json"; }},
      {"APIKEY_CACHE_SIZE", "250", [](const Config& c) { return c.keys.cache_size == 250; }},
      {"APIKEY_CACHE_TTL_MS", "90000",
       [](const Config& c) { return c.keys.cache_ttl == 90'000ms; }},
      {"RATE_LIMIT_BATCH_INTERVAL_MS", "2500",
       [](const Config& c) { return c.rate_limit.batch_interval == 2500ms; }},
      {"RATE_LIMIT_MAX_BATCH_SIZE", "300",
       [](const Config& c) { return c.rate_limit.max_batch_size == 300; }},
      {"METRICS_ENABLED", "false", [](const Config& c) { return !c.metrics.enabled; }},
      {"METRICS_RETENTION_MS", "120000",
       [](const Config& c) { return c.metrics.retention == 120'000ms; }},
      {"METRICS_AGGREGATION_INTERVAL_MS", "2000",
       [](const Config& c) { return c.metrics.aggregation_interval == 2000ms; }},
      {"PROFILING_ENABLED", "TRUE", [](const Config& c) { return c.profiling.enabled; }},
      {"GLMPROXY_PROFILING_RING_SIZE", "64",
       [](const Config& c) { return c.profiling.ring_size == 64; }},
      {"GLMPROXY_ADMIN_ENABLED", "on", [](const Config& c) { return c.admin.enabled; }},
      {"GLMPROXY_ADMIN_HOST", "127.0.0.2",
       [](const Config& c) { return c.admin.host == "127.0.0.2"; }},
      {"GLMPROXY_ADMIN_PORT", "9464", [](const Config& c) { return c.admin.port == 9464; }},
      {"GLMPROXY_ADMIN_TOKEN", "admin-token-1234",
       [](const Config& c) { return c.admin.token == "admin-token-1234"; }},
      {"GLMPROXY_LOG_LEVEL", "debug",
       [](const Config& c) { return c.log_level == LogLevel::Debug; }},
      {"GLMPROXY_CALLBACK_THREADS", "5", [](const Config& c) { return c.callback_threads == 5; }},
  };
  return kKnobs;
}

// The NAME=value lines of describe(), keyed by NAME.
std::map<std::string, std::string> describe_lines(const Config& c) {
  std::map<std::string, std::string> lines;
  const std::string text = c.describe();
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    const std::size_t eq = line.find('=');
    if (eq != std::string::npos) lines[line.substr(0, eq)] = line.substr(eq + 1);
    start = end + 1;
  }
  return lines;
}

}  // namespace

TEST_CASE("every variable changes its field", "[config][env]") {
  const Config defaults;
  const auto default_lines = describe_lines(defaults);
  for (const Knob& knob : knobs()) {
    INFO(knob.name << "=" << knob.value);
    REQUIRE_FALSE(knob.is_set(defaults));  // the test value differs from the default
    Result<Config> r = load({{knob.name, knob.value}});
    REQUIRE(r);
    CHECK(knob.is_set(*r));
    // describe() shows the change on the variable's own line and nowhere else.
    auto lines = describe_lines(*r);
    REQUIRE(lines.count(knob.name) == 1);
    CHECK(lines[knob.name] != default_lines.at(knob.name));
    lines[knob.name] = default_lines.at(knob.name);
    CHECK(lines == default_lines);
  }
}

TEST_CASE("all variables at once", "[config][env]") {
  Env env;
  for (const Knob& knob : knobs()) env[knob.name] = knob.value;
  Result<Config> r = load(env);
  REQUIRE(r);
  for (const Knob& knob : knobs()) {
    INFO(knob.name);
    CHECK(knob.is_set(*r));
  }
}

TEST_CASE("the parser's table and the test's list name the same variables", "[config][env]") {
  std::set<std::string> parsed;
  for (const auto& variable : glmproxy::detail::config_variables()) {
    CHECK(parsed.insert(std::string(variable.name)).second);  // no duplicates
  }
  std::set<std::string> tested;
  for (const Knob& knob : knobs()) tested.insert(knob.name);
  CHECK(parsed == tested);
  CHECK(parsed.size() == 60);
  CHECK(describe_lines(Config{}).size() == 60);
}

TEST_CASE("is_loopback_host: 127.0.0.0/8, ::1 and localhost only", "[config][admin]") {
  for (const char* host :
       {"127.0.0.1", "127.255.255.255", "127.1.2.3", "127.001.0.1", "::1", "localhost"}) {
    INFO(host);
    CHECK(glmproxy::is_loopback_host(host));
  }
  for (const char* host : {"", "0.0.0.0", "10.0.0.1", "127.0.0", "127.0.0.1.5", "127.0.0.256",
                           "127.0.0.1:80", "[::1]", "127..0.1", "127.0.0.1 ", "127.0.0.0001",
                           "localhost.example.com", "LOCALHOST", "::2", "128.0.0.1"}) {
    INFO(host);
    CHECK_FALSE(glmproxy::is_loopback_host(host));
  }
}

TEST_CASE("GLMPROXY_ADMIN_HOST must be loopback, the admin token is never echoed",
          "[config][admin]") {
  for (const char* host : {"127.0.0.1", "127.1.2.3", "::1", "localhost"}) {
    INFO(host);
    CHECK(load({{"GLMPROXY_ADMIN_HOST", host}}));
  }
  for (const char* host : {"0.0.0.0", "10.0.0.1", "127.0.0", "127.0.0.256", "example.com"}) {
    INFO(host);
    Result<Config> r = load({{"GLMPROXY_ADMIN_HOST", host}});
    REQUIRE_FALSE(r);
    CHECK(r.error().code == glmproxy::ErrorCode::InvalidConfig);
    CHECK(contains(r.error().message, "GLMPROXY_ADMIN_HOST must be a loopback address"));
  }
  Result<Config> r = load({{"GLMPROXY_ADMIN_TOKEN", "admin-secret-5678"}});
  REQUIRE(r);
  CHECK_FALSE(contains(r->describe(), "admin-secret-5678"));
  CHECK(contains(r->describe(), "GLMPROXY_ADMIN_TOKEN=admi"));
  Result<Config> bad = load({{"GLMPROXY_ADMIN_TOKEN", "admin secret 5678"}});
  REQUIRE_FALSE(bad);
  CHECK_FALSE(contains(bad.error().message, "admin secret 5678"));
  // Both secrets set, the API key pasted into another variable: neither is echoed.
  Result<Config> pasted = load({{"ZAI_API_KEY", "sk-both-secrets-1234"},
                                {"GLMPROXY_ADMIN_TOKEN", "admin-token-9999"},
                                {"ZAI_API_BASE", "sk-both-secrets-1234"},
                                {"DEFAULT_MODEL", "admin-token-9999 x"}});
  REQUIRE_FALSE(pasted);
  CHECK_FALSE(contains(pasted.error().message, "sk-both-secrets-1234"));
  CHECK_FALSE(contains(pasted.error().message, "admin-token-9999"));
}

TEST_CASE("GLMPROXY_PRESET picks a starting point that variables override", "[config][preset]") {
  SECTION("edge, then overrides") {
    Result<Config> r =
        load({{"GLMPROXY_PRESET", "edge"}, {"POOL_MAX_CONNECTIONS", "4"}, {"CACHE_ENABLED", "0"}});
    REQUIRE(r);
    CHECK(r->pool.max_connections == 4);  // overridden
    CHECK_FALSE(r->cache.enabled);        // overridden
    CHECK(r->pool.min_connections == 1);  // from the preset
    CHECK(r->cache.max_entries == 100);
    CHECK(r->stream.request_chunk_size == 4096);
    CHECK(r->metrics.retention == 30'000ms);
  }
  SECTION("spellings") {
    for (const char* name :
         {"LOW_LATENCY", "low-latency", "Low_Latency", "lowlatency", " low-latency "}) {
      INFO(name);
      Result<Config> r = load({{"GLMPROXY_PRESET", name}});
      REQUIRE(r);
      CHECK(r->pool.max_connections == 50);
    }
  }
  SECTION("an unknown name lists the allowed ones, with the other problems") {
    std::string message =
        error_of(load({{"GLMPROXY_PRESET", "turbo"}, {"POOL_WARM", "sometimes"}}));
    CHECK(contains(message,
                   "GLMPROXY_PRESET must be one of "
                   R"(default/low-latency/high-throughput/development/edge, got "turbo")"));
    CHECK(contains(message, "POOL_WARM"));
  }
  SECTION("blank is the defaults") {
    Result<Config> r = load({{"GLMPROXY_PRESET", "  "}});
    REQUIRE(r);
    CHECK(r->describe() == Config{}.describe());
  }
}

TEST_CASE("preset names", "[config][preset]") {
  for (Preset p : {Preset::Default, Preset::LowLatency, Preset::HighThroughput, Preset::Development,
                   Preset::Edge}) {
    INFO(to_string(p));
    CHECK(glmproxy::parse_preset(to_string(p)) == p);
  }
  CHECK(to_string(Preset::LowLatency) == "low-latency");
  CHECK(to_string(Preset::HighThroughput) == "high-throughput");
  CHECK(glmproxy::parse_preset("HIGH_THROUGHPUT") == Preset::HighThroughput);
  CHECK(glmproxy::parse_preset("Edge") == Preset::Edge);
  CHECK(glmproxy::parse_preset("DEVELOPMENT") == Preset::Development);
  CHECK_FALSE(glmproxy::parse_preset(""));
  CHECK_FALSE(glmproxy::parse_preset("low latency"));
  CHECK_FALSE(glmproxy::parse_preset("low"));
  CHECK_FALSE(glmproxy::parse_preset("edgeedge"));
  CHECK_FALSE(glmproxy::parse_preset("-"));
}

TEST_CASE("preset values follow the guide's use cases", "[config][preset]") {
  SECTION("low latency (use case 1)") {
    const Config c = Config::preset(Preset::LowLatency);
    CHECK(c.pool.min_connections == 10);
    CHECK(c.pool.max_connections == 50);
    CHECK(c.pool.warm);
    CHECK(c.cache.enabled);
    CHECK(c.cache.ttl == 60'000ms);
    CHECK(c.cache.max_entries == 5000);
    CHECK_FALSE(c.batch.enabled);
    CHECK(c.keys.cache_size == 10'000);
    CHECK(c.keys.cache_ttl == 600'000ms);
    CHECK(c.stream.request_chunk_size == 32'768);
    CHECK(c.stream.response_chunk_size == 32'768);
    CHECK(c.stream.buffer_pool_enabled);
    CHECK(c.metrics.enabled);
    CHECK_FALSE(c.profiling.enabled);
    CHECK(c.rate_limit.batch_interval == 1000ms);
    CHECK(c.rate_limit.max_batch_size == 100);
  }
  SECTION("high throughput (use case 2)") {
    const Config c = Config::preset(Preset::HighThroughput);
    CHECK(c.pool.min_connections == 20);
    CHECK(c.pool.max_connections == 100);
    CHECK(c.pool.warm);
    CHECK(c.cache.enabled);
    CHECK(c.cache.ttl == 3'600'000ms);
    CHECK(c.cache.max_entries == 10'000);
    CHECK(c.batch.enabled);
    CHECK(c.batch.window == 100ms);
    CHECK(c.batch.max_size == 20);
    CHECK(c.batch.max_queue_size == 5000);
    CHECK(c.keys.cache_size == 10'000);
    CHECK(c.keys.cache_ttl == 3'600'000ms);
    CHECK(c.stream.request_chunk_size == 65'536);
    CHECK(c.stream.response_chunk_size == 65'536);
    CHECK(c.stream.buffer_pool_enabled);
    CHECK(c.metrics.enabled);
    CHECK_FALSE(c.profiling.enabled);
    CHECK(c.rate_limit.batch_interval == 10'000ms);
    CHECK(c.rate_limit.max_batch_size == 500);
  }
  SECTION("development (use case 3)") {
    const Config c = Config::preset(Preset::Development);
    CHECK(c.pool.min_connections == 2);
    CHECK(c.pool.max_connections == 5);
    CHECK_FALSE(c.pool.warm);
    CHECK_FALSE(c.cache.enabled);
    CHECK_FALSE(c.batch.enabled);
    CHECK(c.keys.cache_size == 100);
    CHECK(c.keys.cache_ttl == 60'000ms);
    CHECK(c.stream.buffer_pool_enabled);
    CHECK(c.metrics.enabled);
    CHECK(c.profiling.enabled);
    CHECK(c.rate_limit.batch_interval == 1000ms);
    CHECK(c.rate_limit.max_batch_size == 50);
  }
  SECTION("edge (use case 4)") {
    const Config c = Config::preset(Preset::Edge);
    CHECK(c.pool.min_connections == 1);
    CHECK(c.pool.max_connections == 3);
    CHECK_FALSE(c.pool.warm);
    CHECK(c.cache.enabled);
    CHECK(c.cache.ttl == 300'000ms);
    CHECK(c.cache.max_entries == 100);
    CHECK_FALSE(c.batch.enabled);
    CHECK(c.keys.cache_size == 100);
    CHECK(c.keys.cache_ttl == 300'000ms);
    CHECK(c.stream.request_chunk_size == 4096);
    CHECK(c.stream.response_chunk_size == 4096);
    CHECK(c.stream.buffer_pool_enabled);
    CHECK(c.metrics.enabled);
    CHECK(c.metrics.retention == 30'000ms);
    CHECK_FALSE(c.profiling.enabled);
    CHECK(c.rate_limit.batch_interval == 5000ms);
    CHECK(c.rate_limit.max_batch_size == 50);
  }
  SECTION("knobs the guide leaves alone keep their defaults") {
    const Config d;
    for (Preset p :
         {Preset::LowLatency, Preset::HighThroughput, Preset::Development, Preset::Edge}) {
      INFO(to_string(p));
      const Config c = Config::preset(p);
      CHECK(c.upstream.openai_base_url == d.upstream.openai_base_url);
      CHECK(c.upstream.default_model == d.upstream.default_model);
      CHECK(c.timeouts.total == d.timeouts.total);
      CHECK(c.retry.max_attempts == d.retry.max_attempts);
      CHECK(c.pool.acquire_timeout == d.pool.acquire_timeout);
      CHECK(c.cache.max_bytes == d.cache.max_bytes);
      CHECK(c.log_level == d.log_level);
      CHECK(c.validate());
    }
  }
}

TEST_CASE("validate catches contradictions", "[config][validate]") {
  SECTION("min above max") {
    Config c;
    c.pool.min_connections = 20;
    c.pool.max_connections = 10;
    CHECK(contains(error_of(c.validate()),
                   "POOL_MIN_CONNECTIONS (20) must not exceed POOL_MAX_CONNECTIONS (10)"));
  }
  SECTION("from the environment too") {
    CHECK(contains(error_of(load({{"POOL_MIN_CONNECTIONS", "20"}})),
                   "POOL_MIN_CONNECTIONS (20) must not exceed POOL_MAX_CONNECTIONS (10)"));
  }
  SECTION("several at once, in one message") {
    Config c;
    c.pool.min_connections = 11;
    c.batch.max_size = 2000;
    c.retry.base_delay = 10'000ms;
    c.timeouts.connect = 700'000ms;
    c.metrics.aggregation_interval = 120'000ms;
    c.stream.max_line_bytes = 16u << 20;
    c.cache.enabled = true;
    c.cache.max_entries = 0;
    c.cache.max_bytes = 0;
    c.upstream.default_model.clear();
    c.upstream.anthropic_base_url = "api.z.ai/api/anthropic";
    Result<void> r = c.validate();
    const std::string message = error_of(r);
    CHECK(message.rfind("invalid configuration: ", 0) == 0);
    CHECK(contains(message, "POOL_MIN_CONNECTIONS (11) must not exceed POOL_MAX_CONNECTIONS (10)"));
    CHECK(contains(message, "BATCH_MAX_SIZE (2000) must not exceed BATCH_MAX_QUEUE_SIZE (1000)"));
    CHECK(contains(message,
                   "GLMPROXY_RETRY_BASE_DELAY_MS (10000) must not exceed "
                   "GLMPROXY_RETRY_MAX_DELAY_MS (8000)"));
    CHECK(contains(message,
                   "GLMPROXY_CONNECT_TIMEOUT_MS (700000) must not exceed "
                   "GLMPROXY_TOTAL_TIMEOUT_MS (600000)"));
    CHECK(contains(message,
                   "METRICS_AGGREGATION_INTERVAL_MS (120000) must not exceed "
                   "METRICS_RETENTION_MS (60000)"));
    CHECK(contains(message,
                   "GLMPROXY_SSE_MAX_LINE_BYTES (16777216) must not exceed "
                   "GLMPROXY_SSE_MAX_EVENT_BYTES (8388608)"));
    CHECK(contains(message, "CACHE_ENABLED is true but CACHE_MAX_SIZE is 0"));
    CHECK(contains(message, "CACHE_ENABLED is true but GLMPROXY_CACHE_MAX_BYTES is 0"));
    CHECK(contains(message, "DEFAULT_MODEL must not be empty"));
    CHECK(contains(
        message,
        R"(ANTHROPIC_API_BASE must be an http:// or https:// URL with a host, got "api.z.ai/api/anthropic")"));
  }
  SECTION("a disabled cache may have no room") {
    Config c;
    c.cache.max_entries = 0;
    CHECK(c.validate());
  }
  SECTION("first-byte and idle timeouts may exceed the total deadline") {
    Config c;
    c.timeouts.total = 60'000ms;
    CHECK(c.validate());
  }
  SECTION("ranges apply to values set from code") {
    Config c;
    c.pool.max_connections = 0;
    c.pool.min_connections = -1;
    c.retry.max_attempts = 0;
    c.stream.response_chunk_size = 1u << 20;
    c.timeouts.total = 0ms;
    c.timeouts.connect = 0ms;
    c.profiling.ring_size = 0;
    c.log_level = static_cast<LogLevel>(42);
    const std::string message = error_of(c.validate());
    CHECK(contains(message, "POOL_MAX_CONNECTIONS must be an integer in [1, 10000], got 0"));
    CHECK(contains(message, "POOL_MIN_CONNECTIONS must be an integer in [0, 10000], got -1"));
    CHECK(contains(message, "GLMPROXY_MAX_ATTEMPTS must be an integer in [1, 20], got 0"));
    CHECK(contains(message,
                   "STREAM_RESPONSE_CHUNK_SIZE must be an integer in [1024, 524288], "
                   "got 1048576"));
    CHECK(contains(message, "GLMPROXY_TOTAL_TIMEOUT_MS must be an integer in"));
    CHECK(contains(message, "GLMPROXY_PROFILING_RING_SIZE must be an integer in"));
    CHECK(contains(message, "GLMPROXY_LOG_LEVEL"));
  }
  SECTION("text rules apply to values set from code") {
    Config c;
    c.upstream.default_model = "glm 4.7";
    c.upstream.anthropic_version = "2023-06-01\r\nX-Injected: 1";
    c.keys.file = "keys\n.json";
    const std::string message = error_of(c.validate());
    CHECK(contains(
        message,
        R"(DEFAULT_MODEL must be a name without spaces or control characters, got "glm 4.7")"));
    CHECK(contains(message, R"(got "2023-06-01\r\nX-Injected: 1")"));
    CHECK(contains(message,
                   R"(APIKEYS_FILE must not contain control characters, got "keys\n.json")"));
    CHECK_FALSE(contains(message, "\n"));
  }
}

TEST_CASE("GLMPROXY_CA_FILE must be a readable file, GLMPROXY_CA_PATH a directory",
          "[config][env]") {
  SECTION("missing paths are named with the variable") {
    const std::string message = error_of(load(
        {{"GLMPROXY_CA_FILE", "/nonexistent/ca.pem"}, {"GLMPROXY_CA_PATH", "/nonexistent/certs"}}));
    CHECK(contains(
        message,
        R"(GLMPROXY_CA_FILE must name a readable regular file, got "/nonexistent/ca.pem")"));
    CHECK(contains(message, R"(GLMPROXY_CA_PATH must name a directory, got "/nonexistent/certs")"));
  }
  SECTION("a directory is not a CA file, a file is not a CA directory") {
    Config c;
    c.upstream.ca_file = "/etc";
    c.upstream.ca_path = "/etc/passwd";
    const std::string message = error_of(c.validate());
    CHECK(contains(message, R"(GLMPROXY_CA_FILE must name a readable regular file, got "/etc")"));
    CHECK(contains(message, R"(GLMPROXY_CA_PATH must name a directory, got "/etc/passwd")"));
  }
  SECTION("empty means the system store; existing paths pass") {
    CHECK(Config{}.validate());
    Config c;
    c.upstream.ca_file = "/etc/passwd";
    c.upstream.ca_path = "/etc";
    CHECK(c.validate());
  }
}

TEST_CASE("URLs need http(s) and a host", "[config][env]") {
  for (const char* good : {"https://api.z.ai/api/paas/v4", "HTTPS://API.Z.AI/v4",
                           "http://localhost", "http://127.0.0.1:8080/v1", "http://[::1]:9000/",
                           "https://h?x=1", "http://user:pw@host/x"}) {
    INFO(good);
    Result<Config> r = load({{"ZAI_API_BASE", good}});
    REQUIRE(r);
    CHECK(r->upstream.openai_base_url == good);
  }
  for (const char* bad :
       {"api.z.ai/api/paas/v4", "ftp://host/x", "http://", "https:///path", "http://:80/x",
        "http://host:port/", "http://host:0/", "http://host:65536/", "http://exa mple.com",
        "http://[]/", "http//host", "http://[zz::1]/", "http://[::1/", "http://[1:2:3]/",
        "http://[::1]x/", "http://h[::1]/", "http://[fe80::1%25eth0]/"}) {
    INFO(bad);
    CHECK(contains(error_of(load({{"ZAI_API_BASE", bad}})),
                   std::string("ZAI_API_BASE must be an http:// or https:// URL with a host, "
                               "got \"") +
                       bad + "\""));
  }
}

TEST_CASE("base URLs: IPv6 literals, fragments, credentials", "[config][url]") {
  for (const char* good : {"http://[::1]/v4", "http://[2001:db8::8a2e:370:7334]:8080/",
                           "http://[::ffff:127.0.0.1]/", "https://h/v4?tenant=abc"}) {
    INFO(good);
    CHECK(load({{"ZAI_API_BASE", good}}));
  }
  SECTION("a fragment is refused, naming the variable") {
    CHECK(contains(error_of(load({{"ZAI_API_BASE", "https://h/v4#frag"}})),
                   "ZAI_API_BASE must not have a fragment ('#...'), which is never sent to a "
                   "server; got \"https://h/v4#frag\""));
    Config c;
    c.upstream.anthropic_base_url = "https://h/anthropic?x=1#";
    CHECK(contains(error_of(c.validate()), "ANTHROPIC_API_BASE must not have a fragment"));
  }
  SECTION("userinfo is shown as ***, its password never") {
    const std::string message = error_of(load({{"ZAI_API_BASE", "https://bob:base-pass-123@/x"}}));
    CHECK(contains(message,
                   "ZAI_API_BASE must be an http:// or https:// URL with a host, got "
                   "\"https://***@/x\""));
    CHECK_FALSE(contains(message, "base-pass-123"));
    CHECK_FALSE(contains(message, "bob"));
    // An unencoded '/' in the password: malformed, and still not shown.
    const std::string slash = error_of(load({{"ZAI_API_BASE", "https://bob:base/pass-123@h/x"}}));
    CHECK(contains(slash, R"(got "https://***@h/x")"));
    CHECK_FALSE(contains(slash, "pass-123"));

    Result<Config> r = load({{"ZAI_API_BASE", "https://bob:base-pass-123@api.example/v4"},
                             {"ANTHROPIC_API_BASE", "https://token-only-4567@api.example/a"}});
    REQUIRE(r);
    CHECK(r->upstream.openai_base_url == "https://bob:base-pass-123@api.example/v4");
    const std::string text = r->describe();
    CHECK(contains(text, "ZAI_API_BASE=https://***@api.example/v4\n"));
    CHECK(contains(text, "ANTHROPIC_API_BASE=https://***@api.example/a\n"));
    CHECK_FALSE(contains(text, "base-pass-123"));
    CHECK_FALSE(contains(text, "token-only-4567"));
  }
  SECTION("a URL password pasted into another variable is scrubbed") {
    const std::string message =
        error_of(load({{"ZAI_API_BASE", "https://bob:base-pass-123@api.example/v4"},
                       {"DEFAULT_MODEL", "base-pass-123 x"}}));
    CHECK(contains(message, "DEFAULT_MODEL"));
    CHECK_FALSE(contains(message, "base-pass-123"));
    Config c;
    c.upstream.openai_base_url = "https://bob:base-pass-123@api.example/v4";
    c.upstream.default_model = "base-pass-123 x";
    const std::string from_validate = error_of(c.validate());
    CHECK(contains(from_validate, "DEFAULT_MODEL"));
    CHECK_FALSE(contains(from_validate, "base-pass-123"));
    c.keys.file = "/keys/base-pass-123.json";
    CHECK_FALSE(contains(c.describe(), "base-pass-123"));
  }
}

TEST_CASE("proxy: GLMPROXY_PROXY wins whenever it is present, empty means direct",
          "[config][proxy]") {
  const Config defaults;
  CHECK(defaults.upstream.proxy.empty());
  CHECK(defaults.upstream.no_proxy.empty());
  CHECK(defaults.upstream.proxy_source.empty());
  CHECK(contains(defaults.describe(), "\nGLMPROXY_PROXY= (direct)\n"));

  Result<Config> r = load({{"GLMPROXY_PROXY", " http://127.0.0.1:3128 "},
                           {"https_proxy", "http://other.example:1"},
                           {"all_proxy", "http://other.example:2"}});
  REQUIRE(r);
  CHECK(r->upstream.proxy == "http://127.0.0.1:3128");
  CHECK(r->upstream.proxy_source == "GLMPROXY_PROXY");
  CHECK(contains(r->describe(), "\nGLMPROXY_PROXY=http://127.0.0.1:3128\n"));

  for (const char* direct : {"", "   ", "none", "NONE", "direct", " Direct "}) {
    INFO("GLMPROXY_PROXY=\"" << direct << "\"");
    r = load({{"GLMPROXY_PROXY", direct},
              {"https_proxy", "http://other.example:1"},
              {"HTTPS_PROXY", "http://other.example:2"},
              {"all_proxy", "http://other.example:3"}});
    REQUIRE(r);
    CHECK(r->upstream.proxy.empty());
    CHECK(r->upstream.proxy_source == "GLMPROXY_PROXY");
    CHECK(contains(r->describe(), "\nGLMPROXY_PROXY= (direct)\n"));
  }
  for (const char* good : {"socks5h://user:pw@proxy.example:1080", "https://proxy.example",
                           "http://[::1]:3128/", "SOCKS5://h:1", "socks4://h", "socks4a://h:9"}) {
    INFO(good);
    r = load({{"GLMPROXY_PROXY", good}});
    REQUIRE(r);
    CHECK(r->upstream.proxy == good);
  }
}

TEST_CASE("proxy: the standard variables are read through the lookup as libcurl would",
          "[config][proxy]") {
  const char* http_base = "http://127.0.0.1:8080/v4";
  auto proxy_of = [](const Env& env) -> std::pair<std::string, std::string> {
    Result<Config> r = load(env);
    INFO((r ? "" : r.error().message));
    REQUIRE(r);
    return {r->upstream.proxy, r->upstream.proxy_source};
  };
  using P = std::pair<std::string, std::string>;
  // The default base URL is https: https_proxy, then HTTPS_PROXY, then all_proxy, ALL_PROXY.
  CHECK(proxy_of({{"https_proxy", "http://a:1"},
                  {"HTTPS_PROXY", "http://b:1"},
                  {"all_proxy", "http://c:1"}}) == P{"http://a:1", "https_proxy"});
  CHECK(proxy_of({{"HTTPS_PROXY", "http://b:1"}, {"all_proxy", "http://c:1"}}) ==
        P{"http://b:1", "HTTPS_PROXY"});
  CHECK(proxy_of({{"http_proxy", "http://h:1"}, {"all_proxy", "http://c:1"}}) ==
        P{"http://c:1", "all_proxy"});
  CHECK(proxy_of({{"ALL_PROXY", "socks5://d:1"}}) == P{"socks5://d:1", "ALL_PROXY"});
  CHECK(proxy_of({{"http_proxy", "http://h:1"}}) == P{"", ""});
  // An empty variable is unset here, as everywhere in from_env() but GLMPROXY_PROXY.
  CHECK(proxy_of({{"https_proxy", ""}, {"all_proxy", "http://c:1"}}) ==
        P{"http://c:1", "all_proxy"});
  // An http base URL: http_proxy (lowercase only, like libcurl), then all_proxy.
  CHECK(proxy_of({{"ZAI_API_BASE", http_base},
                  {"http_proxy", "http://h:1"},
                  {"https_proxy", "http://a:1"}}) == P{"http://h:1", "http_proxy"});
  CHECK(proxy_of({{"ZAI_API_BASE", http_base}, {"HTTP_PROXY", "http://H:1"}}) == P{"", ""});
  CHECK(proxy_of({{"ZAI_API_BASE", http_base},
                  {"HTTP_PROXY", "http://H:1"},
                  {"all_proxy", "http://c:1"}}) == P{"http://c:1", "all_proxy"});
  // No scheme: http://, as libcurl reads it.
  CHECK(proxy_of({{"https_proxy", "proxy.local:3128"}}) ==
        P{"http://proxy.local:3128", "https_proxy"});
  // Nothing set: direct, and no source.
  CHECK(proxy_of({}) == P{"", ""});
}

TEST_CASE("proxy: no_proxy, GLMPROXY_NO_PROXY first", "[config][proxy]") {
  auto no_proxy_of = [](const Env& env) {
    Result<Config> r = load(env);
    REQUIRE(r);
    return r->upstream.no_proxy;
  };
  CHECK(no_proxy_of({{"no_proxy", "localhost,127.0.0.1"}}) == "localhost,127.0.0.1");
  CHECK(no_proxy_of({{"NO_PROXY", ".internal"}}) == ".internal");
  CHECK(no_proxy_of({{"no_proxy", "a"}, {"NO_PROXY", "b"}}) == "a");
  CHECK(no_proxy_of({{"GLMPROXY_NO_PROXY", "c"}, {"no_proxy", "a"}}) == "c");
  CHECK(no_proxy_of({{"GLMPROXY_NO_PROXY", ""}, {"no_proxy", "a"}, {"NO_PROXY", "b"}}).empty());
  // Read whichever way the proxy was chosen.
  Result<Config> r = load({{"GLMPROXY_PROXY", "http://p:1"}, {"no_proxy", "127.0.0.1"}});
  REQUIRE(r);
  CHECK(r->upstream.no_proxy == "127.0.0.1");
  CHECK(contains(r->describe(), "\nGLMPROXY_NO_PROXY=127.0.0.1\n"));
  CHECK(contains(error_of(load({{"no_proxy", "a\nb"}})),
                 R"(GLMPROXY_NO_PROXY must not contain control characters, got "a\nb" (from )"
                 R"(no_proxy))"));
}

TEST_CASE("proxy: credentials are redacted in describe() and never in a message",
          "[config][proxy][secret]") {
  Result<Config> r = load({{"https_proxy", "http://alice:s3cret-pass@127.0.0.1:3128"}});
  REQUIRE(r);
  CHECK(r->upstream.proxy == "http://alice:s3cret-pass@127.0.0.1:3128");
  std::string text = r->describe();
  CHECK(contains(text, "\nGLMPROXY_PROXY=http://***@127.0.0.1:3128 (from https_proxy)\n"));
  CHECK_FALSE(contains(text, "s3cret-pass"));
  CHECK_FALSE(contains(text, "alice"));

  // The proxy password is a secret wherever it turns up.
  Config c = *r;
  c.keys.file = "/tmp/s3cret-pass";
  CHECK_FALSE(contains(c.describe(), "s3cret-pass"));
  c.upstream.default_model = "s3cret-pass x";
  CHECK_FALSE(contains(error_of(c.validate()), "s3cret-pass"));
  CHECK_FALSE(contains(error_of(load({{"GLMPROXY_PROXY", "http://alice:s3cret-pass@p:1"},
                                      {"DEFAULT_MODEL", "s3cret-pass x"}})),
                       "s3cret-pass"));
}

TEST_CASE("proxy: a malformed proxy URL names GLMPROXY_PROXY, never its password",
          "[config][proxy][secret]") {
  for (const char* bad : {"ftp://p:1", "p:1", "http://", "http://u:s3cret-pass@[zz::1]:1",
                          "http://p:99999", "http://p:1/path", "http://p:1?x=1", "http://p:1/#f",
                          "socks5://", "http://p q:1", "http://u:s3cret-pass@:1"}) {
    INFO(bad);
    const std::string message = error_of(load({{"GLMPROXY_PROXY", bad}}));
    CHECK(contains(message, "GLMPROXY_PROXY must be \"\" (direct) or a proxy URL"));
    CHECK_FALSE(contains(message, "s3cret-pass"));
  }
  CHECK(contains(error_of(load({{"GLMPROXY_PROXY", "http://u:s3cret-pass@p:0"}})),
                 R"(got "http://***@p:0")"));
  // From a standard variable: the message says which.
  std::string message = error_of(load({{"https_proxy", "http://u:s3cret-pass@p:http"}}));
  CHECK(contains(message, "GLMPROXY_PROXY must be"));
  CHECK(contains(message, R"(got "http://***@p:http" (from https_proxy))"));
  CHECK_FALSE(contains(message, "s3cret-pass"));
  // Set in code: validate() checks it too.
  Config c;
  c.upstream.proxy = "gopher://u:s3cret-pass@p:1";
  c.upstream.proxy_source = "all_proxy";
  message = error_of(c.validate());
  CHECK(contains(message, R"(got "gopher://***@p:1" (from all_proxy))"));
  CHECK_FALSE(contains(message, "s3cret-pass"));
}

TEST_CASE("the API key never appears in messages or describe()", "[config][secret]") {
  const std::string key = "sk-secret-ABCDEFGHIJ";
  SECTION("a bad value elsewhere") {
    Result<Config> r = load({{"ZAI_API_KEY", key}, {"ZAI_API_BASE", "ftp://x"}});
    const std::string message = error_of(r);
    CHECK(contains(message, "ZAI_API_BASE"));
    CHECK_FALSE(contains(message, key));
    CHECK_FALSE(contains(message, "ABCDEFGHIJ"));
  }
  SECTION("a malformed key") {
    for (const std::string bad : {"sk-secret\nABCDEFGHIJ", "sk-secret ABCDEFGHIJ",
                                  "sk-secret\x01"
                                  "ABCDEFGHIJ"}) {
      const std::string message = error_of(load({{"ZAI_API_KEY", bad}}));
      CHECK(contains(message,
                     "ZAI_API_KEY must not contain spaces or control characters, got "
                     "\"sk-s\xE2\x80\xA6\""));
      CHECK_FALSE(contains(message, "secret"));
      CHECK_FALSE(contains(message, "ABCDEFGHIJ"));
    }
  }
  SECTION("a key pasted into another variable") {
    const std::string message = error_of(load({{"ZAI_API_KEY", key}, {"ANTHROPIC_API_BASE", key}}));
    CHECK(contains(message, "ANTHROPIC_API_BASE"));
    CHECK_FALSE(contains(message, key));

    Config c;
    c.upstream.api_key = key;
    c.upstream.openai_base_url = "https://" + key + "@/";
    const std::string from_validate = error_of(c.validate());
    CHECK(contains(from_validate, "ZAI_API_BASE"));
    CHECK_FALSE(contains(from_validate, key));
    CHECK_FALSE(contains(c.describe(), key));
  }
  SECTION("describe() redacts the key") {
    Result<Config> r = load({{"ZAI_API_KEY", key}});
    REQUIRE(r);
    CHECK(r->upstream.api_key == key);
    const std::string text = r->describe();
    CHECK_FALSE(contains(text, key));
    CHECK_FALSE(contains(text, "secret"));
    CHECK(contains(text, "ZAI_API_KEY=sk-s\xE2\x80\xA6\n"));
  }
}

TEST_CASE("describe() lists NAME=value lines", "[config][describe]") {
  Config c;
  c.pool.max_connections = 42;
  c.cache.enabled = true;
  c.cache.ttl = 1500ms;
  c.log_level = LogLevel::Error;
  const std::string text = c.describe();
  CHECK(contains(text, "POOL_MAX_CONNECTIONS=42\n"));
  CHECK(contains(text, "CACHE_ENABLED=true\n"));
  CHECK(contains(text, "METRICS_ENABLED=true\n"));
  CHECK(contains(text, "PROFILING_ENABLED=false\n"));
  CHECK(contains(text, "CACHE_TTL_MS=1500\n"));
  CHECK(contains(text, "GLMPROXY_LOG_LEVEL=error\n"));
  CHECK(contains(text, "ZAI_API_KEY=\n"));
  CHECK(contains(text, "ZAI_API_BASE=https://api.z.ai/api/paas/v4\n"));
  CHECK(contains(text, "APIKEYS_FILE=\n"));
  CHECK(text.back() == '\n');
}

TEST_CASE("redact_key", "[config][secret]") {
  using glmproxy::redact_key;
  CHECK(redact_key("").empty());
  CHECK(redact_key("a") == kEllipsis);
  CHECK(redact_key("abcd") == kEllipsis);
  CHECK(redact_key("abcde") == std::string("abcd") + std::string(kEllipsis));
  CHECK(redact_key("sk-secret-ABCDEFGHIJ") == std::string("sk-s") + std::string(kEllipsis));
  // Four characters, not four bytes: "ключ" is 8 bytes of UTF-8.
  CHECK(redact_key("\xD0\xBA\xD0\xBB\xD1\x8E\xD1\x87-secret") ==
        std::string("\xD0\xBA\xD0\xBB\xD1\x8E\xD1\x87") + std::string(kEllipsis));
}

TEST_CASE("other variable kinds", "[config][env]") {
  SECTION("log levels") {
    Result<Config> r = load({{"GLMPROXY_LOG_LEVEL", "TRACE"}});
    REQUIRE(r);
    CHECK(r->log_level == LogLevel::Trace);
    CHECK(contains(
        error_of(load({{"GLMPROXY_LOG_LEVEL", "loud"}})),
        R"(GLMPROXY_LOG_LEVEL must be one of trace/debug/info/warn/error/off, got "loud")"));
  }
  SECTION("names") {
    CHECK(contains(error_of(load({{"DEFAULT_MODEL", "glm 4.7"}})), "DEFAULT_MODEL"));
  }
  SECTION("long and odd values are echoed escaped and shortened") {
    const std::string message = error_of(load({{"POOL_MAX_CONNECTIONS", std::string(500, 'x')}}));
    CHECK(message.size() < 300);
    CHECK(contains(message, "\xE2\x80\xA6\""));
    CHECK(contains(error_of(load({{"POOL_WARM", "a\"b\\c\x7f"}})), R"(got "a\"b\\c\x7F")"));
  }
}

namespace {

// Clears every variable from_env() reads for the duration of a test and restores them after,
// so the test neither sees nor leaks the process environment.
class ScopedCleanEnv {
 public:
  ScopedCleanEnv() {
    names_.push_back("GLMPROXY_PRESET");
    for (const char* name : {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                             "no_proxy", "NO_PROXY"}) {
      names_.emplace_back(name);
    }
    for (const auto& variable : glmproxy::detail::config_variables()) {
      names_.emplace_back(variable.name);
    }
    for (const std::string& name : names_) {
      if (const char* v = std::getenv(name.c_str())) saved_[name] = v;
      ::unsetenv(name.c_str());
    }
  }
  ~ScopedCleanEnv() {
    for (const std::string& name : names_) {
      auto it = saved_.find(name);
      if (it != saved_.end()) {
        ::setenv(name.c_str(), it->second.c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }
  ScopedCleanEnv(const ScopedCleanEnv&) = delete;
  ScopedCleanEnv& operator=(const ScopedCleanEnv&) = delete;

 private:
  std::vector<std::string> names_;
  std::map<std::string, std::string> saved_;
};

}  // namespace

TEST_CASE("from_env() reads the process environment", "[config][env]") {
  ScopedCleanEnv clean;
  ::setenv("POOL_MAX_CONNECTIONS", "42", 1);
  ::setenv("CACHE_ENABLED", " yes ", 1);
  ::setenv("GLMPROXY_PRESET", "development", 1);
  Result<Config> r = Config::from_env();
  REQUIRE(r);
  CHECK(r->pool.max_connections == 42);
  CHECK(r->cache.enabled);
  CHECK(r->profiling.enabled);  // from the preset

  ::setenv("BATCH_MAX_SIZE", "lots", 1);
  CHECK(contains(error_of(Config::from_env()), R"(BATCH_MAX_SIZE must be an integer)"));

  ::unsetenv("BATCH_MAX_SIZE");
  ::unsetenv("POOL_MAX_CONNECTIONS");
  r = Config::from_env();
  REQUIRE(r);
  CHECK(r->pool.max_connections == 5);  // development's
}

TEST_CASE("describe() never shows a key with a control character, nor a line it forges",
          "[config][secret][describe]") {
  // A key (or admin token) set in code with a control character in it: validate() refuses it,
  // but describe() is what an application logs, before or instead of validating. It shows the
  // key as a refusal message does: its first four characters and "…", control characters
  // escaped, so the NAME=value lines stay one per variable.
  struct Case {
    std::string key;
    std::string shown;  // what describe() and the from_env() refusal show of it
  };
  const std::vector<Case> cases = {
      {"sk-secret\x01"
       "ABCDEFGHIJ",
       "sk-s\xE2\x80\xA6"},
      {"ab\ncdefgh-secret", "ab\\nc\xE2\x80\xA6"},
      {"sk-\rINJECTED=1-secret", "sk-\\r\xE2\x80\xA6"},
      {"\x01\x02\x03\x04secretABCDEF", "\\x01\\x02\\x03\\x04\xE2\x80\xA6"},
      {"a\x7f"
       "bcd-secret",
       "a\\x7Fbc\xE2\x80\xA6"},
      {"\x1b[2Jsecret", "\\x1B[2J\xE2\x80\xA6"},
  };
  const std::size_t variables = glmproxy::detail::config_variables().size();
  auto check_no_control = [](const std::string& text, bool newlines_allowed) {
    for (char ch : text) {
      const auto u = static_cast<unsigned char>(ch);
      if (newlines_allowed && ch == '\n') continue;
      INFO("byte " << static_cast<int>(u));
      CHECK_FALSE((u < 0x20 || u == 0x7F));
    }
  };
  for (const Case& k : cases) {
    for (const std::string name : {"ZAI_API_KEY", "GLMPROXY_ADMIN_TOKEN"}) {
      INFO(name << " with a control character, case shown as " << k.shown);
      Config c;
      if (name == "ZAI_API_KEY") {
        c.upstream.api_key = k.key;
      } else {
        c.admin.token = k.key;
      }
      const std::string text = c.describe();
      check_no_control(text, true);
      CHECK_FALSE(contains(text, "secret"));
      CHECK_FALSE(contains(text, "INJECTED"));
      CHECK(contains("\n" + text, "\n" + name + "=" + k.shown + "\n"));  // its own line
      // One line per variable, each starting with its name: nothing was forged.
      const auto lines = describe_lines(c);
      CHECK(lines.size() == variables);
      CHECK(static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) == variables);
      for (const auto& variable : glmproxy::detail::config_variables()) {
        CHECK(lines.count(std::string(variable.name)) == 1);
      }
      CHECK(contains(error_of(c.validate()), name + " must not contain spaces or control"));

      // The same key from the environment is refused, showing no more of it.
      const std::string message = error_of(load({{name, k.key}}));
      check_no_control(message, false);
      CHECK_FALSE(contains(message, "secret"));
      CHECK_FALSE(contains(message, "INJECTED"));
      CHECK(contains(message, name + " must not contain spaces or control characters, got \"" +
                                  k.shown + "\""));
    }
  }
}
