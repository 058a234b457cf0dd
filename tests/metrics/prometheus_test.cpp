// The Prometheus exposition: one HELP and TYPE per family, every sample in a declared family,
// real cumulative histograms, counters that moved with the traffic; nothing with metrics off.

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>

#include "metrics/traffic.hpp"

namespace {

struct Parsed {
  std::map<std::string, std::string> types;  // family -> type
  std::map<std::string, int> help_count, type_count;
  std::map<std::string, double> samples;  // full sample name with labels -> value
  std::set<std::string> orphans;          // samples of no declared family
};

std::string family_of(const std::string& metric, const std::map<std::string, std::string>& types) {
  if (types.count(metric)) return metric;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s(suffix);
    if (metric.size() > s.size() && metric.compare(metric.size() - s.size(), s.size(), s) == 0) {
      const std::string base = metric.substr(0, metric.size() - s.size());
      if (types.count(base) && types.at(base) == "histogram") return base;
    }
  }
  return {};
}

Parsed parse(const std::string& text) {
  Parsed p;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      ++p.help_count[line.substr(7, line.find(' ', 7) - 7)];
    } else if (line.rfind("# TYPE ", 0) == 0) {
      const auto name_end = line.find(' ', 7);
      const std::string name = line.substr(7, name_end - 7);
      ++p.type_count[name];
      p.types[name] = line.substr(name_end + 1);
    } else if (!line.empty()) {
      const auto space = line.rfind(' ');
      const std::string key = line.substr(0, space);
      p.samples[key] = std::stod(line.substr(space + 1));
      const std::string metric = key.substr(0, key.find('{'));
      if (family_of(metric, p.types).empty()) p.orphans.insert(metric);
    }
  }
  return p;
}

}  // namespace

TEST_CASE("prometheus: families, histograms and counters after mixed traffic", "[metrics]") {
  std::string text;
  REQUIRE(metrics_test::mixed_traffic(text));
  const Parsed p = parse(text);
  CHECK(p.orphans.empty());
  for (const auto& [family, n] : p.type_count) {
    INFO(family);
    CHECK(n == 1);
    CHECK(p.help_count.at(family) == 1);
    CHECK(family.rfind("glm_proxy_", 0) == 0);
    if (p.types.at(family) == "counter") CHECK(family.size() > 6);
  }
  CHECK(p.types.at("glm_proxy_requests_total") == "counter");
  CHECK(p.types.at("glm_proxy_request_duration_seconds") == "histogram");
  CHECK(p.samples.at(R"(glm_proxy_requests_total{api="openai",outcome="ok"})") >= 2);
  CHECK(p.samples.at(R"(glm_proxy_requests_total{api="openai",outcome="cache_hit"})") == 2);
  CHECK(p.samples.at(R"(glm_proxy_requests_total{api="openai",outcome="error"})") == 2);
  CHECK(p.samples.at(R"(glm_proxy_requests_total{api="anthropic",outcome="ok"})") == 1);
  CHECK(p.samples.at(R"(glm_proxy_requests_total{api="embeddings",outcome="ok"})") == 1);
  CHECK(p.samples.at(R"(glm_proxy_errors_total{code="UpstreamError"})") == 1);
  CHECK(p.samples.at(R"(glm_proxy_errors_total{code="InvalidArgument"})") == 1);
  CHECK(p.samples.at("glm_proxy_cache_hits_total") == 2);
  CHECK(p.samples.at(R"(glm_proxy_tokens_total{kind="completion"})") > 0);
  CHECK(p.samples.at("glm_proxy_time_to_first_token_seconds_count") == 1);
  // Histogram buckets are cumulative and end at the count.
  double previous = 0;
  for (const char* le : {"0.001", "0.01", "0.1", "1", "10", "300", "+Inf"}) {
    const double v = p.samples.at(
        std::string(R"(glm_proxy_request_duration_seconds_bucket{api="openai",le=")") + le + "\"}");
    CHECK(v >= previous);
    previous = v;
  }
  CHECK(previous == p.samples.at(R"(glm_proxy_request_duration_seconds_count{api="openai"})"));
  CHECK(previous == 8);
  // Upstream traffic, the pool and the process.
  CHECK(p.samples.at("glm_proxy_upstream_attempts_total") == 10);
  CHECK(p.samples.at("glm_proxy_upstream_retries_total") == 3);
  CHECK(p.samples.at("glm_proxy_upstream_tls_handshakes_total") == 0);  // plain http
  CHECK(p.samples.at("glm_proxy_upstream_sent_bytes_total") > 10 * 100);
  CHECK(p.samples.at("glm_proxy_upstream_received_bytes_total") > 10 * 100);
  CHECK(p.samples.at("glm_proxy_pool_acquire_wait_seconds_count") == 10);
  CHECK(p.samples.at(R"(glm_proxy_pool_connections{state="in_use"})") == 0);
  CHECK(p.samples.at(R"(glm_proxy_pool_connections{state="idle"})") >= 1);
  CHECK(p.samples.at("glm_proxy_pool_connections_opened_total") >= 1);
  CHECK(p.samples.at("glm_proxy_pool_max_connections") == 10);
  CHECK(p.samples.at("glm_proxy_process_resident_memory_bytes") > 1 << 20);
  CHECK(p.samples.at("glm_proxy_process_cpu_seconds_total") > 0);
  CHECK(p.types.at("glm_proxy_pool_acquire_wait_seconds") == "histogram");
  // Upstream protection: the 429/1302 halved glm-4.7's limit of 10 (POOL_MAX_CONNECTIONS).
  CHECK(p.types.at("glm_proxy_model_concurrency_decreases_total") == "counter");
  CHECK(p.samples.at("glm_proxy_model_concurrency_decreases_total") == 1);
  CHECK(p.types.at("glm_proxy_model_concurrency_max") == "gauge");
  CHECK(p.samples.at("glm_proxy_model_concurrency_max") == 10);
  CHECK(p.types.at("glm_proxy_model_concurrency_limit") == "gauge");
  CHECK(p.samples.at(R"(glm_proxy_model_concurrency_limit{model="glm-4.7"})") == 5);
  CHECK(p.types.at("glm_proxy_breaker_opened_total") == "counter");
  CHECK(p.samples.at("glm_proxy_breaker_opened_total") == 0);  // never 5 failures in a row
  CHECK(p.types.at("glm_proxy_breaker_rejections_total") == "counter");
  CHECK(p.samples.at("glm_proxy_breaker_rejections_total") == 0);
}

