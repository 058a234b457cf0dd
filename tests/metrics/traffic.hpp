#pragma once

// Mixed traffic for the exposition tests: answers, cache hits and misses, errors, streams,
// embeddings, a 429/1302 that halves the model's concurrency limit. Fills `text` with the
// client's prometheus_text(); false if the traffic itself did not behave as planned.

#include <chrono>
#include <string>

#include "glmproxy/mock/mock_upstream.hpp"
#include "glmproxy/proxy_client.hpp"

namespace metrics_test {

inline bool mixed_traffic(std::string& text, bool metrics_enabled = true) {
  auto server = glmproxy::mock::MockUpstream::start();
  if (!server) return false;
  glmproxy::Config c;
  c.upstream.api_key = "sk-metrics-test";
  c.upstream.openai_base_url = server->base_url() + "/api/paas/v4";
  c.upstream.anthropic_base_url = server->base_url() + "/api/anthropic";
  c.retry.max_attempts = 2;
  c.retry.base_delay = std::chrono::milliseconds(1);
  c.cache.enabled = true;
  c.metrics.enabled = metrics_enabled;
  auto client = glmproxy::ProxyClient::create(c);
  if (!client) return false;
  glmproxy::ChatRequest r;
  r.messages = {{"user", "hello"}};
  bool ok = static_cast<bool>(client->complete(r));       // miss, upstream answer
  ok = ok && client->complete(r) && client->complete(r);  // two cache hits
  r.protocol = glmproxy::Protocol::Anthropic;
  ok = ok && client->complete(r);  // another API
  r.protocol = glmproxy::Protocol::OpenAI;
  r.messages[0].content = "stream it";
  ok = ok && client->stream(r, [](const glmproxy::StreamEvent&) { return true; });
  glmproxy::mock::Fault busy;  // one 503, then the retry is answered
  busy.status = 503;
  server->add_fault(busy);
  r.messages[0].content = "retried";
  ok = ok && client->complete(r);
  glmproxy::mock::Fault bad;  // both attempts fail
  bad.status = 500;
  bad.times = 2;
  server->add_fault(bad);
  r.messages[0].content = "this fails";
  ok = ok && !client->complete(r);  // an UpstreamError
  glmproxy::ChatRequest invalid;    // no messages: InvalidArgument
  ok = ok && !client->complete(invalid);
  glmproxy::EmbeddingRequest e;
  e.input = {"a", "b"};
  ok = ok && client->embed(e);
  glmproxy::mock::Fault throttled;  // one 429/1302: the model's limit is halved, then answered
  throttled.status = 429;
  throttled.body = R"({"error":{"code":"1302","message":"High concurrency usage of this API"}})";
  server->add_fault(throttled);
  r.messages[0].content = "throttled";
  ok = ok && client->complete(r);
  text = client->prometheus_text();
  return ok;
}

}  // namespace metrics_test
