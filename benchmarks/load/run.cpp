#include "load/run.hpp"

#include <string>

namespace glmproxy::bench {

std::string chat_prompt(std::uint64_t id) {
  return "glmproxy-bench request " + std::to_string(id) + ": say hello.";
}

std::string burst_prompt(std::uint64_t id) {
  return "glmproxy-bench burst " + std::to_string(id) + ": say hello.";
}

std::string embed_input(std::uint64_t id) { return "glmproxy-bench text " + std::to_string(id); }

// The prompts above need no JSON escaping.
std::string chat_body(std::string_view prompt, bool stream) {
  std::string b = R"({"model":"glm-4.7","messages":[{"role":"user","content":")";
  b += prompt;
  b += stream ? R"("}],"stream":true,"stream_options":{"include_usage":true}})" : R"("}]})";
  return b;
}

std::string embed_body(std::string_view input) {
  std::string b = R"({"model":"embedding-3","input":[")";
  b += input;
  b += R"("]})";
  return b;
}

}  // namespace glmproxy::bench
