// Shared pieces of the writers and parsers: the per-thread parser, extra_json members, small
// value writers and member getters.

#include <simdjson.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <string>
#include <string_view>

#include "core/saturating.hpp"
#include "core/strings.hpp"
#include "protocol/internal.hpp"
#include "protocol/protocol.hpp"

namespace glmproxy::detail {

namespace {

// A parser that grew past this (a huge body) is dropped rather than kept for the thread's life.
constexpr std::size_t kKeepCapacity = 4u << 20;

struct ThreadParser {
  simdjson::dom::parser parser;
  bool in_use = false;
};

ThreadParser& thread_parser() {
  thread_local ThreadParser tp;
  return tp;
}

std::string_view type_name(simdjson::dom::element_type type) noexcept {
  switch (type) {
    case simdjson::dom::element_type::ARRAY:
      return "an array";
    case simdjson::dom::element_type::OBJECT:
      return "an object";
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64:
    case simdjson::dom::element_type::DOUBLE:
      return "a number";
    case simdjson::dom::element_type::STRING:
      return "a string";
    case simdjson::dom::element_type::BOOL:
      return "a boolean";
    case simdjson::dom::element_type::NULL_VALUE:
      return "null";
  }
  return "something else";
}

}  // namespace

ScratchParser::ScratchParser() {
  ThreadParser& tp = thread_parser();
  if (!tp.in_use) {
    tp.in_use = true;
    borrowed_ = true;
    parser_ = &tp.parser;
  } else {
    own_.emplace();
    parser_ = &*own_;
  }
}

ScratchParser::~ScratchParser() {
  if (!borrowed_) return;
  ThreadParser& tp = thread_parser();
  if (tp.parser.capacity() > kKeepCapacity) tp.parser = simdjson::dom::parser{};
  tp.in_use = false;
}

simdjson::error_code ScratchParser::parse(std::string& body, simdjson::dom::element& root) {
  // simdjson reads up to SIMDJSON_PADDING bytes past the end: make them ours without copying.
  body.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  return parser_->parse(body.data(), body.size(), false).get(root);
}

simdjson::error_code ScratchParser::parse_copy(std::string_view text,
                                               simdjson::dom::element& root) {
  return parser_->parse(text.data(), text.size(), true).get(root);
}

bool ExtraMembers::has(std::string_view key) const noexcept {
  for (const auto& m : members) {
    if (m.first == key) return true;
  }
  return false;
}

void ExtraMembers::append_to(std::string& out, bool first) const {
  for (const auto& [key, value] : members) {
    if (!first) out += ',';
    first = false;
    append_json_string(out, key);  // valid UTF-8: simdjson validated the document
    out += ':';
    out += value;
  }
}

Result<ExtraMembers> parse_extra_json(std::string_view extra_json) {
  ExtraMembers extra;
  if (trim(extra_json).empty()) return extra;
  ScratchParser scratch;
  simdjson::dom::element root;
  if (auto error = scratch.parse_copy(extra_json, root)) {
    return invalid_argument(
        fmt::format("extra_json must be a JSON object, but it is not valid JSON ({})",
                    simdjson::error_message(error)));
  }
  simdjson::dom::object object;
  if (root.get_object().get(object)) {
    return invalid_argument(
        fmt::format("extra_json must be a JSON object, got {}", type_name(root.type())));
  }
  for (simdjson::dom::key_value_pair field : object) {
    // A repeated key: the last one wins, as in most JSON readers.
    std::erase_if(extra.members, [&](const auto& m) { return m.first == field.key; });
    extra.members.emplace_back(std::string(field.key), simdjson::minify(field.value));
  }
  return extra;
}

bool TopLevelWriter::key(std::string_view key) {
  if (extra_.has(key)) return false;
  if (!first_) out_ += ',';
  first_ = false;
  out_ += '"';
  out_ += key;
  out_ += "\":";
  return true;
}

void TopLevelWriter::finish() {
  extra_.append_to(out_, first_);
  out_ += '}';
}

void append_double(std::string& out, double value) {
  fmt::format_to(std::back_inserter(out), "{}", value);
}

void append_int(std::string& out, std::int64_t value) {
  fmt::format_to(std::back_inserter(out), "{}", value);
}

bool append_string_array(std::string& out, const std::vector<std::string>& items,
                         std::size_t& bad_index) {
  out += '[';
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += ',';
    if (!append_json_string(out, items[i])) {
      bad_index = i;
      return false;
    }
  }
  out += ']';
  return true;
}

