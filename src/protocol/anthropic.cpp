// Anthropic v1/messages (Z.AI /api/anthropic): the request writer and the response parser.

#include <simdjson.h>

#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <string_view>

#include "core/strings.hpp"
#include "protocol/internal.hpp"
#include "protocol/protocol.hpp"

namespace glmproxy::detail {

namespace {

constexpr int kDefaultMaxTokens = 4096;   // Anthropic requires max_tokens
constexpr int kMinThinkingBudget = 1024;  // Anthropic's smallest budget_tokens

// Tool arguments as the JSON object Anthropic wants for "input". OpenAI sends them as a string
// holding JSON; an object is taken as it is; none or "" is {}.
Result<std::string> tool_input(std::optional<simdjson::dom::element> arguments,
                               const std::string& path) {
  if (!arguments) return std::string("{}");
  std::string_view text;
  if (arguments->get_string().get(text)) {
    if (!arguments->is_object())
      return invalid_argument(path + " must be a JSON object or a string");
    return simdjson::minify(*arguments);
  }
  if (trim(text).empty()) return std::string("{}");
  ScratchParser scratch;
  simdjson::dom::element parsed;
  if (auto error = scratch.parse_copy(text, parsed)) {
    return invalid_argument(
        fmt::format("{} is not valid JSON ({})", path, simdjson::error_message(error)));
  }
  if (!parsed.is_object()) return invalid_argument(path + " must hold a JSON object");
  return simdjson::minify(parsed);
}

// OpenAI-shaped tool_calls ([{id, type:"function", function:{name, arguments}}], or already
// Anthropic-shaped {id, name, input}) as tool_use blocks, each preceded by a comma.
Result<void> append_tool_uses(std::string& out, const Message& message, std::size_t index) {
  const std::string field = fmt::format("messages[{}].tool_calls_json", index);
  ScratchParser scratch;
  simdjson::dom::element root;
  if (auto error = scratch.parse_copy(message.tool_calls_json, root)) {
    return invalid_argument(fmt::format("{} must be a JSON array, but it is not valid JSON ({})",
                                        field, simdjson::error_message(error)));
  }
  simdjson::dom::array calls;
  if (root.get_array().get(calls)) return invalid_argument(field + " must be a JSON array");
  std::size_t j = 0;
  for (simdjson::dom::element call_value : calls) {
    const std::string path = fmt::format("{}[{}]", field, j++);
    simdjson::dom::object call;
    if (call_value.get_object().get(call)) return invalid_argument(path + " is not an object");
    std::string_view id;
    if (call["id"].get_string().get(id)) return invalid_argument(path + ".id is missing");
    std::string_view name;
    Result<std::string> input = std::string();
    simdjson::dom::object function;
    if (!call["function"].get_object().get(function)) {
      if (function["name"].get_string().get(name)) {
        return invalid_argument(path + ".function.name is missing");
      }
      input = tool_input(member(function, "arguments"), path + ".function.arguments");
    } else if (!call["name"].get_string().get(name)) {
      input = tool_input(member(call, "input"), path + ".input");
    } else {
      return invalid_argument(path + " has neither \"function\" nor \"name\"");
    }
    if (!input) return std::move(input).error();
    out += R"(,{"type":"tool_use","id":)";
    append_json_string(out, id);  // simdjson validated the UTF-8
    out += R"(,"name":)";
    append_json_string(out, name);
    out += R"(,"input":)";
    out += *input;
    out += '}';
  }
  return {};
}

Result<void> append_messages(std::string& out, const ChatRequest& request) {
  out += '[';
  bool first = true;
  bool tool_group_open = false;  // consecutive tool results share one user turn
  for (std::size_t i = 0; i < request.messages.size(); ++i) {
    const Message& m = request.messages[i];
    const auto field = [i](std::string_view name) {
      return fmt::format("messages[{}].{}", i, name);
    };
    if (m.role == "system") continue;  // moved to the top-level "system"
    if (m.role == "tool") {
      if (tool_group_open) {
        out += ',';
      } else {
        if (!first) out += ',';
        out += R"({"role":"user","content":[)";
        tool_group_open = true;
      }
      first = false;
      out += R"({"type":"tool_result","tool_use_id":)";
      if (!append_json_string(out, m.tool_call_id)) return invalid_utf8(field("tool_call_id"));
      out += R"(,"content":)";
      if (!append_json_string(out, m.content)) return invalid_utf8(field("content"));
      out += '}';
      continue;
    }
    if (tool_group_open) {
      out += "]}";
      tool_group_open = false;
    }
    if (!first) out += ',';
    first = false;
    out += R"({"role":)";
    append_json_string(out, m.role);
    out += R"(,"content":)";
    if (m.role == "assistant" && !m.tool_calls_json.empty()) {
      out += '[';
      const std::size_t mark = out.size();
      if (!m.content.empty()) {
        out += R"({"type":"text","text":)";
        if (!append_json_string(out, m.content)) return invalid_utf8(field("content"));
        out += '}';
      }
      if (auto ok = append_tool_uses(out, m, i); !ok) return std::move(ok).error();
      // Blocks were written with a leading comma; drop it when no text block came first.
      if (m.content.empty() && out.size() > mark) out.erase(mark, 1);
      out += ']';
    } else if (!append_json_string(out, m.content)) {
      return invalid_utf8(field("content"));
    }
    out += '}';
  }
  if (tool_group_open) out += "]}";
  if (first) return invalid_argument("messages must hold at least one non-system message");
  out += ']';
  return {};
}

}  // namespace

Result<std::string> write_anthropic_request(const ChatRequest& request, std::string_view model,
                                            bool stream) {
  if (auto valid = validate_request(request, model); !valid) return std::move(valid).error();
  auto extra = parse_extra_json(request.extra_json);
  if (!extra) return std::move(extra).error();

  std::size_t estimate = 256 + request.extra_json.size();
  if (request.system) estimate += request.system->size();
  for (const Message& m : request.messages) {
    estimate += 96 + m.content.size() + m.tool_calls_json.size();
  }
  std::string out;
  out.reserve(estimate);

  const int max_tokens = request.max_tokens.value_or(kDefaultMaxTokens);
  TopLevelWriter top(out, *extra);
  if (top.key("model")) append_json_string(out, model);  // UTF-8 checked by validate_request
  if (top.key("max_tokens")) append_int(out, max_tokens);

  // Anthropic has no system role: request.system and every system message, in order.
  bool has_system = request.system && !request.system->empty();
  for (const Message& m : request.messages) {
    has_system = has_system || (m.role == "system" && !m.content.empty());
  }
  if (has_system && top.key("system")) {
    out += '"';
    bool first = true;
    if (request.system && !request.system->empty()) {
      if (!append_json_escaped(out, *request.system)) return invalid_utf8("system");
      first = false;
    }
    for (std::size_t i = 0; i < request.messages.size(); ++i) {
      const Message& m = request.messages[i];
      if (m.role != "system" || m.content.empty()) continue;
      if (!first) out += "\\n\\n";
      first = false;
      if (!append_json_escaped(out, m.content)) {
        return invalid_utf8(fmt::format("messages[{}].content", i));
      }
    }
    out += '"';
  }
  if (top.key("messages")) {
    if (auto ok = append_messages(out, request); !ok) return std::move(ok).error();
  }
  if (request.temperature && top.key("temperature")) append_double(out, *request.temperature);
  if (request.top_p && top.key("top_p")) append_double(out, *request.top_p);
  if (!request.stop.empty() && top.key("stop_sequences")) {
    std::size_t bad = 0;
    if (!append_string_array(out, request.stop, bad)) {
      return invalid_utf8(fmt::format("stop[{}]", bad));
    }
  }
  if (request.thinking && top.key("thinking")) {
    if (*request.thinking) {
      out += R"({"type":"enabled","budget_tokens":)";
      append_int(out, std::max(kMinThinkingBudget, max_tokens / 2));
      out += '}';
    } else {
      out += R"({"type":"disabled"})";
    }
  }
  if (stream && top.key("stream")) out += "true";
  top.finish();
  return out;
}

Result<ChatResponse> parse_anthropic_response(std::string& body) {
  ScratchParser scratch;
  simdjson::dom::element root;
  if (auto error = scratch.parse(body, root)) return unparsable(error);
  simdjson::dom::object object;
  if (root.get_object().get(object)) return bad_response("response body is not a JSON object");
  if (auto error = error_in_body(Protocol::Anthropic, object, 200)) return std::move(*error);

  ChatResponse response;
  auto id = optional_string(object, "id", "id");
  if (!id) return std::move(id).error();
  auto model = optional_string(object, "model", "model");
  if (!model) return std::move(model).error();
  auto stop = optional_string(object, "stop_reason", "stop_reason");
  if (!stop) return std::move(stop).error();
  response.id = *id;
  response.model = *model;
  response.finish_reason = *stop;

  simdjson::dom::array blocks;
  const auto content = member(object, "content");
  if (!content || content->get_array().get(blocks)) {
    return bad_response("response has no \"content\" array");
  }
  std::size_t index = 0;
  for (simdjson::dom::element block_value : blocks) {
    const std::string path = fmt::format("content[{}]", index++);
    simdjson::dom::object block;
    if (block_value.get_object().get(block)) return bad_response(path + " is not an object");
    std::string_view type;
    if (block["type"].get_string().get(type)) return bad_response(path + ".type is missing");
    if (type == "text") {
      auto text = optional_string(block, "text", path + ".text");
      if (!text) return std::move(text).error();
      response.content += *text;
    } else if (type == "thinking") {
      auto thinking = optional_string(block, "thinking", path + ".thinking");
      if (!thinking) return std::move(thinking).error();
      response.reasoning_content += *thinking;
    } else if (type == "tool_use") {
      ToolCall call;
      auto call_id = optional_string(block, "id", path + ".id");
      if (!call_id) return std::move(call_id).error();
      std::string_view name;
      if (block["name"].get_string().get(name)) {
        return bad_response(path + ".name is missing or not a string");
      }
      call.id = *call_id;
      call.name = name;
      const auto input = member(block, "input");
      call.arguments_json = input ? simdjson::minify(*input) : std::string("{}");
      response.tool_calls.push_back(std::move(call));
    }
    // Other block types (redacted_thinking, server tool blocks) carry nothing we report.
  }

  if (const auto usage_value = member(object, "usage")) {
    simdjson::dom::object usage;
    if (usage_value->get_object().get(usage)) return bad_response("usage is not an object");
    auto counts = anthropic_usage_counts(usage);
    if (!counts) return std::move(counts).error();
    response.usage = make_usage(*counts);
  }
  response.raw_json = body;
  return response;
}

}  // namespace glmproxy::detail
