// Upstream error answers (non-2xx bodies and error objects inside 2xx bodies) as typed Errors.

#include <simdjson.h>

#include <fmt/format.h>

#include <array>
#include <string>
#include <string_view>

#include "protocol/errors.hpp"
#include "protocol/internal.hpp"
#include "protocol/protocol.hpp"

namespace glmproxy::detail {

namespace {

bool one_of(std::string_view value, std::initializer_list<std::string_view> set) noexcept {
  for (std::string_view s : set) {
    if (s == value) return true;
  }
  return false;
}

// ARCHITECTURE.md "Upstream facts (Z.AI)": a 429 is ambiguous on its own; these codes say why.
constexpr std::string_view kTooManyAtOnce = "1302";  // concurrency
constexpr std::array<std::string_view, 4> kQuotaCodes = {"1113", "1304", "1308", "1310"};
constexpr std::array<std::string_view, 2> kRefusedCodes = {"1301", "1261"};

template <std::size_t N>
bool in(std::string_view value, const std::array<std::string_view, N>& set) noexcept {
  for (std::string_view s : set) {
    if (s == value) return true;
  }
  return false;
}

// ARCHITECTURE.md "Upstream facts (Z.AI)": the business code decides what a 429 means.
ErrorCode map_code(int status, std::string_view upstream_code) noexcept {
  // Content refused / prompt too long: the request must change, whatever the status.
  if (in(upstream_code, kRefusedCodes)) return ErrorCode::InvalidArgument;
  // Arrears, daily limit, usage caps: asking again will not help until the account changes.
  if (in(upstream_code, kQuotaCodes)) return ErrorCode::QuotaExceeded;
  switch (status) {
    case 400:
    case 413:
    case 422:
      return ErrorCode::InvalidArgument;
    case 401:
      return ErrorCode::Unauthorized;
    case 403:
      return ErrorCode::Forbidden;
    case 429:
      return ErrorCode::RateLimited;
    default:
      break;
  }
  if (status >= 200 && status < 300) {
    // An error object inside a success body: only its code says what it is.
    if (one_of(upstream_code, {kTooManyAtOnce, "1303", "1305", "1312", "rate_limit_error"})) {
      return ErrorCode::RateLimited;
    }
    if (upstream_code == "authentication_error") return ErrorCode::Unauthorized;
    if (upstream_code == "permission_error") return ErrorCode::Forbidden;
    if (one_of(upstream_code, {"invalid_request_error", "request_too_large"})) {
      return ErrorCode::InvalidArgument;
    }
  }
  return ErrorCode::UpstreamError;
}

// Z.AI sends its business code as a string ("1302") or a number (1302).
std::string code_text(std::optional<simdjson::dom::element> value) {
  if (!value) return {};
  std::string_view text;
  if (!value->get_string().get(text)) return std::string(text);
  std::int64_t number = 0;
  if (!value->get_int64().get(number)) return std::to_string(number);
  return {};
}

std::string_view string_member(simdjson::dom::object object, std::string_view key) {
  std::string_view text;
  if (object[key].get_string().get(text)) return {};
  return text;
}

struct ErrorFields {
  std::string code;
  std::string_view message;
};

// OpenAI / Z.AI {"error":{"code","message","type"}}, Anthropic {"type":"error","error":{"type",
// "message"}}, and the flat {"code","msg"} / {"message"} / {"detail"} shapes of older gateways.
ErrorFields read_error_fields(simdjson::dom::object root) {
  ErrorFields fields;
  if (const auto error = member(root, "error")) {
    simdjson::dom::object object;
    std::string_view text;
    if (!error->get_object().get(object)) {
      fields.code = code_text(member(object, "code"));
      if (fields.code.empty()) fields.code = string_member(object, "type");
      fields.message = string_member(object, "message");
    } else if (!error->get_string().get(text)) {
      fields.message = text;
    }
  }
  if (fields.code.empty()) fields.code = code_text(member(root, "code"));
  for (std::string_view key : {"message", "msg", "detail"}) {
    if (!fields.message.empty()) break;
    fields.message = string_member(root, key);
  }
  return fields;
}

Error make_mapped(int status, std::string upstream_code, std::string message) {
  Error error;
  error.code = map_code(status, upstream_code);
  error.http_status = status;
  error.upstream_code = clean_message(upstream_code, 64);
  error.message = std::move(message);
  return error;
}

}  // namespace

bool is_retryable_status(int status) noexcept {
  return status == 0 || status == 408 || status == 409 || status == 429 || status >= 500;
}

bool is_final_business_code(std::string_view code) noexcept {
  return in(code, kQuotaCodes) || in(code, kRefusedCodes);
}

bool is_transient_upstream_code(std::string_view code) noexcept {
  return code == "overloaded_error" || code == "api_error";
}

bool is_too_many_at_once(int status, std::string_view upstream_code) noexcept {
  return status == 429 && (upstream_code == kTooManyAtOnce || upstream_code.empty());
}

bool is_server_failure(int status) noexcept { return status >= 500; }

bool reads_error_answer(int status, bool retry_on_status) noexcept {
  return retry_on_status || status == 429;
}

std::optional<Error> error_in_body(Protocol protocol, simdjson::dom::object root, int status) {
  bool is_error = member(root, "error").has_value();
  if (protocol == Protocol::Anthropic)
    is_error = is_error || string_member(root, "type") == "error";
  if (!is_error) return std::nullopt;
  ErrorFields fields = read_error_fields(root);
  std::string message = clean_message(fields.message);
  if (message.empty()) message = fmt::format("error object in an HTTP {} response", status);
  return make_mapped(status, std::move(fields.code), std::move(message));
}

Error stream_error_event(Protocol protocol, simdjson::dom::object root, int status) {
  if (auto e = error_in_body(protocol, root, status)) return std::move(*e);
  // The flat shape openai-node also reads: {"message": ..., "code": ..., "type": ...}.
  ErrorFields fields = read_error_fields(root);
  if (fields.code.empty()) fields.code = string_member(root, "type");
  std::string message = clean_message(fields.message);
  if (message.empty()) message = "error event inside the stream";
  return make_mapped(status, std::move(fields.code), std::move(message));
}

Error map_error_response(Protocol protocol, int status, std::string& body,
                         std::string_view retry_after_header,
                         std::string_view retry_after_ms_header,
                         std::chrono::system_clock::time_point now) {
  (void)protocol;  // both protocols' error shapes are recognised either way (Z.AI mixes them)
  std::string code;
  std::string message;
  {
    ScratchParser scratch;
    simdjson::dom::element root;
    simdjson::dom::object object;
    if (!scratch.parse(body, root) && !root.get_object().get(object)) {
      ErrorFields fields = read_error_fields(object);
      code = std::move(fields.code);
      message = clean_message(fields.message);
    }
  }
  // Not JSON (an HTML page from a proxy, plain text), or JSON without a message.
  if (message.empty()) message = clean_message(body);
  if (message.empty()) message = fmt::format("HTTP {} with an empty body", status);
  Error error = make_mapped(status, std::move(code), std::move(message));
  error.retry_after = parse_retry_after(retry_after_header, retry_after_ms_header, now);
  return error;
}

}  // namespace glmproxy::detail

namespace glmproxy {

// Defined here, not in src/core/: which errors retry is the protocol layer's word.
bool Error::retryable() const noexcept {
  using namespace detail;
  if (is_final_business_code(upstream_code)) return false;
  // The same certificate is presented to the next handshake too: asking again only repeats it.
  if (upstream_code == kTlsCertificateCode) return false;
  switch (code) {
    case ErrorCode::ConnectionFailed:
    case ErrorCode::Timeout:
    case ErrorCode::RateLimited:
    case ErrorCode::QueueFull:
    case ErrorCode::PoolTimeout:
      return true;
    case ErrorCode::UpstreamError:
      return is_retryable_status(http_status) || is_transient_upstream_code(upstream_code);
    default:
      return false;
  }
}

}  // namespace glmproxy