Result<void> validate_request(const ChatRequest& request, std::string_view model) {
  if (model.empty()) return invalid_argument("model must not be empty");
  if (!valid_utf8(model)) return invalid_utf8("model");
  if (request.messages.empty()) return invalid_argument("messages must not be empty");
  for (std::size_t i = 0; i < request.messages.size(); ++i) {
    const std::string& role = request.messages[i].role;
    if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
      return invalid_argument(
          fmt::format("messages[{}].role must be one of system, user, assistant, tool, got \"{}\"",
                      i, clean_message(role, 64)));
    }
  }
  if (request.temperature && !std::isfinite(*request.temperature)) {
    return invalid_argument(
        fmt::format("temperature must be a finite number, got {}", *request.temperature));
  }
  if (request.top_p && !std::isfinite(*request.top_p)) {
    return invalid_argument(fmt::format("top_p must be a finite number, got {}", *request.top_p));
  }
  if (!valid_utf8(request.user_id)) return invalid_utf8("user_id");
  if (!valid_utf8(request.body_request_id)) return invalid_utf8("body_request_id");
  if (auto ok = validate_thinking_blocks(request); !ok) return ok;
  return validate_typed_fields(request);
}

Error invalid_argument(std::string message) {
  return make_error(ErrorCode::InvalidArgument, std::move(message));
}

Error bad_response(std::string message) {
  return make_error(ErrorCode::BadResponse, std::move(message));
}

Error invalid_utf8(std::string_view field) {
  return invalid_argument(fmt::format("{} is not valid UTF-8", field));
}

std::optional<simdjson::dom::element> member(simdjson::dom::object object, std::string_view key) {
  simdjson::dom::element value;
  if (object.at_key(key).get(value) || value.is_null()) return std::nullopt;
  return value;
}

Result<std::string_view> optional_string(simdjson::dom::object object, std::string_view key,
                                         std::string_view path) {
  const auto value = member(object, key);
  if (!value) return std::string_view{};
  std::string_view text;
  if (value->get_string().get(text)) {
    return bad_response(fmt::format("{} is {}, expected a string", path, type_name(value->type())));
  }
  return text;
}

Result<std::optional<std::int64_t>> optional_int(simdjson::dom::object object, std::string_view key,
                                                 std::string_view path) {
  const auto value = member(object, key);
  if (!value) return std::optional<std::int64_t>{};
  std::int64_t number = 0;
  if (value->get_int64().get(number)) {
    return bad_response(
        fmt::format("{} is {}, expected an integer", path, type_name(value->type())));
  }
  return std::optional<std::int64_t>{number};
}

Result<std::optional<std::int64_t>> optional_count(simdjson::dom::object object,
                                                   std::string_view key, std::string_view path) {
  const auto value = member(object, key);
  if (!value) return std::optional<std::int64_t>{};
  std::int64_t number = 0;
  if (!value->get_int64().get(number)) return std::optional<std::int64_t>{non_negative(number)};
  std::uint64_t big = 0;
  if (!value->get_uint64().get(big)) {
    return std::optional<std::int64_t>{std::numeric_limits<std::int64_t>::max()};  // saturated
  }
  return bad_response(fmt::format("{} is {}, expected an integer", path, type_name(value->type())));
}

Usage make_usage(std::optional<std::int64_t> prompt, std::optional<std::int64_t> completion,
                 std::optional<std::int64_t> total) noexcept {
  Usage u;
  u.prompt_tokens = non_negative(prompt.value_or(0));
  u.completion_tokens = non_negative(completion.value_or(0));
  u.total_tokens =
      total ? non_negative(*total) : saturating_add(u.prompt_tokens, u.completion_tokens);
  return u;
}

