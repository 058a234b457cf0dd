// Thinking on the Anthropic endpoint (issue 16 item 4): the budget rule and the thinking blocks
// an assistant turn sends back, as exact bodies.
//
// Shapes and rules: Anthropic's extended thinking docs
// (docs.anthropic.com/en/docs/build-with-claude/extended-thinking): "thinking":
// {"type":"enabled","budget_tokens":N} with 1024 <= N < max_tokens; in a tool loop the last
// assistant turn's thinking blocks go back unchanged, signature included, and redacted_thinking
// blocks with their data.

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "support/request_body.hpp"

using glmproxy::ChatRequest;
using glmproxy::Message;
using glmproxy::Protocol;
using glmproxy::ThinkingBlock;
using test_support::body_of;
using test_support::refused;

namespace {

ChatRequest thinking_request(std::optional<int> max_tokens, std::optional<int> budget) {
  ChatRequest r;
  r.protocol = Protocol::Anthropic;
  r.messages = {Message{"user", "Hi"}};
  r.max_tokens = max_tokens;
  r.thinking_budget_tokens = budget;
  return r;
}

std::string head(int max_tokens) {
  return R"({"model":"glm-4.6","max_tokens":)" + std::to_string(max_tokens) +
         R"(,"messages":[{"role":"user","content":"Hi"}],)";
}

}  // namespace

TEST_CASE("Anthropic thinking budget: given, derived, or refused with the reason",
          "[protocol][thinking]") {
  ChatRequest given = thinking_request(8000, 2000);  // budget alone turns thinking on
  CHECK(body_of(given) == head(8000) + R"("thinking":{"type":"enabled","budget_tokens":2000}})");

  ChatRequest derived = thinking_request(std::nullopt, std::nullopt);
  derived.thinking = true;  // max_tokens default 4096: half of it
  CHECK(body_of(derived) == head(4096) + R"("thinking":{"type":"enabled","budget_tokens":2048}})");
  derived.max_tokens = 1500;  // half is below the minimum: the minimum
  CHECK(body_of(derived) == head(1500) + R"("thinking":{"type":"enabled","budget_tokens":1024}})");

  ChatRequest tiny = thinking_request(64, std::nullopt);
  tiny.thinking = true;  // the issue's case: no valid budget below max_tokens 64
  std::string why = refused(tiny);
  CHECK(why.find("1024") != std::string::npos);
  CHECK(why.find("64") != std::string::npos);

  why = refused(thinking_request(8000, 512));  // below the minimum
  CHECK(why.find("512") != std::string::npos);
  why = refused(thinking_request(2000, 2000));  // not below max_tokens
  CHECK(why.find("2000") != std::string::npos);

  ChatRequest off = thinking_request(8000, 2000);
  off.thinking = false;
  CHECK(refused(off).find("thinking") != std::string::npos);

  ChatRequest disabled = thinking_request(64, std::nullopt);
  disabled.thinking = false;
  CHECK(body_of(disabled) == head(64) + R"("thinking":{"type":"disabled"}})");

  // The OpenAI protocol (GLM) has no budget: not sent.
  ChatRequest glm = thinking_request(64, 2000);
  glm.protocol = Protocol::OpenAI;
  glm.thinking = true;
  CHECK(body_of(glm).find("budget") == std::string::npos);
}

TEST_CASE("an assistant turn sends its thinking blocks back first, unchanged",
          "[protocol][thinking]") {
  glmproxy::ChatResponse reply;
  reply.content = "Let me check.";
  reply.reasoning_content = "Need the weather.";
  reply.tool_calls = {{"toolu_1", "get_weather", R"({"city":"Paris"})"}};
  ThinkingBlock thought;
  thought.thinking = "Need the weather.";
  thought.signature = "sig/+=";
  ThinkingBlock hidden;
  hidden.type = ThinkingBlock::Type::Redacted;
  hidden.data = "EmwKAhgB";
  reply.thinking_blocks = {thought, hidden};

  ChatRequest r = thinking_request(8000, 2000);
  r.messages.push_back(Message::assistant(reply));
  r.messages.push_back(Message::tool_result("toolu_1", "18C"));
  CHECK(body_of(r) ==
        R"({"model":"glm-4.6","max_tokens":8000,"messages":[{"role":"user","content":"Hi"},)"
        R"({"role":"assistant","content":[)"
        R"({"type":"thinking","thinking":"Need the weather.","signature":"sig/+="},)"
        R"({"type":"redacted_thinking","data":"EmwKAhgB"},)"
        R"({"type":"text","text":"Let me check."},)"
        R"({"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]},)"
        R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"18C"}]}],)"
        R"("thinking":{"type":"enabled","budget_tokens":2000}})");

  // Unsigned or empty blocks, and blocks outside an assistant turn, are refused.
  ChatRequest unsigned_block = r;
  unsigned_block.messages[1].thinking_blocks[0].signature.clear();
  CHECK(refused(unsigned_block).find("signature") != std::string::npos);
  ChatRequest no_data = r;
  no_data.messages[1].thinking_blocks[1].data.clear();
  CHECK(refused(no_data).find("data") != std::string::npos);
  ChatRequest on_user = r;
  on_user.messages[0].thinking_blocks = {thought};
  CHECK(refused(on_user).find("messages[0]") != std::string::npos);
}
