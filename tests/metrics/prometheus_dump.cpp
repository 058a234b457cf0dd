// Drives mixed traffic (answers, cache hits and misses, coalesced calls, errors, streams,
// embeddings) through a ProxyClient against the mock upstream and prints prometheus_text().
// The CTest "prometheus_promtool" feeds the output to `promtool check metrics`;
// tests/metrics/prometheus_test.cpp checks the same text's structure.

#include <cstdio>
#include <string>

#include "metrics/traffic.hpp"

int main() {
  std::string text;
  if (!metrics_test::mixed_traffic(text)) {
    std::fputs("mixed traffic failed\n", stderr);
    return 1;
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}
