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

constexpr int kDefaultMaxTokens = 4096;  // Anthropic requires max_tokens

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

// A comma before every block but the first of a content array.
void block_separator(std::string& out, bool& first) {
  if (!first) out += ',';
  first = false;
}

// Typed tool calls as tool_use blocks {type, id, name, input} (Anthropic Messages reference,
// "tool_use" content block); arguments_json must hold a JSON object ("" is {}).
Result<void> append_typed_tool_uses(std::string& out, const Message& message, std::size_t index,
                                    bool& first) {
  for (std::size_t j = 0; j < message.tool_calls.size(); ++j) {
    const ToolCall& call = message.tool_calls[j];
    const std::string path = fmt::format("messages[{}].tool_calls[{}]", index, j);
    std::string input = "{}";
    if (!trim(call.arguments_json).empty()) {
      auto parsed = json_object_text(call.arguments_json, path + ".arguments_json");
      if (!parsed) return std::move(parsed).error();
      input = std::move(*parsed);
    }
    block_separator(out, first);
    out += R"({"type":"tool_use","id":)";
    if (!append_json_string(out, call.id)) return invalid_utf8(path + ".id");
    out += R"(,"name":)";
    if (!append_json_string(out, call.name)) return invalid_utf8(path + ".name");
    out += R"(,"input":)";
    out += input;
    out += '}';
  }
  return {};
}

// A data: URL ("data:image/png;base64,....") split into media type and base64 data, for the
// base64 source Anthropic wants; nullopt when it is no base64 data URL.
std::optional<std::pair<std::string_view, std::string_view>> split_data_url(std::string_view url) {
  if (!url.starts_with("data:")) return std::nullopt;
  const std::size_t comma = url.find(',');
  if (comma == std::string_view::npos) return std::nullopt;
  std::string_view head = url.substr(5, comma - 5);
  constexpr std::string_view kBase64 = ";base64";
  if (!head.ends_with(kBase64)) return std::nullopt;
  head.remove_suffix(kBase64.size());
  if (head.empty()) return std::nullopt;
  return std::pair{head, url.substr(comma + 1)};
}

// One content part as an Anthropic block (Anthropic Messages reference: "text", "image" with a
// "url" or "base64" source, "document" with a "url" source). `detail` has no Anthropic field
// and is not sent; a video has no block type, so it is InvalidArgument.
Result<void> append_block(std::string& out, const ContentPart& part, std::size_t message,
                          std::size_t index) {
  using Type = ContentPart::Type;
  const std::string path = fmt::format("messages[{}].parts[{}]", message, index);
  switch (part.type) {
    case Type::Text:
      out += R"({"type":"text","text":)";
      if (auto ok = append_part_string(out, part.text, message, index, "text"); !ok) return ok;
      break;
    case Type::ImageUrl:
      if (const auto data_url = split_data_url(part.url)) {
        out += R"({"type":"image","source":{"type":"base64","media_type":)";
        if (auto ok = append_part_string(out, data_url->first, message, index, "url"); !ok) {
          return ok;
        }
        out += R"(,"data":)";
        if (auto ok = append_part_string(out, data_url->second, message, index, "url"); !ok) {
          return ok;
        }
      } else if (part.url.starts_with("data:")) {
        return invalid_argument(path +
                                ".url is a data: URL without base64 data, which "
                                "Anthropic cannot take");
      } else {
        out += R"({"type":"image","source":{"type":"url","url":)";
        if (auto ok = append_part_string(out, part.url, message, index, "url"); !ok) return ok;
      }
      out += '}';
      break;
    case Type::ImageBase64:
      out += R"({"type":"image","source":{"type":"base64","media_type":)";
      if (auto ok = append_part_string(out, part.media_type, message, index, "media_type"); !ok) {
        return ok;
      }
      out += R"(,"data":)";
      if (auto ok = append_part_string(out, part.data, message, index, "data"); !ok) return ok;
      out += '}';
      break;
    case Type::FileUrl:
      out += R"({"type":"document","source":{"type":"url","url":)";
      if (auto ok = append_part_string(out, part.url, message, index, "url"); !ok) return ok;
      out += '}';
      break;
    case Type::VideoUrl:
      return invalid_argument(path +
                              " is a video_url part, which the Anthropic protocol does not "
                              "support (Z.AI's OpenAI endpoint takes it)");
  }
  out += '}';
  return {};
}

