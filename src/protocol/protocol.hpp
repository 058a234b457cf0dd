#pragma once

// The wire formats: OpenAI chat/completions and Anthropic v1/messages request writers, their
// response parsers, HTTP error mapping and Retry-After. Internal; simdjson and fmt stay in the .cpp
// files. Every function is thread-safe (no shared mutable state beyond thread-local scratch).

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "glmproxy/error.hpp"
#include "glmproxy/request.hpp"
#include "glmproxy/response.hpp"

namespace glmproxy::detail {

/// Body of POST chat/completions (OpenAI) or v1/messages (Anthropic) for `request`, with `model`
/// the effective model (the caller resolved the default). stream=true adds "stream":true (and, for
/// OpenAI, "stream_options":{"include_usage":true}). Members of request.extra_json are appended at
/// top level and win over the writer's own member of the same name (no duplicate keys).
/// InvalidArgument naming the field for: no messages, an empty model, an unknown role, invalid
/// UTF-8 in any string, extra_json that is not a JSON object, tool_calls_json that is not a JSON
/// array (or, for Anthropic, not convertible to tool_use blocks), non-finite temperature/top_p.
Result<std::string> write_chat_request(const ChatRequest& request, std::string_view model,
                                       bool stream);

/// Parses a 2xx body. `body` may have its capacity grown (simdjson padding), never its contents.
/// Malformed/truncated JSON or a missing required member -> BadResponse (the message says what);
/// an error object inside a 200 body -> the mapped error (http_status 200). Sets raw_json = body;
/// does not set ChatResponse::http_status (the caller does).
Result<ChatResponse> parse_chat_response(Protocol protocol, std::string& body);

/// Maps a non-2xx answer to an Error: http_status, upstream_code (Z.AI business code like "1302",
/// OpenAI error.code or error.type, Anthropic error.type), message (the upstream message, sanitized
/// and trimmed to ~500 bytes), retry_after from the headers. Codes: 400/413/422 InvalidArgument,
/// 401 Unauthorized, 403 Forbidden, 429 RateLimited, anything else UpstreamError; whatever the
/// status, Z.AI 1113/1304/1308/1310 -> QuotaExceeded and 1301/1261 -> InvalidArgument. A body that
/// is not JSON still gives a typed error (message = start of the body, control chars removed).
/// `body` may have its capacity grown, never its contents.
Error map_error_response(Protocol protocol, int status, std::string& body,
                         std::string_view retry_after_header,
                         std::string_view retry_after_ms_header,
                         std::chrono::system_clock::time_point now);

/// Retry-After: delta-seconds or an HTTP-date (RFC 9110: IMF-fixdate, RFC 850, asctime);
/// retry-after-ms (float milliseconds) wins when valid. nullopt when neither is present/valid;
/// a negative delay or a date in the past gives 0.
std::optional<std::chrono::milliseconds> parse_retry_after(
    std::string_view retry_after, std::string_view retry_after_ms,
    std::chrono::system_clock::time_point now);

/// Joins a base URL and a path keeping the base's path: ("https://h/api/paas/v4",
/// "chat/completions") and ("https://h/api/paas/v4/", "/chat/completions") both give
/// "https://h/api/paas/v4/chat/completions". A query stays a query: ("https://h/v4?tenant=abc",
/// "chat/completions") gives "https://h/v4/chat/completions?tenant=abc", and a path with its own
/// query merges after the base's ("models?x=1" -> ".../v4/models?tenant=abc&x=1"). A fragment on
/// the base is dropped.
std::string join_url(std::string_view base, std::string_view path);

/// Body of POST embeddings: {"model", "input": [...], "dimensions"?} plus extra_json members.
/// InvalidArgument for no inputs, an empty model, non-positive dimensions, invalid UTF-8 or an
/// extra_json that is not a JSON object.
Result<std::string> write_embedding_request(const std::vector<std::string_view>& inputs,
                                            std::string_view model, std::optional<int> dimensions,
                                            std::string_view extra_json);

/// Parses a 2xx embeddings body sent for `expected` inputs: vectors placed by their "index"
/// (data[] order when absent); a missing, repeated or out-of-range index, or a non-numeric
/// vector, is BadResponse; an error object is the mapped error. Usage: prompt/total tokens.
Result<EmbeddingResponse> parse_embedding_response(std::string& body, std::size_t expected);

/// "chat/completions" (OpenAI) or "v1/messages" (Anthropic).
std::string_view chat_path(Protocol protocol) noexcept;

}  // namespace glmproxy::detail
