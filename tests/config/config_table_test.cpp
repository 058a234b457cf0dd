// Table-driven: one row per variable of docs/configuration.md, written by hand from the doc.
// For every integer, min-1 and max+1 are refused (naming the variable), min and max accepted,
// and the documented default is what from_env() gives when the variable is unset; booleans,
// enums and strings get their default and a malformed value. A second test reads the doc
// itself at test time: every variable in its tables needs a row here, and the doc's default and
// range cells must say what the row says, so a new variable, or a range changed on one side
// only, fails.

#include <catch2/catch.hpp>

#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/variables.hpp"
#include "glmproxy/config.hpp"

#ifndef GLMPROXY_SOURCE_DIR
#error "GLMPROXY_SOURCE_DIR must name the source tree (tests/CMakeLists.txt sets it)"
#endif

using glmproxy::Config;
using glmproxy::ErrorCode;
using glmproxy::Milliseconds;
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

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

std::string message_of(const Result<Config>& r) {
  if (r) return "<loaded without error>";
  CHECK(r.error().code == ErrorCode::InvalidConfig);
  return r.error().message;
}

std::string message_of(const Result<void>& r) {
  if (r) return "<valid>";
  CHECK(r.error().code == ErrorCode::InvalidConfig);
  return r.error().message;
}

// The three integer field types of Config, as int64 and back.
std::int64_t as_i64(int v) { return v; }
std::int64_t as_i64(std::size_t v) { return static_cast<std::int64_t>(v); }
std::int64_t as_i64(Milliseconds v) { return static_cast<std::int64_t>(v.count()); }
void assign(int& f, std::int64_t v) { f = static_cast<int>(v); }
void assign(std::size_t& f, std::int64_t v) { f = static_cast<std::size_t>(v); }
void assign(Milliseconds& f, std::int64_t v) { f = Milliseconds{v}; }
template <class T>
constexpr bool is_unsigned_field(const T&) {
  return std::is_same_v<T, std::size_t>;
}

enum class Kind { Integer, Boolean, Enum, Text };

struct Row {
  std::string name;
  Kind kind = Kind::Text;
  // Integers: the documented inclusive range and default.
  std::int64_t min = 0, max = 0, def = 0;
  std::function<std::int64_t(const Config&)> get;
  std::function<void(Config&, std::int64_t)> set;
  bool unsigned_field = false;  // a size_t: min-1 of 0 cannot be set in code
  // Other variables set with every value of this one, so that min and max pass validate()'s
  // contradiction checks (e.g. POOL_MIN_CONNECTIONS=10000 needs POOL_MAX_CONNECTIONS=10000).
  Env companions;
  // Booleans.
  bool def_bool = false;
  std::function<bool(const Config&)> get_bool;
  // Enums and strings.
  std::string def_text;
  std::function<std::string(const Config&)> get_text;
  std::vector<std::string> malformed;  // booleans, enums and strings: each is refused
};

#define GLMPROXY_INT_FIELD(member)                  \
  [](const Config& c) { return as_i64(c.member); }, \
      [](Config& c, std::int64_t v) { assign(c.member, v); }, is_unsigned_field(Config{}.member)

Row integer(std::string name, std::int64_t min, std::int64_t max, std::int64_t def,
            std::function<std::int64_t(const Config&)> get,
            std::function<void(Config&, std::int64_t)> set, bool unsigned_field,
            Env companions = {}) {
  Row r;
  r.name = std::move(name);
  r.kind = Kind::Integer;
  r.min = min;
  r.max = max;
  r.def = def;
  r.get = std::move(get);
  r.set = std::move(set);
  r.unsigned_field = unsigned_field;
  r.companions = std::move(companions);
  return r;
}

Row boolean(std::string name, bool def, std::function<bool(const Config&)> get) {
  Row r;
  r.name = std::move(name);
  r.kind = Kind::Boolean;
  r.def_bool = def;
  r.get_bool = std::move(get);
  r.malformed = {"maybe", "2", "enabled", "tru"};
  return r;
}

Row text(std::string name, std::string def, std::function<std::string(const Config&)> get,
         std::vector<std::string> malformed, Kind kind = Kind::Text) {
  Row r;
  r.name = std::move(name);
  r.kind = kind;
  r.def_text = std::move(def);
  r.get_text = std::move(get);
  r.malformed = std::move(malformed);
  return r;
}