// A message's content as blocks: `content` as the first text block when non-empty, then parts.
Result<void> append_content_blocks(std::string& out, const Message& m, std::size_t index,
                                   bool& first) {
  if (!m.content.empty()) {
    block_separator(out, first);
    out += R"({"type":"text","text":)";
    if (!append_json_string(out, m.content)) {
      return invalid_utf8(fmt::format("messages[{}].content", index));
    }
    out += '}';
  }
  for (std::size_t j = 0; j < m.parts.size(); ++j) {
    block_separator(out, first);
    if (auto ok = append_block(out, m.parts[j], index, j); !ok) return ok;
  }
  return {};
}

// OpenAI-shaped tool_calls ([{id, type:"function", function:{name, arguments}}], or already
// Anthropic-shaped {id, name, input}) as tool_use blocks.
Result<void> append_tool_uses(std::string& out, const Message& message, std::size_t index,
                              bool& first) {
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
    block_separator(out, first);
    out += R"({"type":"tool_use","id":)";
    append_json_string(out, id);  // simdjson validated the UTF-8
    out += R"(,"name":)";
    append_json_string(out, name);
    out += R"(,"input":)";
    out += *input;
    out += '}';
  }
  return {};
}

// tools[]: {name, description?, input_schema} (Anthropic Messages reference, "tools"); no
// parameters is an empty object schema, since input_schema is required. `strict` is OpenAI's.
Result<void> append_tools(std::string& out, const std::vector<Tool>& tools) {
  out += '[';
  for (std::size_t i = 0; i < tools.size(); ++i) {
    const Tool& tool = tools[i];
    const auto field = [i](std::string_view name) { return fmt::format("tools[{}].{}", i, name); };
    if (i != 0) out += ',';
    out += R"({"name":)";
    if (!append_json_string(out, tool.name)) return invalid_utf8(field("name"));
    if (!tool.description.empty()) {
      out += R"(,"description":)";
      if (!append_json_string(out, tool.description)) return invalid_utf8(field("description"));
    }
    out += R"(,"input_schema":)";
    if (tool.parameters_json.empty()) {
      out += R"({"type":"object"})";
    } else {
      auto schema = json_object_text(tool.parameters_json, field("parameters_json"));
      if (!schema) return std::move(schema).error();
      out += *schema;
    }
    out += '}';
  }
  out += ']';
  return {};
}

