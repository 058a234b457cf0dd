// Config::preset() and preset names. Values come from the tuning guide
// (/work/shared/reference/configuration-tuning-guide.md), section "Tuning by Use Case", checked
// against its "Quick Reference Cards"; every knob the guide does not mention keeps config.hpp's
// default.

#include <array>
#include <string_view>

#include "core/strings.hpp"
#include "glmproxy/config.hpp"

namespace glmproxy {

namespace {

using namespace std::chrono_literals;

// Guide "Use Case 1: Low-Latency API Gateway" (and the "Low-Latency Configuration" card).
Config low_latency() {
  Config c;
  c.pool.min_connections = 10;
  c.pool.max_connections = 50;
  c.pool.warm = true;
  c.cache.enabled = true;
  c.cache.ttl = 60'000ms;
  c.cache.max_entries = 5000;
  c.batch.enabled = false;
  c.keys.cache_size = 10'000;
  c.keys.cache_ttl = 600'000ms;
  c.stream.request_chunk_size = 32'768;
  c.stream.response_chunk_size = 32'768;
  c.stream.buffer_pool_enabled = true;
  c.metrics.enabled = true;
  c.profiling.enabled = false;
  c.rate_limit.batch_interval = 1'000ms;
  c.rate_limit.max_batch_size = 100;
  return c;
}

// Guide "Use Case 2: High-Throughput Internal Service" (and the "High-Throughput
// Configuration" card).
Config high_throughput() {
  Config c;
  c.pool.min_connections = 20;
  c.pool.max_connections = 100;
  c.pool.warm = true;
  c.cache.enabled = true;
  c.cache.ttl = 3'600'000ms;
  c.cache.max_entries = 10'000;
  c.batch.enabled = true;
  c.batch.window = 100ms;
  c.batch.max_size = 20;
  c.batch.max_queue_size = 5000;
  c.keys.cache_size = 10'000;
  c.keys.cache_ttl = 3'600'000ms;
  c.stream.request_chunk_size = 65'536;
  c.stream.response_chunk_size = 65'536;
  c.stream.buffer_pool_enabled = true;
  c.metrics.enabled = true;
  c.profiling.enabled = false;
  c.rate_limit.batch_interval = 10'000ms;
  c.rate_limit.max_batch_size = 500;
  return c;
}

// Guide "Use Case 3: Development Environment" (no card).
Config development() {
  Config c;
  c.pool.min_connections = 2;
  c.pool.max_connections = 5;
  c.pool.warm = false;
  c.cache.enabled = false;
  c.batch.enabled = false;
  c.keys.cache_size = 100;
  c.keys.cache_ttl = 60'000ms;
  c.stream.buffer_pool_enabled = true;
  c.metrics.enabled = true;
  c.profiling.enabled = true;
  c.rate_limit.batch_interval = 1'000ms;
  c.rate_limit.max_batch_size = 50;
  return c;
}

// Guide "Use Case 4: Resource-Constrained Edge Deployment" (and the "Low-Memory
// Configuration" card, which agrees).
Config edge() {
  Config c;
  c.pool.min_connections = 1;
  c.pool.max_connections = 3;
  c.pool.warm = false;
  c.cache.enabled = true;
  c.cache.ttl = 300'000ms;
  c.cache.max_entries = 100;
  c.batch.enabled = false;
  c.keys.cache_size = 100;
  c.keys.cache_ttl = 300'000ms;
  c.stream.request_chunk_size = 4096;
  c.stream.response_chunk_size = 4096;
  c.stream.buffer_pool_enabled = true;
  c.metrics.enabled = true;
  c.metrics.retention = 30'000ms;
  c.profiling.enabled = false;
  c.rate_limit.batch_interval = 5'000ms;
  c.rate_limit.max_batch_size = 50;
  return c;
}

struct PresetName {
  Preset preset;
  std::string_view name;
};

constexpr std::array<PresetName, 5> kPresetNames = {{
    {Preset::Default, "default"},
    {Preset::LowLatency, "low-latency"},
    {Preset::HighThroughput, "high-throughput"},
    {Preset::Development, "development"},
    {Preset::Edge, "edge"},
}};

// Compares ignoring case and treating '-' and '_' as absent, so "low-latency", "LOW_LATENCY"
// and "lowlatency" all match "low-latency".
bool same_preset_name(std::string_view input, std::string_view canonical) noexcept {
  auto is_separator = [](char c) { return c == '-' || c == '_'; };
  std::size_t i = 0;
  std::size_t j = 0;
  while (true) {
    while (i < input.size() && is_separator(input[i])) ++i;
    while (j < canonical.size() && is_separator(canonical[j])) ++j;
    if (i == input.size() || j == canonical.size()) {
      return i == input.size() && j == canonical.size();
    }
    if (detail::ascii_lower(input[i]) != detail::ascii_lower(canonical[j])) return false;
    ++i;
    ++j;
  }
}

}  // namespace

std::string_view to_string(Preset preset) noexcept {
  for (const PresetName& entry : kPresetNames) {
    if (entry.preset == preset) return entry.name;
  }
  return "unknown";
}

std::optional<Preset> parse_preset(std::string_view name) noexcept {
  name = detail::trim(name);
  if (name.empty()) return std::nullopt;
  for (const PresetName& entry : kPresetNames) {
    if (same_preset_name(name, entry.name)) return entry.preset;
  }
  return std::nullopt;
}

Config Config::preset(Preset p) {
  switch (p) {
    case Preset::Default:
      return Config{};
    case Preset::LowLatency:
      return low_latency();
    case Preset::HighThroughput:
      return high_throughput();
    case Preset::Development:
      return development();
    case Preset::Edge:
      return edge();
  }
  return Config{};
}

}  // namespace glmproxy
