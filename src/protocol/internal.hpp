#pragma once

// Helpers shared by the files of src/protocol/ only (includes simdjson: never include this from
// outside src/protocol/).

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/json.hpp"  // the escaper and UTF-8 validator every writer uses
#include "glmproxy/error.hpp"
#include "glmproxy/request.hpp"
#include "glmproxy/response.hpp"
#include "protocol/usage_counts.hpp"

namespace glmproxy::detail {

// --- clean_message.cpp ----------------------------------------------------------------------

/// `s` made fit for an error message: control characters become spaces (runs collapsed),
/// invalid UTF-8 bytes become '?', long key-like tokens are redacted to 4 characters + "…", and
/// the result is cut at a character boundary after about `max_bytes` bytes (+ "…").
std::string clean_message(std::string_view s, std::size_t max_bytes = 500);

// --- json_util.cpp --------------------------------------------------------------------------

/// A dom::parser reused per thread (its buffers survive between calls). A nested use on the same
/// thread, or a parser that grew past a few MiB, falls back to / is replaced by a fresh one.
class ScratchParser {
 public:
  ScratchParser();
  ~ScratchParser();
  ScratchParser(const ScratchParser&) = delete;
  ScratchParser& operator=(const ScratchParser&) = delete;

  simdjson::dom::parser& get() noexcept { return *parser_; }

  /// Parses `body` in place: grows its capacity for simdjson's padding, never its contents.
  simdjson::error_code parse(std::string& body, simdjson::dom::element& root);
  /// Parses a const string (copied to a padded buffer when needed).
  simdjson::error_code parse_copy(std::string_view text, simdjson::dom::element& root);

 private:
  simdjson::dom::parser* parser_;
  std::optional<simdjson::dom::parser> own_;
  bool borrowed_ = false;
};

/// The members of ChatRequest::extra_json, values minified, in order, last duplicate wins.
struct ExtraMembers {
  std::vector<std::pair<std::string, std::string>> members;

  bool has(std::string_view key) const noexcept;
  /// Appends `,"key":value` for every member (`first` says whether a comma is needed first).
  void append_to(std::string& out, bool first) const;
};

/// InvalidArgument "extra_json is not a JSON object ..." when it is not one; empty = no members.
Result<ExtraMembers> parse_extra_json(std::string_view extra_json);

/// The top-level object of a request body: writes each member unless extra_json overrides it.
class TopLevelWriter {
 public:
  TopLevelWriter(std::string& out, const ExtraMembers& extra) : out_(out), extra_(extra) {
    out_ += '{';
  }
  /// Writes `"key":` (key is a plain ASCII literal) and returns true, or returns false when
  /// extra_json has a member `key`; the caller then writes nothing.
  bool key(std::string_view key);
  /// Appends the extra members and the closing brace.
  void finish();

