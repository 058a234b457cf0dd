// One streamed chat reply: prints the model's reasoning and then its answer token by token as
// they arrive, then the finish reason and the token usage. Configuration from the environment
// (ZAI_API_KEY, ZAI_API_BASE, DEFAULT_MODEL, GLMPROXY_STREAM_IDLE_TIMEOUT_MS, ...).
//
//   stream ["your question"] [--anthropic]

#include <glmproxy/glmproxy.hpp>

#include <cstdio>
#include <cstring>
#include <string>

#include "client_from_env.hpp"

int main(int argc, char** argv) {
  auto client = example::client_from_env();
  if (!client) return 2;

  glmproxy::ChatRequest request;
  std::string question = "Say hello in one short sentence.";
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--anthropic") == 0) {
      request.protocol = glmproxy::Protocol::Anthropic;
    } else {
      question = argv[i];
    }
  }
  request.messages = {{"user", question}};
  request.max_tokens = 1024;

  using Type = glmproxy::StreamEvent::Type;
  Type last = Type::Done;
  // Runs on this thread (the one that called stream()), once per delta.
  auto on_event = [&last](const glmproxy::StreamEvent& e) {
    if (e.type == Type::Reasoning || e.type == Type::Text || e.type == Type::Refusal) {
      if (e.type != last) {
        std::fputs(e.type == Type::Reasoning ? "thinking: "
                   : e.type == Type::Text    ? "\nreply: "
                                             : "\nrefused: ",
                   stdout);
      }
      std::fwrite(e.text.data(), 1, e.text.size(), stdout);
      std::fflush(stdout);
      last = e.type;
    }
    return true;  // false would cancel the stream
  };
  auto reply = client->stream(request, on_event);
  std::fputc('\n', stdout);
  if (!reply) {
    std::fprintf(stderr, "stream failed: %s\n", reply.error().describe().c_str());
    return 1;
  }
  std::printf("finish: %s\n", reply->finish_reason.c_str());
  std::printf("usage: %lld prompt + %lld completion = %lld tokens\n",
              static_cast<long long>(reply->usage.prompt_tokens),
              static_cast<long long>(reply->usage.completion_tokens),
              static_cast<long long>(reply->usage.total_tokens));
  return 0;
}
