// Checks and small writers for the typed request fields both writers share: content parts,
// typed tool calls, tools, tool_choice and response_format (docs/protocols.md).

#include <simdjson.h>

#include <fmt/format.h>

#include <string>
#include <string_view>

#include "core/strings.hpp"
#include "protocol/internal.hpp"

namespace glmproxy::detail {

namespace {

Result<void> check_part(const ContentPart& part, std::string_view role, const std::string& path) {
  using Type = ContentPart::Type;
  if (part.type != Type::Text && role != "user") {
    return invalid_argument(fmt::format("{} is a {} part, which only user messages may carry", path,
                                        part_type_name(part.type)));
  }
  switch (part.type) {
    case Type::Text:
      if (part.text.empty()) return invalid_argument(path + ".text must not be empty");
      break;
    case Type::ImageUrl:
    case Type::VideoUrl:
    case Type::FileUrl:
      if (part.url.empty()) return invalid_argument(path + ".url must not be empty");
      break;
    case Type::ImageBase64:
      if (part.data.empty()) return invalid_argument(path + ".data must not be empty");
      if (part.media_type.empty()) {
        return invalid_argument(path + ".media_type must not be empty (e.g. \"image/png\")");
      }
      if (part.data.starts_with("data:")) {
        return invalid_argument(
            path +
            ".data must be the base64 bytes without a \"data:\" prefix (a data: "
            "URL goes in an image_url part)");
      }
      break;
    default:
      return invalid_argument(
          fmt::format("{} has an unknown type {}", path, static_cast<int>(part.type)));
  }
  return {};
}

}  // namespace

std::string_view part_type_name(ContentPart::Type type) noexcept {
  switch (type) {
    case ContentPart::Type::Text:
      return "text";
    case ContentPart::Type::ImageUrl:
      return "image_url";
    case ContentPart::Type::ImageBase64:
      return "image_base64";
    case ContentPart::Type::VideoUrl:
      return "video_url";
    case ContentPart::Type::FileUrl:
      return "file_url";
  }
  return "unknown";
}

Result<void> validate_typed_fields(const ChatRequest& request) {
  for (std::size_t i = 0; i < request.messages.size(); ++i) {
    const Message& m = request.messages[i];
    for (std::size_t j = 0; j < m.parts.size(); ++j) {
      if (auto ok = check_part(m.parts[j], m.role, fmt::format("messages[{}].parts[{}]", i, j));
          !ok) {
        return ok;
      }
    }
    if (m.tool_calls.empty()) continue;
    if (m.role != "assistant") {
      return invalid_argument(fmt::format(
          "messages[{}].tool_calls is only for assistant messages, got role \"{}\"", i, m.role));
    }
    if (!m.tool_calls_json.empty()) {
      return invalid_argument(
          fmt::format("messages[{}] has both tool_calls and tool_calls_json; set one of them", i));
    }
    for (std::size_t j = 0; j < m.tool_calls.size(); ++j) {
      const ToolCall& call = m.tool_calls[j];
      if (call.id.empty()) {
        return invalid_argument(
            fmt::format("messages[{}].tool_calls[{}].id must not be empty", i, j));
      }
      if (call.name.empty()) {
        return invalid_argument(
            fmt::format("messages[{}].tool_calls[{}].name must not be empty", i, j));
      }
    }
  }
  for (std::size_t i = 0; i < request.tools.size(); ++i) {
    if (request.tools[i].name.empty()) {
      return invalid_argument(fmt::format("tools[{}].name must not be empty", i));
    }
  }
  if (request.tool_choice) {
    switch (request.tool_choice->type) {
      case ToolChoice::Type::Auto:
      case ToolChoice::Type::None:
      case ToolChoice::Type::Required:
        break;
      case ToolChoice::Type::Function:
        if (request.tool_choice->name.empty()) {
          return invalid_argument("tool_choice.name must not be empty for a Function choice");
        }
        break;
      default:
        return invalid_argument(fmt::format("tool_choice has an unknown type {}",
                                            static_cast<int>(request.tool_choice->type)));
    }
  }
  if (request.response_format) {
    switch (request.response_format->type) {
      case ResponseFormat::Type::Text:
      case ResponseFormat::Type::JsonObject:
        break;
      case ResponseFormat::Type::JsonSchema:
        if (request.response_format->name.empty()) {
          return invalid_argument("response_format.name must not be empty for a JSON schema");
        }
        if (request.response_format->schema_json.empty()) {
          return invalid_argument(
              "response_format.schema_json must not be empty for a JSON schema");
        }
        break;
      default:
        return invalid_argument(fmt::format("response_format has an unknown type {}",
                                            static_cast<int>(request.response_format->type)));
    }
  }
  return {};
}

Result<std::string> json_object_text(std::string_view text, std::string_view field) {
  ScratchParser scratch;
  simdjson::dom::element root;
  if (auto error = scratch.parse_copy(text, root)) {
    return invalid_argument(fmt::format("{} must be a JSON object, but it is not valid JSON ({})",
                                        field, simdjson::error_message(error)));
  }
  if (!root.is_object()) return invalid_argument(fmt::format("{} must be a JSON object", field));
  return simdjson::minify(root);
}

Result<void> append_part_string(std::string& out, std::string_view value, std::size_t message,
                                std::size_t index, std::string_view name) {
  if (!append_json_string(out, value)) {
    return invalid_utf8(fmt::format("messages[{}].parts[{}].{}", message, index, name));
  }
  return {};
}

}  // namespace glmproxy::detail
