#pragma once

// Mixed traffic for the exposition tests: answers, cache hits and misses, errors, streams,
// embeddings. Fills `text` with the client's prometheus_text(); false if the traffic itself
// did not behave as planned.

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
  c.retry.max_attempts = 1;
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
  glmproxy::mock::Fault bad;
  bad.status = 500;
  server->add_fault(bad);
  r.messages[0].content = "this fails";
  ok = ok && !client->complete(r);  // an UpstreamError
  glmproxy::ChatRequest invalid;    // no messages: InvalidArgument
  ok = ok && !client->complete(invalid);
  glmproxy::EmbeddingRequest e;
  e.input = {"a", "b"};
  ok = ok && client->embed(e);
  text = client->prometheus_text();
  return ok;
}

}  // namespace metrics_test
