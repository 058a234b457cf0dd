#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace glmproxy {

struct ToolCall {
  std::string id, name, arguments_json;
};

struct Usage {
  std::int64_t prompt_tokens = 0, completion_tokens = 0, total_tokens = 0;
};

/// A parsed chat reply, the same shape for both protocols.
///
/// Thread safety: thread-compatible (a plain value).
struct ChatResponse {
  std::string id, model, content, finish_reason;  ///< finish_reason as the upstream said it
                                                  ///< ("stop", "length", "end_turn", ...)
  std::string reasoning_content;                  ///< GLM reasoning / Anthropic thinking text
  std::vector<ToolCall> tool_calls;
  Usage usage;
  int http_status = 0;
  bool from_cache = false;
  std::string raw_json;  ///< the upstream body as received
  int attempts = 0;      ///< upstream attempts this answer took (1 = no retry)
};

/// The answer to ProxyClient::send().
struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  ///< names lower-cased
  std::string body;
};

}  // namespace glmproxy
