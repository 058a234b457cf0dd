// An application with the admin endpoint on, for the browser test: the mock upstream in
// process, a client with the cache and the profiler on, mixed traffic (answers, cache hits,
// errors, streams, embeddings), then light traffic while the dashboard is looked at.
//
//   dashboard_app SECONDS   prints "URL <base url> TOKEN <token>" once the traffic has run,
//                           serves for SECONDS (or until stdin closes), then exits 0

#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "glmproxy/admin/admin_server.hpp"
#include "glmproxy/glmproxy.hpp"
#include "glmproxy/mock/mock_upstream.hpp"

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 60;
  glmproxy::mock::MockOptions mock_options;
  mock_options.record_limit = 0;
  auto server = glmproxy::mock::MockUpstream::start(mock_options);
  if (!server) return 1;

  glmproxy::Config c;
  c.upstream.api_key = "sk-dashboard-demo-key";
  c.upstream.openai_base_url = server->base_url() + "/api/paas/v4";
  c.upstream.anthropic_base_url = server->base_url() + "/api/anthropic";
  c.retry.max_attempts = 1;
  c.cache.enabled = true;
  c.profiling.enabled = true;
  c.admin.enabled = true;
  c.admin.token = "dashboard-test-token";
  auto client = glmproxy::ProxyClient::create(c);
  if (!client) {
    std::fprintf(stderr, "create: %s\n", client.error().describe().c_str());
    return 1;
  }
  auto admin = glmproxy::admin::AdminServer::start(*client);
  if (!admin) {
    std::fprintf(stderr, "admin: %s\n", admin.error().describe().c_str());
    return 1;
  }

  auto ask = [&](int i, const char* id_prefix) {
    glmproxy::ChatRequest r;
    r.messages = {{"user", "question " + std::to_string(i)}};
    r.request_id = id_prefix + std::to_string(i);
    return client->complete(r);
  };
  for (int i = 0; i < 20; ++i) (void)ask(i, "miss-");
  for (int i = 0; i < 10; ++i) (void)ask(i, "hit-");  // the same questions: cache hits
  glmproxy::mock::Fault bad;
  bad.status = 500;
  bad.times = 2;
  server->add_fault(bad);
  (void)ask(100, "error-");
  (void)ask(101, "error-");
  glmproxy::mock::Fault slow;
  slow.delay_before_headers = std::chrono::milliseconds(120);
  server->add_fault(slow);
  (void)ask(102, "slow-");
  glmproxy::ChatRequest s;
  s.messages = {{"user", "stream something"}};
  s.request_id = "stream-1";
  (void)client->stream(s, [](const glmproxy::StreamEvent&) { return true; });
  glmproxy::EmbeddingRequest e;
  e.input = {"a", "b", "c"};
  (void)client->embed(e);

  std::printf("URL %s TOKEN %s\n", admin->url().c_str(), c.admin.token.c_str());
  std::fflush(stdout);

  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  int i = 1000;
  while (std::chrono::steady_clock::now() < until) {
    pollfd in{STDIN_FILENO, POLLIN, 0};
    if (poll(&in, 1, 200) > 0) {
      char buf[64];
      if (read(STDIN_FILENO, buf, sizeof buf) <= 0) break;  // stdin closed: done
    }
    (void)ask(i++, "live-");
  }
  admin->stop();
  return 0;
}