constexpr std::int64_t kMinute = 60'000;
constexpr std::int64_t kHour = 60 * kMinute;
constexpr std::int64_t kDay = 24 * kHour;
constexpr std::int64_t kMiB = 1 << 20;
constexpr std::int64_t kGiB = 1 << 30;

// docs/configuration.md, table by table, in its order. Written from the doc, not from the
// parser's table: a range changed in src/config/env_parse.cpp alone fails here.
const std::vector<Row>& rows() {
  static const std::vector<Row> kRows = [] {
    std::vector<Row> r;
    // GLMPROXY_PRESET is in the doc's prose, not a table; it has a row all the same.
    r.push_back(text(
        "GLMPROXY_PRESET", "default",
        [](const Config& c) {
          // No field of its own: the preset a config equals, by its describe() lines.
          for (glmproxy::Preset p : {glmproxy::Preset::Default, glmproxy::Preset::LowLatency,
                                     glmproxy::Preset::HighThroughput,
                                     glmproxy::Preset::Development, glmproxy::Preset::Edge}) {
            if (Config::preset(p).describe() == c.describe()) return std::string(to_string(p));
          }
          return std::string("<no preset>");
        },
        {"turbo", "low latency", "edge2"}, Kind::Enum));

    // Upstream.
    r.push_back(text("ZAI_API_KEY", "", [](const Config& c) { return c.upstream.api_key; },
                     {"sk-bad key-123456", "sk-bad\x01key-123456"}));
    r.push_back(text("ZAI_API_BASE", "https://api.z.ai/api/paas/v4",
                     [](const Config& c) { return c.upstream.openai_base_url; },
                     {"ftp://api.z.ai/v4", "api.z.ai/api/paas/v4", "https://", "https://h/v4#frag",
                      "https://h:99999/v4"}));
    r.push_back(text("ANTHROPIC_API_BASE", "https://api.z.ai/api/anthropic",
                     [](const Config& c) { return c.upstream.anthropic_base_url; },
                     {"ftp://api.z.ai/anthropic", "https://[zz::1]/", "https://h/a b"}));
    r.push_back(text("DEFAULT_MODEL", "glm-4.7",
                     [](const Config& c) { return c.upstream.default_model; },
                     {"glm 4.7", "glm\x01"}));
    r.push_back(text("GLMPROXY_EMBEDDING_MODEL", "embedding-3",
                     [](const Config& c) { return c.upstream.embedding_model; }, {"embedding 3"}));
    r.push_back(text("GLMPROXY_ANTHROPIC_VERSION", "2023-06-01",
                     [](const Config& c) { return c.upstream.anthropic_version; }, {"2023 06 01"}));
    r.push_back(text("GLMPROXY_CA_FILE", "", [](const Config& c) { return c.upstream.ca_file; },
                     {"/nonexistent-glmproxy-dir/ca.pem", "/", "ca\x01.pem"}));
    r.push_back(text("GLMPROXY_CA_PATH", "", [](const Config& c) { return c.upstream.ca_path; },
                     {"/nonexistent-glmproxy-dir", "/dev/null", "certs\x01"}));
    r.push_back(
        text("GLMPROXY_PROXY", "", [](const Config& c) { return c.upstream.proxy; },
             {"gopher://proxy:3128", "http://proxy:3128/path", "http://proxy:0", "proxy host"}));
    r.push_back(text("GLMPROXY_NO_PROXY", "", [](const Config& c) { return c.upstream.no_proxy; },
                     {"a\nb", "localhost\x01"}));

    // Timeouts and retries.
    r.push_back(integer("GLMPROXY_CONNECT_TIMEOUT_MS", 1, 600'000, 10'000,
                        GLMPROXY_INT_FIELD(timeouts.connect),
                        {{"GLMPROXY_TOTAL_TIMEOUT_MS", "86400000"}}));
    r.push_back(integer("GLMPROXY_FIRST_BYTE_TIMEOUT_MS", 1, kDay, 300'000,
                        GLMPROXY_INT_FIELD(timeouts.first_byte)));
    r.push_back(integer("GLMPROXY_STREAM_IDLE_TIMEOUT_MS", 1, kDay, 120'000,
                        GLMPROXY_INT_FIELD(timeouts.stream_idle)));
    r.push_back(integer("GLMPROXY_TOTAL_TIMEOUT_MS", 1, kDay, 600'000,
                        GLMPROXY_INT_FIELD(timeouts.total),
                        {{"GLMPROXY_CONNECT_TIMEOUT_MS", "1"}}));
    r.push_back(integer("GLMPROXY_MAX_ATTEMPTS", 1, 20, 3, GLMPROXY_INT_FIELD(retry.max_attempts)));
    r.push_back(integer("GLMPROXY_RETRY_BASE_DELAY_MS", 0, 600'000, 500,
                        GLMPROXY_INT_FIELD(retry.base_delay),
                        {{"GLMPROXY_RETRY_MAX_DELAY_MS", "3600000"}}));
    r.push_back(integer("GLMPROXY_RETRY_MAX_DELAY_MS", 0, 3'600'000, 8000,
                        GLMPROXY_INT_FIELD(retry.max_delay),
                        {{"GLMPROXY_RETRY_BASE_DELAY_MS", "0"}}));
    r.push_back(integer("GLMPROXY_RETRY_AFTER_MAX_MS", 0, kDay, 60'000,
                        GLMPROXY_INT_FIELD(retry.retry_after_cap)));

    // Connection pool.
    r.push_back(integer("POOL_MIN_CONNECTIONS", 0, 10'000, 2,
                        GLMPROXY_INT_FIELD(pool.min_connections),
                        {{"POOL_MAX_CONNECTIONS", "10000"}}));
    r.push_back(integer("POOL_MAX_CONNECTIONS", 1, 10'000, 10,
                        GLMPROXY_INT_FIELD(pool.max_connections), {{"POOL_MIN_CONNECTIONS", "0"}}));
    r.push_back(boolean("POOL_WARM", false, [](const Config& c) { return c.pool.warm; }));
    r.push_back(integer("POOL_ACQUIRE_TIMEOUT", 0, 3'600'000, 5000,
                        GLMPROXY_INT_FIELD(pool.acquire_timeout)));
    r.push_back(
        boolean("DISABLE_CONNECTION_POOL", false, [](const Config& c) { return c.pool.disabled; }));
    r.push_back(integer("GLMPROXY_POOL_MAX_IDLE_MS", 1000, kDay, 30'000,
                        GLMPROXY_INT_FIELD(pool.max_idle)));

    // Upstream protection.
    r.push_back(integer("GLMPROXY_MODEL_CONCURRENCY", 0, 10'000, 0,
                        GLMPROXY_INT_FIELD(admission.model_concurrency)));
    r.push_back(integer("GLMPROXY_AIMD_INCREASE_INTERVAL_MS", 0, 3'600'000, 5000,
                        GLMPROXY_INT_FIELD(admission.increase_interval)));
    r.push_back(integer("GLMPROXY_BREAKER_FAILURES", 0, 1'000'000, 5,
                        GLMPROXY_INT_FIELD(admission.breaker_failures)));
    r.push_back(integer("GLMPROXY_BREAKER_WINDOW_MS", 1, kDay, 30'000,
                        GLMPROXY_INT_FIELD(admission.breaker_window)));
    r.push_back(integer("GLMPROXY_BREAKER_COOLDOWN_MS", 1, kDay, 10'000,
                        GLMPROXY_INT_FIELD(admission.breaker_cooldown)));

    // Response cache.
    r.push_back(boolean("CACHE_ENABLED", false, [](const Config& c) { return c.cache.enabled; }));
    r.push_back(integer("CACHE_TTL_MS", 1, 2'592'000'000, 300'000, GLMPROXY_INT_FIELD(cache.ttl)));
    r.push_back(
        integer("CACHE_MAX_SIZE", 0, 100'000'000, 1000, GLMPROXY_INT_FIELD(cache.max_entries)));
    r.push_back(integer("GLMPROXY_CACHE_MAX_BYTES", 0, 1'099'511'627'776, 67'108'864,
                        GLMPROXY_INT_FIELD(cache.max_bytes)));
    r.push_back(boolean("GLMPROXY_COALESCE_ENABLED", true,
                        [](const Config& c) { return c.cache.coalesce; }));

    // Batching.
    r.push_back(
        boolean("BATCHING_ENABLED", false, [](const Config& c) { return c.batch.enabled; }));
    r.push_back(integer("BATCH_WINDOW_MS", 1, 60'000, 50, GLMPROXY_INT_FIELD(batch.window)));
    r.push_back(integer("BATCH_MAX_SIZE", 1, 10'000, 10, GLMPROXY_INT_FIELD(batch.max_size),
                        {{"BATCH_MAX_QUEUE_SIZE", "10000"}}));
    r.push_back(integer("BATCH_MAX_QUEUE_SIZE", 1, 10'000'000, 1000,
                        GLMPROXY_INT_FIELD(batch.max_queue_size), {{"BATCH_MAX_SIZE", "1"}}));

    // Streaming.
    r.push_back(integer("STREAM_REQUEST_CHUNK_SIZE", 1024, 16 * kMiB, 32'768,
                        GLMPROXY_INT_FIELD(stream.request_chunk_size)));
    r.push_back(integer("STREAM_RESPONSE_CHUNK_SIZE", 1024, 524'288, 32'768,
                        GLMPROXY_INT_FIELD(stream.response_chunk_size)));
    r.push_back(boolean("STREAM_BUFFER_POOL_ENABLED", true,
                        [](const Config& c) { return c.stream.buffer_pool_enabled; }));
    r.push_back(integer("GLMPROXY_SSE_MAX_LINE_BYTES", 1024, kGiB, kMiB,
                        GLMPROXY_INT_FIELD(stream.max_line_bytes),
                        {{"GLMPROXY_SSE_MAX_EVENT_BYTES", std::to_string(kGiB)}}));
    r.push_back(integer("GLMPROXY_SSE_MAX_EVENT_BYTES", 1024, kGiB, 8 * kMiB,
                        GLMPROXY_INT_FIELD(stream.max_event_bytes),
                        {{"GLMPROXY_SSE_MAX_LINE_BYTES", "1024"}}));
    r.push_back(integer("GLMPROXY_MAX_RESPONSE_BYTES", 4096, 4 * kGiB, 32 * kMiB,
                        GLMPROXY_INT_FIELD(stream.max_response_bytes)));

    // Tenant keys and usage.
    r.push_back(text("APIKEYS_FILE", "", [](const Config& c) { return c.keys.file; },
                     {"keys\x01.json", "keys\n.json"}));
    r.push_back(
        integer("APIKEY_CACHE_SIZE", 1, 100'000'000, 1000, GLMPROXY_INT_FIELD(keys.cache_size)));
    r.push_back(integer("APIKEY_CACHE_TTL_MS", 1, 2'592'000'000, 300'000,
                        GLMPROXY_INT_FIELD(keys.cache_ttl)));
    r.push_back(integer("RATE_LIMIT_BATCH_INTERVAL_MS", 1, 3'600'000, 5000,
                        GLMPROXY_INT_FIELD(rate_limit.batch_interval)));
    r.push_back(integer("RATE_LIMIT_MAX_BATCH_SIZE", 1, 1'000'000, 100,
                        GLMPROXY_INT_FIELD(rate_limit.max_batch_size)));

    // Metrics, profiling and logging.
    r.push_back(
        boolean("METRICS_ENABLED", true, [](const Config& c) { return c.metrics.enabled; }));
    r.push_back(integer("METRICS_RETENTION_MS", 1000, 604'800'000, 60'000,
                        GLMPROXY_INT_FIELD(metrics.retention),
                        {{"METRICS_AGGREGATION_INTERVAL_MS", "10"}}));
    r.push_back(integer("METRICS_AGGREGATION_INTERVAL_MS", 10, kDay, 1000,
                        GLMPROXY_INT_FIELD(metrics.aggregation_interval),
                        {{"METRICS_RETENTION_MS", "604800000"}}));
    r.push_back(
        boolean("PROFILING_ENABLED", false, [](const Config& c) { return c.profiling.enabled; }));
    r.push_back(integer("GLMPROXY_PROFILING_RING_SIZE", 1, 10'000'000, 1000,
                        GLMPROXY_INT_FIELD(profiling.ring_size)));
    r.push_back(
        boolean("GLMPROXY_ADMIN_ENABLED", false, [](const Config& c) { return c.admin.enabled; }));
    r.push_back(text("GLMPROXY_ADMIN_HOST", "127.0.0.1",
                     [](const Config& c) { return c.admin.host; },
                     {"10.0.0.1", "0.0.0.0", "example.com", "local host"}));
    r.push_back(integer("GLMPROXY_ADMIN_PORT", 0, 65'535, 0, GLMPROXY_INT_FIELD(admin.port)));
    r.push_back(text("GLMPROXY_ADMIN_TOKEN", "", [](const Config& c) { return c.admin.token; },
                     {"admin token-1234", "admin\ttoken-1234"}));
    r.push_back(text(
        "GLMPROXY_LOG_LEVEL", "warn",
        [](const Config& c) { return std::string(to_string(c.log_level)); },
        {"loud", "warnings", "5"}, Kind::Enum));
    r.push_back(
        integer("GLMPROXY_CALLBACK_THREADS", 1, 256, 2, GLMPROXY_INT_FIELD(callback_threads)));
    return r;
  }();
  return kRows;
}

#undef GLMPROXY_INT_FIELD

// A size_t field cannot hold more than SIZE_MAX (the doc: "SIZE_MAX on 32-bit").
std::int64_t effective_max(const Row& row) {
  if (row.unsigned_field && sizeof(std::size_t) < 8) {
    return std::min<std::int64_t>(row.max, static_cast<std::int64_t>(SIZE_MAX));
  }
  return row.max;
}

Env with(const Row& row, const std::string& value) {
  Env env = row.companions;
  env[row.name] = value;
  return env;
}

}  // namespace

TEST_CASE("config table: integers refuse min-1 and max+1, accept min and max", "[config][table]") {
  for (const Row& row : rows()) {
    if (row.kind != Kind::Integer) continue;
    const std::int64_t max = effective_max(row);
    const std::string range = row.name + " must be an integer in [" + std::to_string(row.min) +
                              ", " + std::to_string(max) + "], got \"";
    for (std::int64_t bad : {row.min - 1, max + 1}) {
      INFO(row.name << "=" << bad);
      const std::string message = message_of(load(with(row, std::to_string(bad))));
      CHECK(contains(message, range + std::to_string(bad) + "\""));
    }
    for (std::int64_t good : {row.min, max}) {
      INFO(row.name << "=" << good);
      Result<Config> r = load(with(row, std::to_string(good)));
      INFO((r ? "" : r.error().message));
      REQUIRE(r);
      CHECK(row.get(*r) == good);
    }
  }
}

TEST_CASE("config table: validate() refuses min-1 and max+1 set from code", "[config][table]") {
  for (const Row& row : rows()) {
    if (row.kind != Kind::Integer) continue;
    std::vector<std::int64_t> bad;
    if (!(row.unsigned_field && row.min == 0)) bad.push_back(row.min - 1);
    if (effective_max(row) < INT64_MAX && !(row.unsigned_field && sizeof(std::size_t) < 8)) {
      bad.push_back(effective_max(row) + 1);
    }
    for (std::int64_t v : bad) {
      INFO(row.name << " = " << v << " in code");
      // The companions' values, then this one, on a Config that is otherwise the default.
      Result<Config> base = load(row.companions);
      REQUIRE(base);
      Config c = *base;
      row.set(c, v);
      CHECK(contains(message_of(c.validate()), row.name + " must be an integer in ["));
    }
    Result<Config> base = load(row.companions);
    REQUIRE(base);
    for (std::int64_t v : {row.min, effective_max(row)}) {
      INFO(row.name << " = " << v << " in code");
      Config c = *base;
      row.set(c, v);
      Result<void> ok = c.validate();
      INFO((ok ? "" : ok.error().message));
      CHECK(ok);
    }
  }
}

TEST_CASE("config table: the documented default is what from_env() gives unset",
          "[config][table]") {
  Result<Config> unset = load({});
  REQUIRE(unset);
  const Config code;  // and what a Config built in code starts from
  for (const Row& row : rows()) {
    INFO(row.name);
    switch (row.kind) {
      case Kind::Integer:
        CHECK(row.get(*unset) == row.def);
        CHECK(row.get(code) == row.def);
        break;
      case Kind::Boolean:
        CHECK(row.get_bool(*unset) == row.def_bool);
        CHECK(row.get_bool(code) == row.def_bool);
        break;
      case Kind::Enum:
      case Kind::Text:
        CHECK(row.get_text(*unset) == row.def_text);
        CHECK(row.get_text(code) == row.def_text);
        break;
    }
  }
}

TEST_CASE("config table: booleans, enums and strings refuse a malformed value", "[config][table]") {
  for (const Row& row : rows()) {
    if (row.kind == Kind::Integer) continue;
    REQUIRE_FALSE(row.malformed.empty());
    for (const std::string& bad : row.malformed) {
      INFO(row.name << "=" << bad);
      CHECK(contains(message_of(load(with(row, bad))), row.name + " must "));
    }
  }
}

TEST_CASE("config table: booleans take both values, enums their documented names",
          "[config][table]") {
  for (const Row& row : rows()) {
    if (row.kind != Kind::Boolean) continue;
    INFO(row.name);
    for (const auto& [value, expected] : std::vector<std::pair<std::string, bool>>{
             {"true", true}, {"false", false}, {"On", true}, {"0", false}}) {
      Result<Config> r = load(with(row, value));
      REQUIRE(r);
      CHECK(row.get_bool(*r) == expected);
    }
  }
  for (const auto& [value, expected] :
       std::vector<std::pair<std::string, std::string>>{{"trace", "trace"},
                                                        {"DEBUG", "debug"},
                                                        {"info", "info"},
                                                        {"warning", "warn"},
                                                        {"error", "error"},
                                                        {"off", "off"},
                                                        {"none", "off"}}) {
    INFO("GLMPROXY_LOG_LEVEL=" << value);
    Result<Config> r = load({{"GLMPROXY_LOG_LEVEL", value}});
    REQUIRE(r);
    CHECK(std::string(to_string(r->log_level)) == expected);
  }
}

TEST_CASE("config table: APIKEY_CACHE_TTL_MS=0 is refused, from the environment and from code",
          "[config][table]") {
  // The documented minimum is 1: a key cache that trusts a loaded key for 0 ms reads the key
  // file on every request.
  CHECK(contains(message_of(load({{"APIKEY_CACHE_TTL_MS", "0"}})),
                 R"(APIKEY_CACHE_TTL_MS must be an integer in [1, 2592000000], got "0")"));
  Config c;
  c.keys.cache_ttl = Milliseconds{0};
  CHECK(contains(message_of(c.validate()), "APIKEY_CACHE_TTL_MS must be an integer in [1, "));
  Result<Config> one = load({{"APIKEY_CACHE_TTL_MS", "1"}});
  REQUIRE(one);
  CHECK(one->keys.cache_ttl == Milliseconds{1});
}

TEST_CASE("config table: one row per variable the parser reads", "[config][table]") {
  std::set<std::string> table;
  for (const Row& row : rows()) CHECK(table.insert(row.name).second);  // no duplicates
  std::set<std::string> parsed = {"GLMPROXY_PRESET"};  // read before the table's variables
  for (const auto& variable : glmproxy::detail::config_variables()) {
    parsed.insert(std::string(variable.name));
  }
  CHECK(table == parsed);
}

namespace {

struct DocRow {
  std::string name;
  std::map<std::string, std::string> cells;  // column header -> cell text
  std::string section;                       // the "## " heading it is under
};

std::vector<std::string> split_cells(const std::string& line) {
  // "| a | b |" -> {"a", "b"}; no cell of the doc's tables holds a '|'.
  std::vector<std::string> cells;
  std::size_t start = 1;
  while (start < line.size()) {
    std::size_t end = line.find('|', start);
    if (end == std::string::npos) break;
    std::string cell = line.substr(start, end - start);
    const auto first = cell.find_first_not_of(' ');
    const auto last = cell.find_last_not_of(' ');
    cells.push_back(first == std::string::npos ? "" : cell.substr(first, last - first + 1));
    start = end + 1;
  }
  return cells;
}

// "`NAME`" with NAME of capitals, digits and '_' -> NAME; anything else -> "".
std::string variable_cell(const std::string& cell) {
  if (cell.size() < 3 || cell.front() != '`' || cell.back() != '`') return {};
  const std::string name = cell.substr(1, cell.size() - 2);
  for (char ch : name) {
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_')) return {};
  }
  return name;
}

// Every table row of docs/configuration.md whose first cell is one variable name.
std::vector<DocRow> doc_rows() {
  const std::string path = std::string(GLMPROXY_SOURCE_DIR) + "/docs/configuration.md";
  std::ifstream in(path);
  INFO(path);
  REQUIRE(in);
  std::vector<DocRow> out;
  std::vector<std::string> header;
  std::string section, line;
  bool in_table = false;
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) section = line.substr(3);
    if (line.empty() || line.front() != '|') {
      in_table = false;
      continue;
    }
    std::vector<std::string> cells = split_cells(line);
    if (!in_table) {  // a table's first line is its header
      header = cells;
      in_table = true;
      continue;
    }
    if (!cells.empty() && cells[0].find("---") == 0) continue;  // the |---| line
    const std::string name = cells.empty() ? "" : variable_cell(cells[0]);
    if (name.empty()) continue;
    DocRow row{name, {}, section};
    for (std::size_t i = 1; i < cells.size() && i < header.size(); ++i) {
      row.cells[header[i]] = cells[i];
    }
    out.push_back(std::move(row));
  }
  return out;
}

// The leading decimal number of `s` ("67108864 (64 MiB)" -> 67108864), or nullopt.
std::optional<std::int64_t> leading_int(std::string_view s) {
  std::size_t i = 0;
  std::int64_t v = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') v = v * 10 + (s[i++] - '0');
  if (i == 0) return std::nullopt;
  return v;
}

// "1 – 600000 (10 min)" -> {1, 600000} (an en dash between the numbers).
std::optional<std::pair<std::int64_t, std::int64_t>> doc_range(const std::string& cell) {
  const std::string dash = " \xE2\x80\x93 ";
  const auto at = cell.find(dash);
  if (at == std::string::npos) return std::nullopt;
  auto lo = leading_int(cell);
  auto hi = leading_int(std::string_view(cell).substr(at + dash.size()));
  if (!lo || !hi) return std::nullopt;
  return std::make_pair(*lo, *hi);
}

// What a default cell says as text: "(empty...)" -> "", "`x`" -> "x", else the cell.
std::string doc_default_text(const std::string& cell) {
  if (cell.rfind("(empty", 0) == 0) return {};
  if (cell.size() >= 2 && cell.front() == '`') {
    const auto close = cell.find('`', 1);
    if (close != std::string::npos) return cell.substr(1, close - 1);
  }
  return cell;
}

}  // namespace

TEST_CASE("config table: every variable in docs/configuration.md has a row that agrees",
          "[config][table][docs]") {
  std::map<std::string, const Row*> by_name;
  for (const Row& row : rows()) by_name[row.name] = &row;
  const std::vector<DocRow> doc = doc_rows();
  REQUIRE(doc.size() >= 59);  // the Variables tables alone have 59 rows
  std::set<std::string> in_variables_tables;
  for (const DocRow& d : doc) {
    INFO(d.name << " (docs/configuration.md, " << d.section << ")");
    auto it = by_name.find(d.name);
    // A new variable in the doc needs a row above.
    REQUIRE(it != by_name.end());
    const Row& row = *it->second;
    if (d.section == "Variables") in_variables_tables.insert(d.name);
    if (auto cell = d.cells.find("default"); cell != d.cells.end()) {
      const std::string& text = cell->second;
      INFO("default cell: " << text);
      switch (row.kind) {
        case Kind::Integer:
          CHECK(leading_int(text) == std::optional<std::int64_t>(row.def));
          break;
        case Kind::Boolean:
          CHECK(text == (row.def_bool ? "true" : "false"));
          break;
        case Kind::Enum:
        case Kind::Text:
          CHECK(doc_default_text(text) == row.def_text);
          break;
      }
    }
    if (auto cell = d.cells.find("range"); cell != d.cells.end()) {
      INFO("range cell: " << cell->second);
      if (row.kind == Kind::Integer) {
        CHECK(doc_range(cell->second) == std::make_optional(std::make_pair(row.min, row.max)));
      } else if (row.kind == Kind::Boolean) {
        CHECK(cell->second == "boolean");
      } else {
        CHECK(cell->second != "boolean");  // says what text it takes
      }
    }
  }
  // And the other way: every variable the parser reads is documented in a Variables table.
  for (const auto& variable : glmproxy::detail::config_variables()) {
    INFO(variable.name);
    CHECK(in_variables_tables.count(std::string(variable.name)) == 1);
  }
}
