#include "glmproxy/error.hpp"

#include <array>

namespace glmproxy {

std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::InvalidArgument:
      return "InvalidArgument";
    case ErrorCode::InvalidConfig:
      return "InvalidConfig";
    case ErrorCode::ConnectionFailed:
      return "ConnectionFailed";
    case ErrorCode::Timeout:
      return "Timeout";
    case ErrorCode::Cancelled:
      return "Cancelled";
    case ErrorCode::RateLimited:
      return "RateLimited";
    case ErrorCode::QuotaExceeded:
      return "QuotaExceeded";
    case ErrorCode::Unauthorized:
      return "Unauthorized";
    case ErrorCode::Forbidden:
      return "Forbidden";
    case ErrorCode::UpstreamError:
      return "UpstreamError";
    case ErrorCode::BadResponse:
      return "BadResponse";
    case ErrorCode::QueueFull:
      return "QueueFull";
    case ErrorCode::PoolTimeout:
      return "PoolTimeout";
    case ErrorCode::ShuttingDown:
      return "ShuttingDown";
    case ErrorCode::Internal:
      return "Internal";
  }
  return "Unknown";
}

namespace {

// Z.AI business codes that will not change by asking again: no balance / arrears (1113),
// content refused (1301), daily or usage caps (1304, 1308, 1310), prompt too long (1261).
bool is_final_zai_code(std::string_view code) noexcept {
  constexpr std::array<std::string_view, 6> kFinal = {"1113", "1261", "1301",
                                                      "1304", "1308", "1310"};
  for (std::string_view c : kFinal) {
    if (c == code) return true;
  }
  return false;
}

bool is_retryable_status(int status) noexcept {
  return status == 0 || status == 408 || status == 409 || status == 429 || status >= 500;
}

// Anthropic error types that mean "not now" whatever the HTTP status: inside a 200 stream an
// overloaded_error (529 elsewhere) or api_error (500) arrives with status 200.
bool is_transient_upstream_code(std::string_view code) noexcept {
  return code == "overloaded_error" || code == "api_error";
}

}  // namespace

bool Error::retryable() const noexcept {
  if (is_final_zai_code(upstream_code)) return false;
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

std::string Error::describe() const {
  std::string out(to_string(code));
  if (http_status != 0 || !upstream_code.empty()) {
    out += " (";
    if (http_status != 0) {
      out += "HTTP ";
      out += std::to_string(http_status);
    }
    if (!upstream_code.empty()) {
      if (http_status != 0) out += ", ";
      out += "upstream code ";
      out += upstream_code;
    }
    out += ')';
  }
  if (!message.empty()) {
    out += ": ";
    out += message;
  }
  return out;
}

namespace detail {
const Error& no_error() noexcept {
  static const Error kNoError{
      ErrorCode::Internal, "Result holds a value, not an error", 0, {}, std::nullopt};
  return kNoError;
}
}  // namespace detail

}  // namespace glmproxy
