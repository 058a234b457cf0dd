// One image by URL: asks a GLM vision model what the picture shows and prints the answer.
//
//   vision [--anthropic] [image-url] ["your question"]
//
// Reads the configuration from the environment like examples/chat; VISION_MODEL names the
// model (default glm-4.5v; DEFAULT_MODEL usually names a text-only one). --anthropic: the same
// request on the Anthropic Messages protocol (an "image" block with a "url" source).

#include <glmproxy/glmproxy.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "client_from_env.hpp"

int main(int argc, char** argv) {
  bool anthropic = false;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--anthropic") == 0) {
      anthropic = true;
    } else {
      args.emplace_back(argv[i]);
    }
  }
  const std::string url = args.size() > 0
                              ? args[0]
                              : "https://upload.wikimedia.org/wikipedia/commons/3/3a/Cat03.jpg";
  const std::string question = args.size() > 1 ? args[1] : "What is in this picture? One sentence.";

  auto client = example::client_from_env();
  if (!client) return 2;

  glmproxy::ChatRequest request;
  const char* model = std::getenv("VISION_MODEL");
  request.model = model != nullptr && *model != '\0' ? model : "glm-4.5v";
  if (anthropic) request.protocol = glmproxy::Protocol::Anthropic;
  // The question is the message's first text part, the image the part after it.
  glmproxy::Message message{"user", question};
  message.parts.push_back(glmproxy::ContentPart::image_url(url));
  request.messages = {std::move(message)};
  request.max_tokens = 512;

  auto reply = client->complete(request);
  if (!reply) {
    std::fprintf(stderr, "request failed: %s\n", reply.error().describe().c_str());
    return 1;
  }
  std::printf("model: %s\n", reply->model.c_str());
  std::printf("image: %s\n", url.c_str());
  std::printf("reply: %s\n", reply->content.c_str());
  std::printf("usage: %lld prompt + %lld completion tokens\n",
              static_cast<long long>(reply->usage.prompt_tokens),
              static_cast<long long>(reply->usage.completion_tokens));
  return 0;
}
