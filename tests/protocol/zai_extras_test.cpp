// Z.AI's request extras (issue 16 item 7): do_sample, user_id, tool_stream, the body's
// request_id, and what glmproxy does with temperature 0. The exact body each protocol writer
// sends, and InvalidArgument for what Z.AI would refuse.
//
// Shapes: Z.AI's chat completion reference (https://docs.z.ai/api-reference/llm/chat-completion:
// top-level "do_sample" boolean, "request_id" string, "user_id" string of 6 to 128 characters,
// "tool_stream" boolean) and Anthropic's Messages API reference ("metadata": {"user_id": ...}).
// The temperature rule is the one of Z.AI's Python SDK (zhipuai, chat/completions.py): a
// temperature <= 0 is sent as do_sample false with temperature 0.01.

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

#include "support/request_body.hpp"

using glmproxy::ChatRequest;
using glmproxy::Error;
using glmproxy::ErrorCode;
using glmproxy::Message;
using glmproxy::Protocol;
using test_support::body_of;
using test_support::error_of;

namespace {

ChatRequest hello(Protocol protocol) {
  ChatRequest request;
  request.protocol = protocol;
  request.messages = {Message{"user", "Hi"}};
  return request;
}

constexpr std::string_view kOpenAIHead =
    R"({"model":"glm-4.6","messages":[{"role":"user","content":"Hi"}])";

}  // namespace

TEST_CASE("OpenAI body: do_sample, tool_stream, user_id and request_id in Z.AI's names",
          "[protocol][zai]") {
  ChatRequest r = hello(Protocol::OpenAI);
  r.temperature = 0.6;
  r.do_sample = true;
  r.tool_stream = true;
  r.user_id = "end-user-42";
  r.body_request_id = "req-7f3a";
  r.request_id = "header-only";
  CHECK(body_of(r) == std::string(kOpenAIHead) +
                          R"(,"temperature":0.6,"do_sample":true,"tool_stream":true,)"
                          R"("user_id":"end-user-42","request_id":"req-7f3a"})");

  // Unset: none of them is written; the X-Request-ID value never goes into the body.
  ChatRequest plain = hello(Protocol::OpenAI);
  plain.request_id = "header-only";
  CHECK(body_of(plain) == std::string(kOpenAIHead) + "}");

  ChatRequest off = hello(Protocol::OpenAI);
  off.do_sample = false;
  off.tool_stream = false;
  CHECK(body_of(off) == std::string(kOpenAIHead) + R"(,"do_sample":false,"tool_stream":false})");
}

TEST_CASE("Anthropic body: user_id is metadata.user_id, Z.AI-only fields are not sent",
          "[protocol][zai]") {
  ChatRequest r = hello(Protocol::Anthropic);
  r.do_sample = false;
  r.tool_stream = true;
  r.user_id = "end-user-42";
  r.body_request_id = "req-7f3a";
  CHECK(body_of(r) == R"({"model":"glm-4.6","max_tokens":4096,)"
                      R"("messages":[{"role":"user","content":"Hi"}],)"
                      R"("metadata":{"user_id":"end-user-42"}})");
}

TEST_CASE("temperature 0 on a GLM model is written as Z.AI's SDK writes it", "[protocol][zai]") {
  ChatRequest r = hello(Protocol::OpenAI);
  r.temperature = 0.0;
  const std::string greedy =
      std::string(kOpenAIHead) + R"(,"temperature":0.01,"do_sample":false})";
  CHECK(body_of(r) == greedy);
  CHECK(body_of(r, "GLM-4.5-Air") ==
        R"({"model":"GLM-4.5-Air","messages":[{"role":"user","content":"Hi"}],)"
        R"("temperature":0.01,"do_sample":false})");

  r.do_sample = false;  // the caller's own greedy request: the same body
  CHECK(body_of(r) == greedy);
  r.temperature = -0.5;
  CHECK(body_of(r) == greedy);

  r.temperature = 0.3;  // above 0 nothing is rewritten
  r.do_sample.reset();
  CHECK(body_of(r) == std::string(kOpenAIHead) + R"(,"temperature":0.3})");
}

TEST_CASE("temperature 0 with do_sample true on a GLM model is InvalidArgument",
          "[protocol][zai]") {
  ChatRequest r = hello(Protocol::OpenAI);
  r.temperature = 0.0;
  r.do_sample = true;
  const Error e = error_of(r);
  INFO(e.message);
  CHECK(e.code == ErrorCode::InvalidArgument);
  CHECK(e.message.find("do_sample") != std::string::npos);
  CHECK(e.message.find("temperature") != std::string::npos);
}

TEST_CASE("other OpenAI-compatible models get temperature 0 as asked", "[protocol][zai]") {
  ChatRequest r = hello(Protocol::OpenAI);
  r.temperature = 0.0;
  CHECK(body_of(r, "gpt-4o-mini") ==
        R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}],"temperature":0})");
  r.do_sample = true;  // sent as asked: that server decides
  CHECK(body_of(r, "gpt-4o-mini") ==
        R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}],)"
        R"("temperature":0,"do_sample":true})");
  // And on Anthropic (no do_sample there) temperature 0 is a valid, greedy request.
  ChatRequest a = hello(Protocol::Anthropic);
  a.temperature = 0.0;
  CHECK(body_of(a) == R"({"model":"glm-4.6","max_tokens":4096,)"
                      R"("messages":[{"role":"user","content":"Hi"}],"temperature":0})");
}

TEST_CASE("user_id and body_request_id must be UTF-8, extra_json replaces them",
          "[protocol][zai]") {
  for (Protocol protocol : {Protocol::OpenAI, Protocol::Anthropic}) {
    ChatRequest r = hello(protocol);
    r.user_id = "bad\xff";
    const Error e = error_of(r);
    CHECK(e.code == ErrorCode::InvalidArgument);
    CHECK(e.message.find("user_id") != std::string::npos);
  }
  ChatRequest r = hello(Protocol::OpenAI);
  r.body_request_id = "bad\xc3";
  CHECK(error_of(r).message.find("body_request_id") != std::string::npos);

  ChatRequest merged = hello(Protocol::OpenAI);
  merged.user_id = "typed-user";
  merged.do_sample = true;
  merged.extra_json = R"({"user_id":"raw-user"})";
  CHECK(body_of(merged) == std::string(kOpenAIHead) + R"(,"do_sample":true,"user_id":"raw-user"})");
}