 private:
  std::string& out_;
  const ExtraMembers& extra_;
  bool first_ = true;
};

/// Appends a finite double in shortest round-trip form.
void append_double(std::string& out, double value);
void append_int(std::string& out, std::int64_t value);

/// Writes `"stop"`-style arrays of strings; false + the failing index when one is not UTF-8.
bool append_string_array(std::string& out, const std::vector<std::string>& items,
                         std::size_t& bad_index);

/// Common request checks (messages present, roles known, model non-empty, finite sampling
/// parameters, validate_typed_fields()). The role of messages[i] is one of the four names when
/// this succeeds.
Result<void> validate_request(const ChatRequest& request, std::string_view model);

// --- request_fields.cpp ---------------------------------------------------------------------

/// Checks of the typed fields both writers share (part data present, non-text parts only in user
/// messages, typed tool calls only on assistant messages and not next to tool_calls_json, tool
/// and choice names, response_format's name and schema present). Called by validate_request().
Result<void> validate_typed_fields(const ChatRequest& request);

/// "text", "image_url", "image_base64", "video_url", "file_url": for error messages.
std::string_view part_type_name(ContentPart::Type type) noexcept;

/// `text` minified when it is a JSON object, else InvalidArgument naming `field`.
Result<std::string> json_object_text(std::string_view text, std::string_view field);

/// Appends `value` as a JSON string, or InvalidArgument "messages[m].parts[i].<name> is not
/// valid UTF-8".
Result<void> append_part_string(std::string& out, std::string_view value, std::size_t message,
                                std::size_t index, std::string_view name);

Error invalid_argument(std::string message);
Error bad_response(std::string message);
/// "<field> is not valid UTF-8".
Error invalid_utf8(std::string_view field);

/// Member `key` of `object` when it is present and not null.
std::optional<simdjson::dom::element> member(simdjson::dom::object object, std::string_view key);
/// A string member: absent or null -> "", a string -> its value, else BadResponse naming `path`.
Result<std::string_view> optional_string(simdjson::dom::object object, std::string_view key,
                                         std::string_view path);
/// An integer member: absent or null -> nullopt, else BadResponse naming `path`.
Result<std::optional<std::int64_t>> optional_int(simdjson::dom::object object, std::string_view key,
                                                 std::string_view path);

/// A token count: like optional_int(), but untrusted numbers are made safe: a negative count
/// becomes 0 and one above INT64_MAX saturates there.
Result<std::optional<std::int64_t>> optional_count(simdjson::dom::object object,
                                                   std::string_view key, std::string_view path);
/// Usage from the upstream's counts (each made non-negative); total = prompt + completion
/// (saturating) when the upstream gave none.
Usage make_usage(std::optional<std::int64_t> prompt, std::optional<std::int64_t> completion,
                 std::optional<std::int64_t> total) noexcept;

/// The counts of a JSON reply's `usage` object: a count that is not an integer, or a details
/// member that is not an object, is BadResponse naming it ("usage.prompt_tokens_details...").
Result<OpenAiUsageCounts> openai_usage_counts(simdjson::dom::object usage);
Result<AnthropicUsageCounts> anthropic_usage_counts(simdjson::dom::object usage);

/// BadResponse for a body simdjson could not parse, or whose root is not an object.
Error unparsable(simdjson::error_code error);

// --- anthropic_thinking.cpp -----------------------------------------------------------------

/// What an Anthropic request's `thinking` member says.
struct AnthropicThinking {
  enum class Kind {
    NotSent,   ///< no "thinking" member
    Disabled,  ///< {"type":"disabled"}
    Enabled,   ///< {"type":"enabled","budget_tokens":budget_tokens}
  };
  Kind kind = Kind::NotSent;
  int budget_tokens = 0;  ///< Enabled only
};

/// The `thinking` member for `request`: Enabled with thinking_budget_tokens, or max_tokens / 2
/// and at least 1024; InvalidArgument when no valid budget exists (1024 <= budget_tokens <
/// max_tokens) or a budget is set with thinking false.
Result<AnthropicThinking> anthropic_thinking(const ChatRequest& request, int max_tokens);

/// Message::thinking_blocks only on assistant messages, a Thinking block with a signature, a
/// Redacted one with data. Called by validate_request().
Result<void> validate_thinking_blocks(const ChatRequest& request);

/// Appends messages[index]'s thinking blocks as Anthropic content blocks, each preceded by a
/// comma unless `first`; InvalidArgument naming the field that is not valid UTF-8.
Result<void> append_thinking_blocks(std::string& out, const Message& m, std::size_t index,
                                    bool& first);

/// A reply's content block of `type` "thinking" or "redacted_thinking" into `response`
/// (reasoning_content and thinking_blocks): true when it was one, false for other types,
/// BadResponse naming `path` when a member is not a string.
Result<bool> parse_thinking_block(simdjson::dom::object block, std::string_view type,
                                  const std::string& path, ChatResponse& response);

// --- errors.cpp -----------------------------------------------------------------------------

/// The error object inside a 2xx body ({"error":{...}}, Anthropic {"type":"error",...}), mapped
/// like map_error_response() with http_status = status; nullopt when `root` is no error.
std::optional<Error> error_in_body(Protocol protocol, simdjson::dom::object root, int status);

/// The error an SSE `event: error` carries: error_in_body() shapes, or the flat
/// {"message","code","type"} object OpenAI-compatible servers send; always an Error.
Error stream_error_event(Protocol protocol, simdjson::dom::object root, int status);

// --- openai.cpp / anthropic.cpp ---------------------------------------------------------------

Result<std::string> write_openai_request(const ChatRequest& request, std::string_view model,
                                         bool stream);
Result<std::string> write_anthropic_request(const ChatRequest& request, std::string_view model,
                                            bool stream);
Result<ChatResponse> parse_openai_response(std::string& body);
Result<ChatResponse> parse_anthropic_response(std::string& body);

}  // namespace glmproxy::detail
