// One chat completion: reads the configuration from the environment (ZAI_API_KEY,
// ZAI_API_BASE, DEFAULT_MODEL, ...), asks one question, prints the reply and the token usage.
//
//   chat ["your question"]

#include <glmproxy/glmproxy.hpp>

#include <cstdio>
#include <string>

#include "client_from_env.hpp"

int main(int argc, char** argv) {
  auto client = example::client_from_env();
  if (!client) return 2;

  glmproxy::ChatRequest request;
  request.messages = {{"user", argc > 1 ? argv[1] : "Say hello in one short sentence."}};
  request.max_tokens = 512;

  auto reply = client->complete(request);
  if (!reply) {
    std::fprintf(stderr, "request failed: %s\n", reply.error().describe().c_str());
    return 1;
  }
  std::printf("model: %s\n", reply->model.c_str());
  if (!reply->reasoning_content.empty()) {
    std::printf("reasoning: %s\n", reply->reasoning_content.c_str());
  }
  std::printf("reply: %s\n", reply->content.c_str());
  std::printf("usage: %lld prompt + %lld completion = %lld tokens (%d attempt%s)\n",
              static_cast<long long>(reply->usage.prompt_tokens),
              static_cast<long long>(reply->usage.completion_tokens),
              static_cast<long long>(reply->usage.total_tokens), reply->attempts,
              reply->attempts == 1 ? "" : "s");
  return 0;
}
