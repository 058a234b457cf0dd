// A tool-call loop: the model may call get_weather(city); this program runs that function here
// and sends its result back, until the model answers in text. Each assistant turn goes back
// with Message::assistant(reply): its tool calls and its reasoning, so a model thinking between
// calls keeps its chain of thought (GLM reasoning_content; Anthropic signed thinking blocks,
// which Anthropic refuses to continue without).
//
//   tools [--anthropic] ["your question"]
//
// Reads the configuration from the environment like examples/chat (ZAI_API_KEY, ZAI_API_BASE,
// ANTHROPIC_API_BASE, DEFAULT_MODEL, ...). --anthropic: the Anthropic Messages protocol with
// extended thinking (budget 1024 of max_tokens 2048); otherwise the OpenAI protocol with GLM
// thinking on.

#include <glmproxy/glmproxy.hpp>
#include <simdjson.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "client_from_env.hpp"

namespace {

// The local function the model may call. Its arguments arrive as the JSON text the model wrote:
// parse them, never trust them.
std::string get_weather(const std::string& arguments_json) {
  simdjson::ondemand::parser parser;
  simdjson::padded_string json(arguments_json);
  simdjson::ondemand::document doc;
  std::string_view city;
  if (parser.iterate(json).get(doc) || doc["city"].get_string().get(city)) {
    return R"({"error":"get_weather takes {\"city\": string}"})";
  }
  std::string out = R"({"city":")";
  for (char c : city) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  out += R"(","forecast":"sunny","celsius":21})";
  return out;
}

void print_turn(int turn, const glmproxy::ChatResponse& reply) {
  if (!reply.reasoning_content.empty()) {
    std::printf("turn %d reasoning: %s\n", turn, reply.reasoning_content.c_str());
  }
  for (const auto& block : reply.thinking_blocks) {
    const bool signed_block =
        block.type == glmproxy::ThinkingBlock::Type::Thinking && !block.signature.empty();
    std::printf("turn %d thinking block: %s\n", turn,
                block.type == glmproxy::ThinkingBlock::Type::Redacted ? "redacted"
                : signed_block                                        ? "signed"
                                                                      : "unsigned");
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool anthropic = false;
  std::string question = "What is the weather in Paris? Use the tool.";
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--anthropic") == 0) {
      anthropic = true;
    } else {
      question = argv[i];
    }
  }
  auto client = example::client_from_env();
  if (!client) return 2;

  glmproxy::ChatRequest request;
  request.messages = {{"user", question}};
  request.tools = {{"get_weather", "The current weather of a city",
                    R"({"type":"object","properties":{"city":{"type":"string"}},)"
                    R"("required":["city"]})"}};
  request.thinking = true;
  if (anthropic) {
    request.protocol = glmproxy::Protocol::Anthropic;
    request.max_tokens = 2048;
    request.thinking_budget_tokens = 1024;  // Anthropic: 1024 <= budget < max_tokens
  } else {
    request.max_tokens = 1024;
  }

  // A model may keep calling tools; a loop in an application needs a bound.
  constexpr int kMaxTurns = 5;
  for (int turn = 1; turn <= kMaxTurns; ++turn) {
    auto reply = client->complete(request);
    if (!reply) {
      std::fprintf(stderr, "turn %d failed: %s\n", turn, reply.error().describe().c_str());
      return 1;
    }
    print_turn(turn, *reply);
    if (reply->tool_calls.empty()) {
      std::printf("reply: %s\n", reply->content.c_str());
      std::printf("finish: %s after %d turn%s\n", reply->finish_reason.c_str(), turn,
                  turn == 1 ? "" : "s");
      return 0;
    }
    // The assistant turn goes back as it came (calls, reasoning, thinking blocks), then one
    // result per call.
    request.messages.push_back(glmproxy::Message::assistant(*reply));
    for (const auto& call : reply->tool_calls) {
      std::string result = call.name == "get_weather"
                               ? get_weather(call.arguments_json)
                               : R"({"error":"no such tool"})";
      std::printf("turn %d tool call: %s(%s) -> %s\n", turn, call.name.c_str(),
                  call.arguments_json.c_str(), result.c_str());
      request.messages.push_back(glmproxy::Message::tool_result(call.id, std::move(result)));
    }
  }
  std::fprintf(stderr, "no text answer after %d turns\n", kMaxTurns);
  return 1;
}