// {"type":"auto"} | {"type":"none"} | {"type":"any"} | {"type":"tool","name":...} (Anthropic
// Messages reference, "tool_choice").
Result<void> append_tool_choice(std::string& out, const ToolChoice& choice) {
  switch (choice.type) {
    case ToolChoice::Type::Auto:
      out += R"({"type":"auto"})";
      break;
    case ToolChoice::Type::None:
      out += R"({"type":"none"})";
      break;
    case ToolChoice::Type::Required:
      out += R"({"type":"any"})";
      break;
    case ToolChoice::Type::Function:
      out += R"({"type":"tool","name":)";
      if (!append_json_string(out, choice.name)) return invalid_utf8("tool_choice.name");
      out += '}';
      break;
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
      if (!m.parts.empty()) {
        // tool_result content as text blocks (Anthropic Messages reference, tool_result).
        out += '[';
        bool first_block = true;
        if (auto ok = append_content_blocks(out, m, i, first_block); !ok) return ok;
        out += ']';
      } else if (!append_json_string(out, m.content)) {
        return invalid_utf8(field("content"));
      }
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
    const bool has_calls =
        m.role == "assistant" && (!m.tool_calls_json.empty() || !m.tool_calls.empty());
    if (has_calls || !m.parts.empty() || !m.thinking_blocks.empty()) {
      out += '[';
      bool first_block = true;
      // Thinking blocks open the assistant turn (Anthropic "Extended thinking": preserving
      // thinking blocks in tool use).
      if (auto ok = append_thinking_blocks(out, m, i, first_block); !ok) return ok;
      if (auto ok = append_content_blocks(out, m, i, first_block); !ok) return ok;
      if (!m.tool_calls.empty()) {
        if (auto ok = append_typed_tool_uses(out, m, i, first_block); !ok) return ok;
      } else if (has_calls) {
        if (auto ok = append_tool_uses(out, m, i, first_block); !ok) return ok;
      }
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
  // The Messages API has no response_format: JSON output there is a tool whose input_schema is
  // the schema, forced with ToolChoice::function(). Refused rather than dropped, so a caller
  // that relies on JSON output finds out before the first request.
  if (request.response_format && request.response_format->type != ResponseFormat::Type::Text) {
    return invalid_argument(fmt::format(
        "response_format {} is not supported by the Anthropic protocol (use a tool with "
        "that schema and tool_choice naming it)",
        request.response_format->type == ResponseFormat::Type::JsonObject ? "json_object"
                                                                          : "json_schema"));
  }
  auto extra = parse_extra_json(request.extra_json);
  if (!extra) return std::move(extra).error();

  std::size_t estimate = 256 + request.extra_json.size() + request.user_id.size();
  if (request.system) estimate += request.system->size();
  for (const Message& m : request.messages) {
    estimate += 96 + m.content.size() + m.tool_calls_json.size();
    for (const ThinkingBlock& b : m.thinking_blocks) {
      estimate += 64 + b.thinking.size() + b.signature.size() + b.data.size();
    }
    for (const ContentPart& p : m.parts) {
      estimate += 96 + p.text.size() + p.url.size() + p.data.size();
    }
  }
  std::string out;
  out.reserve(estimate);

  const int max_tokens = request.max_tokens.value_or(kDefaultMaxTokens);
  // A "thinking" member in extra_json replaces ours, and with it the budget rule.
  AnthropicThinking thinking;
  if (!extra->has("thinking")) {
    auto chosen = anthropic_thinking(request, max_tokens);
    if (!chosen) return std::move(chosen).error();
    thinking = *chosen;
  }
  TopLevelWriter top(out, *extra);
  if (top.key("model")) append_json_string(out, model);  // UTF-8 checked by validate_request
  if (top.key("max_tokens")) append_int(out, max_tokens);

  // Anthropic has no system role: request.system and every system message (its content, then
  // its text parts), in order, joined by blank lines.
  bool has_system = request.system && !request.system->empty();
  for (const Message& m : request.messages) {
    has_system = has_system || (m.role == "system" && (!m.content.empty() || !m.parts.empty()));
  }
  if (has_system && top.key("system")) {
    out += '"';
    bool first = true;
    const auto append_text = [&](std::string_view text) {
      if (!first) out += "\\n\\n";
      first = false;
      return append_json_escaped(out, text);
    };
    if (request.system && !request.system->empty()) {
      if (!append_text(*request.system)) return invalid_utf8("system");
    }
    for (std::size_t i = 0; i < request.messages.size(); ++i) {
      const Message& m = request.messages[i];
      if (m.role != "system") continue;
      if (!m.content.empty() && !append_text(m.content)) {
        return invalid_utf8(fmt::format("messages[{}].content", i));
      }
      for (std::size_t j = 0; j < m.parts.size(); ++j) {  // text only (validate_request)
        if (!append_text(m.parts[j].text)) {
          return invalid_utf8(fmt::format("messages[{}].parts[{}].text", i, j));
        }
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
  if (thinking.kind != AnthropicThinking::Kind::NotSent && top.key("thinking")) {
    if (thinking.kind == AnthropicThinking::Kind::Enabled) {
      out += R"({"type":"enabled","budget_tokens":)";
      append_int(out, thinking.budget_tokens);
      out += '}';
    } else {
      out += R"({"type":"disabled"})";
    }
  }
  if (!request.tools.empty() && top.key("tools")) {
    if (auto ok = append_tools(out, request.tools); !ok) return std::move(ok).error();
  }
  if (request.tool_choice && top.key("tool_choice")) {
    if (auto ok = append_tool_choice(out, *request.tool_choice); !ok) {
      return std::move(ok).error();
    }
  }
  if (!request.user_id.empty() && top.key("metadata")) {
    out += R"({"user_id":)";
    append_json_string(out, request.user_id);  // UTF-8 checked by validate_request
    out += '}';
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
    auto thinking = parse_thinking_block(block, type, path, response);
    if (!thinking) return std::move(thinking).error();
    if (*thinking) continue;
    if (type == "text") {
      auto text = optional_string(block, "text", path + ".text");
      if (!text) return std::move(text).error();
      response.content += *text;
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
    // Other block types (server tool blocks) carry nothing we report.
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
