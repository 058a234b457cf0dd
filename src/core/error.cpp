#include "glmproxy/error.hpp"

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

}  // namespace glmproxy
