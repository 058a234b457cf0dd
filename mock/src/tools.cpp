#include "tools.hpp"

namespace glmproxy::mock::detail {

namespace {

using simdjson::ondemand::json_type;

// The longest tool result the "Tool result: ..." answer repeats.
constexpr std::size_t kToolResultEcho = 200;

// A copy, not a view: the next lookup in the same document may reuse the parser's buffer.
std::string string_field(simdjson::ondemand::object object, std::string_view key) {
  std::string_view s;
  if (object.find_field_unordered(key).get_string().get(s)) return {};
  return std::string(s);
}

// The mock's value for a schema property: a fixed value of its JSON Schema "type".
std::string_view mock_value(simdjson::ondemand::value property) {
  std::string_view type;
  if (property.find_field_unordered("type").get_string().get(type)) return "null";
  if (type == "string") return R"("mock")";
  if (type == "integer" || type == "number") return "1";
  if (type == "boolean") return "true";
  return "null";
}

// {"<property>": <mock value>, ...} in schema order, {} without properties.
std::string mock_arguments(simdjson::ondemand::object schema) {
  std::string out = "{";
  simdjson::ondemand::object properties;
  if (!schema.find_field_unordered("properties").get_object().get(properties)) {
    for (auto field : properties) {
      std::string_view key;
      if (field.unescaped_key().get(key)) break;
      if (out.size() > 1) out += ',';
      append_json_string(out, key);
      out += ':';
      simdjson::ondemand::value property;
      out += field.value().get(property) ? std::string_view("null") : mock_value(property);
    }
  }
  out += '}';
  return out;
}

// A tool_result's content: a string, or text blocks joined.
std::string tool_result_content(simdjson::ondemand::object block) {
  simdjson::ondemand::value content;
  if (block.find_field_unordered("content").get(content)) return {};
  json_type type;
  if (content.type().get(type)) return {};
  std::string out;
  std::string_view s;
  if (type == json_type::string) {
    if (!content.get_string().get(s)) out = s;
  } else if (type == json_type::array) {
    for (auto element : content.get_array()) {
      if (!element.find_field_unordered("text").get_string().get(s)) out += s;
    }
  }
  return out;
}

// A data: URL is shown by its media type and payload size, never whole.
std::string describe_url(std::string_view url) {
  if (!url.starts_with("data:")) return std::string(url);
  const std::string_view rest = url.substr(5);
  const std::size_t comma = rest.find(',');
  const std::string_view media = rest.substr(0, std::min(rest.find(';'), comma));
  const std::size_t payload = comma == rest.npos ? 0 : rest.size() - comma - 1;
  return "data:" + std::string(media) + ", " + std::to_string(payload) + " bytes";
}

// An Anthropic source {"type":"url","url":U} or {"type":"base64","media_type":M,"data":B}.
std::string describe_source(simdjson::ondemand::object block) {
  simdjson::ondemand::object source;
  if (block.find_field_unordered("source").get_object().get(source)) return {};
  if (string_field(source, "type") == "base64") {
    const std::string media = string_field(source, "media_type");
    return "base64 " + media + ", " + std::to_string(string_field(source, "data").size()) +
           " bytes";
  }
  return string_field(source, "url");
}

// OpenAI / Z.AI {"type":T, T:{"url":U}}.
std::string nested_url(simdjson::ondemand::object block, std::string_view type) {
  std::string_view url;
  if (block.find_field_unordered(type).find_field_unordered("url").get_string().get(url)) {
    return {};
  }
  return describe_url(url);
}

void add_media(MessageScan& scan, std::string_view kind, const std::string& source) {
  scan.media += " [";
  scan.media += kind;
  scan.media += ": ";
  scan.media += source;
  scan.media += ']';
}

// At most `limit` bytes of `text`, never cut inside a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view text, std::size_t limit) {
  if (text.size() <= limit) return text;
  std::size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

}  // namespace

void parse_tools(simdjson::ondemand::value tools, RequestInfo& info) {
  simdjson::ondemand::array array;
  if (tools.get_array().get(array)) return;
  for (auto element : array) {
    simdjson::ondemand::object tool;
    if (element.get_object().get(tool)) continue;
    RequestInfo::Tool t;
    simdjson::ondemand::object function;
    simdjson::ondemand::object schema;
    // OpenAI nests the name and schema in "function"; Anthropic has name and input_schema.
    if (!tool.find_field_unordered("function").get_object().get(function)) {
      t.name = string_field(function, "name");
      t.arguments = function.find_field_unordered("parameters").get_object().get(schema)
                        ? "{}"
                        : mock_arguments(schema);
    } else {
      t.name = string_field(tool, "name");
      t.arguments = tool.find_field_unordered("input_schema").get_object().get(schema)
                        ? "{}"
                        : mock_arguments(schema);
    }
    info.tools.push_back(std::move(t));
  }
}

void parse_tool_choice(simdjson::ondemand::value choice, RequestInfo& info) {
  json_type type;
  if (choice.type().get(type)) return;
  if (type == json_type::string) {
    std::string_view s;
    info.tool_choice_none = !choice.get_string().get(s) && s == "none";
    return;
  }
  simdjson::ondemand::object object;
  if (type != json_type::object || choice.get_object().get(object)) return;
  const std::string kind = string_field(object, "type");
  info.tool_choice_none = kind == "none";
  if (kind == "tool") info.tool_choice_name = string_field(object, "name");  // Anthropic
  if (kind == "function") {  // OpenAI {"type":"function","function":{"name":X}}
    simdjson::ondemand::object function;
    if (!object.find_field_unordered("function").get_object().get(function)) {
      info.tool_choice_name = string_field(function, "name");
    }
  }
}

std::int64_t scan_block(simdjson::ondemand::object block, std::string_view type,
                        MessageScan& scan) {
  if (type == "tool_use") {
    scan.has_tool_use = true;
  } else if (type == "tool_result") {
    scan.has_tool_result = true;
    scan.tool_result_text = tool_result_content(block);
    return static_cast<std::int64_t>(scan.tool_result_text.size());
  } else if (type == "image_url") {
    add_media(scan, "image", nested_url(block, type));
  } else if (type == "video_url") {
    add_media(scan, "video", nested_url(block, type));
  } else if (type == "file_url") {
    add_media(scan, "file", nested_url(block, type));
  } else if (type == "image") {
    add_media(scan, "image", describe_source(block));
  } else if (type == "document") {  // glmproxy writes a FileUrl part so for Anthropic
    add_media(scan, "file", describe_source(block));
  }
  return 0;
}

void finish_message(const MessageScan& scan, RequestInfo& info) {
  // OpenAI answers a call with a role "tool" message, Anthropic with a tool_result block.
  info.last_is_tool_result = scan.role == "tool" || scan.has_tool_result;
  info.tool_result_text.clear();
  if (info.last_is_tool_result) {
    info.tool_result_text = scan.role == "tool" ? scan.text : scan.tool_result_text;
  }
  if (scan.role == "user") info.media_suffix += scan.media;
  // Anthropic "Extended thinking" with tool use: the assistant turn must open with its
  // thinking block (checked when the request turns thinking on, plan_response).
  if (scan.role == "assistant" && scan.has_tool_use && info.tool_use_order_error.empty() &&
      scan.first_block_type != "thinking" && scan.first_block_type != "redacted_thinking") {
    info.tool_use_order_error =
        "messages." + std::to_string(info.message_index) +
        ".content.0.type: Expected `thinking` or `redacted_thinking`, but found `" +
        scan.first_block_type +
        "`. When `thinking` is enabled, a final `assistant` message must start with a thinking "
        "block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We "
        "recommend you include thinking blocks from previous turns. To avoid this requirement, "
        "disable `thinking`. Please consult our documentation at "
        "https://docs.claude.com/en/docs/build-with-claude/extended-thinking";
  }
}

std::optional<ToolCallReply> tool_call_reply(const RequestInfo& info, std::uint64_t counter) {
  if (info.tools.empty() || info.tool_choice_none || info.last_is_tool_result) return {};
  const RequestInfo::Tool* chosen = &info.tools.front();
  for (const RequestInfo::Tool& tool : info.tools) {
    if (!info.tool_choice_name.empty() && tool.name == info.tool_choice_name) {
      chosen = &tool;
      break;
    }
  }
  const char* prefix = info.api == Api::Messages ? "toolu_mock_" : "call_mock_";
  return ToolCallReply{prefix + std::to_string(counter), chosen->name, chosen->arguments};
}

std::string reply_text(const RequestInfo& info, const MockOptions& options) {
  std::string text;
  if (info.last_is_tool_result) {
    text = "Tool result: ";
    text += utf8_prefix(info.tool_result_text, kToolResultEcho);
  } else {
    text = options.reply_text;
  }
  text += info.media_suffix;
  return text;
}

}  // namespace glmproxy::mock::detail
