// 100 concurrent complete_async() calls through one client: the pool keeps at most
// POOL_MAX_CONNECTIONS of them on the wire, the rest wait their turn. Callbacks run on the
// client's callback threads (GLMPROXY_CALLBACK_THREADS), never on its I/O thread.

#include <glmproxy/glmproxy.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>

#include "client_from_env.hpp"

int main() {
  auto client = example::client_from_env();
  if (!client) return 2;

  constexpr int kCalls = 100;
  std::mutex mu;
  std::condition_variable cv;
  int done = 0, ok = 0;
  long long tokens = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kCalls; ++i) {
    glmproxy::ChatRequest request;
    request.messages = {{"user", "Give me the number " + std::to_string(i) + " in words."}};
    request.max_tokens = 64;
    client->complete_async(std::move(request), [&](glmproxy::Result<glmproxy::ChatResponse> r) {
      std::lock_guard lock(mu);
      if (r) {
        ++ok;
        tokens += r->usage.total_tokens;
      }
      if (++done == kCalls) cv.notify_one();
    });
  }
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return done == kCalls; });
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  std::printf("%d/%d succeeded in %lld ms, %lld tokens\n", ok, kCalls, static_cast<long long>(ms),
              tokens);
  return ok == kCalls ? 0 : 1;
}