TEST_CASE("prometheus: METRICS_ENABLED=false records nothing on the request path", "[metrics]") {
  std::string text;
  REQUIRE(metrics_test::mixed_traffic(text, /*metrics_enabled=*/false));
  const Parsed p = parse(text);
  CHECK(p.samples.at(R"(glm_proxy_requests_total{api="openai",outcome="ok"})") == 0);
  CHECK(p.samples.at(R"(glm_proxy_request_duration_seconds_count{api="openai"})") == 0);
  CHECK(p.samples.at(R"(glm_proxy_tokens_total{kind="completion"})") == 0);
  CHECK(p.samples.at("glm_proxy_upstream_sent_bytes_total") == 0);
  CHECK(p.samples.at("glm_proxy_pool_acquire_wait_seconds_count") == 0);
  CHECK(p.samples.at("glm_proxy_upstream_attempts_total") == 10);           // counted regardless
  CHECK(p.samples.at("glm_proxy_model_concurrency_decreases_total") == 1);  // and these too
}

TEST_CASE("metrics(): rates and percentiles over the retention window, and its JSON form",
          "[metrics]") {
  auto server = glmproxy::mock::MockUpstream::start();
  REQUIRE(server);
  auto ms = std::make_shared<std::atomic<std::int64_t>>(1'000'000);
  glmproxy::Config c;
  c.upstream.openai_base_url = server->base_url() + "/api/paas/v4";
  c.cache.enabled = true;
  c.metrics.retention = std::chrono::milliseconds(10'000);
  c.metrics.aggregation_interval = std::chrono::milliseconds(1'000);
  c.clock = [ms] {
    return std::chrono::steady_clock::time_point(std::chrono::milliseconds(ms->load()));
  };
  auto client = glmproxy::ProxyClient::create(c);
  REQUIRE(client);
  glmproxy::ChatRequest r;
  r.messages = {{"user", "window"}};
  for (int i = 0; i < 4; ++i) REQUIRE(client->complete(r));  // 1 upstream answer, 3 cache hits
  REQUIRE_FALSE(client->complete(glmproxy::ChatRequest{}));  // 1 error
  auto m = client->metrics();
  CHECK(m.window.seconds == Approx(10.0));
  CHECK(m.window.requests == 5);
  CHECK(m.window.errors == 1);
  CHECK(m.window.cache_hits == 3);
  CHECK(m.window.cache_hit_rate == Approx(0.6));
  CHECK(m.window.requests_per_second == Approx(0.5));
  CHECK(m.window.p99_ms >= m.window.p50_ms);
  CHECK(m.window.p99_ms > 0);
  const std::string json = m.to_json();
  CHECK(json.find("\"window\":{\"seconds\":10,\"requests\":5,\"errors\":1,\"cache_hits\":3") !=
        std::string::npos);
  CHECK(json.front() == '{');
  CHECK(json.back() == '}');
  ms->fetch_add(11'000);  // past the retention window
  CHECK(client->metrics().window.requests == 0);
}