void AnthropicUsageCounts::merge(const AnthropicUsageCounts& later) noexcept {
  if (later.input) input = later.input;
  if (later.output) output = later.output;
  if (later.cache_creation) cache_creation = later.cache_creation;
  if (later.cache_read) cache_read = later.cache_read;
}

Usage make_usage(const OpenAiUsageCounts& c) noexcept {
  Usage u = make_usage(c.prompt, c.completion, c.total);
  u.cached_prompt_tokens = std::min(non_negative(c.cached.value_or(0)), u.prompt_tokens);
  u.reasoning_tokens = std::min(non_negative(c.reasoning.value_or(0)), u.completion_tokens);
  return u;
}

Usage make_usage(const AnthropicUsageCounts& c) noexcept {
  Usage u;
  u.cache_creation_input_tokens = non_negative(c.cache_creation.value_or(0));
  u.cache_read_input_tokens = non_negative(c.cache_read.value_or(0));
  u.cached_prompt_tokens = u.cache_read_input_tokens;
  // Anthropic's input_tokens leaves out what was read from or written to the cache.
  u.prompt_tokens = saturating_add(
      saturating_add(non_negative(c.input.value_or(0)), u.cache_creation_input_tokens),
      u.cache_read_input_tokens);
  u.completion_tokens = non_negative(c.output.value_or(0));
  u.total_tokens = saturating_add(u.prompt_tokens, u.completion_tokens);
  return u;
}

namespace {

// `key` of a usage object: an object with the token details, absent/null, or BadResponse.
Result<std::optional<simdjson::dom::object>> details(simdjson::dom::object usage,
                                                     std::string_view key) {
  const auto value = member(usage, key);
  if (!value) return std::optional<simdjson::dom::object>{};
  simdjson::dom::object object;
  if (value->get_object().get(object)) {
    return bad_response(
        fmt::format("usage.{} is {}, expected an object", key, type_name(value->type())));
  }
  return std::optional<simdjson::dom::object>{object};
}

}  // namespace

Result<OpenAiUsageCounts> openai_usage_counts(simdjson::dom::object usage) {
  OpenAiUsageCounts c;
  auto prompt = optional_count(usage, "prompt_tokens", "usage.prompt_tokens");
  if (!prompt) return std::move(prompt).error();
  auto completion = optional_count(usage, "completion_tokens", "usage.completion_tokens");
  if (!completion) return std::move(completion).error();
  auto total = optional_count(usage, "total_tokens", "usage.total_tokens");
  if (!total) return std::move(total).error();
  c.prompt = *prompt;
  c.completion = *completion;
  c.total = *total;
  auto prompt_details = details(usage, "prompt_tokens_details");
  if (!prompt_details) return std::move(prompt_details).error();
  if (*prompt_details) {
    auto cached = optional_count(**prompt_details, "cached_tokens",
                                 "usage.prompt_tokens_details.cached_tokens");
    if (!cached) return std::move(cached).error();
    c.cached = *cached;
  }
  auto completion_details = details(usage, "completion_tokens_details");
  if (!completion_details) return std::move(completion_details).error();
  if (*completion_details) {
    auto reasoning = optional_count(**completion_details, "reasoning_tokens",
                                    "usage.completion_tokens_details.reasoning_tokens");
    if (!reasoning) return std::move(reasoning).error();
    c.reasoning = *reasoning;
  }
  return c;
}

Result<AnthropicUsageCounts> anthropic_usage_counts(simdjson::dom::object usage) {
  AnthropicUsageCounts c;
  const std::pair<std::string_view, std::optional<std::int64_t>*> fields[] = {
      {"input_tokens", &c.input},
      {"output_tokens", &c.output},
      {"cache_creation_input_tokens", &c.cache_creation},
      {"cache_read_input_tokens", &c.cache_read},
  };
  for (const auto& [key, out] : fields) {
    auto n = optional_count(usage, key, fmt::format("usage.{}", key));
    if (!n) return std::move(n).error();
    *out = *n;
  }
  return c;
}

Error unparsable(simdjson::error_code error) {
  return bad_response(
      fmt::format("response body is not valid JSON ({})", simdjson::error_message(error)));
}

}  // namespace glmproxy::detail
