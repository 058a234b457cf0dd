#pragma once

#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace glmproxy {

/// The closed set of failure kinds a caller can act on.
enum class ErrorCode {
  InvalidArgument,   ///< the request itself is wrong (empty messages, bad JSON in extra_json, ...)
  InvalidConfig,     ///< a Config value is malformed or contradicts another
  ConnectionFailed,  ///< DNS, TCP or TLS failure, or the connection broke before a response
  Timeout,           ///< a connect, first-byte, idle or total deadline passed (message says which)
  Cancelled,         ///< the caller cancelled (e.g. a stream callback returned false)
  RateLimited,       ///< the upstream said 429 / too many requests
  QuotaExceeded,     ///< a tenant's token quota, or the upstream account's balance, is used up
  Unauthorized,      ///< missing or unknown key (HTTP 401)
  Forbidden,         ///< key known but not allowed, e.g. expired (HTTP 403)
  UpstreamError,     ///< any other non-success answer from the upstream
  BadResponse,       ///< the upstream answered with a body we could not understand
  QueueFull,         ///< a bounded queue refused the request at once
  PoolTimeout,       ///< no connection slot became free within POOL_ACQUIRE_TIMEOUT
  ShuttingDown,      ///< the client is being destroyed
  Internal,          ///< a bug in glmproxy; please report it
};

/// The name of an ErrorCode, e.g. "RateLimited". Unknown values give "Unknown".
std::string_view to_string(ErrorCode code) noexcept;

/// Error::upstream_code of a ConnectionFailed whose TLS certificate could not be verified (or
/// whose CA file could not be used): not retryable, fixed by GLMPROXY_CA_FILE / GLMPROXY_CA_PATH.
inline constexpr std::string_view kTlsCertificateCode = "tls_certificate";

/// A failure, with enough detail to decide what to do next.
///
/// Thread safety: thread-compatible (a plain value).
struct Error {
  ErrorCode code = ErrorCode::Internal;
  std::string message;        ///< human readable; never contains an API key
  int http_status = 0;        ///< 0 when no HTTP response was received
  std::string upstream_code;  ///< e.g. Z.AI business code "1302", Anthropic "overloaded_error"
  std::optional<std::chrono::milliseconds> retry_after;  ///< when the upstream said to come back

  /// Whether sending the same request again (after retry_after, when set) may succeed:
  /// connection failures, timeouts, 408/409/429/5xx answers, Anthropic overloaded_error /
  /// api_error (also inside a 200 stream) and full local queues are;
  /// bad requests, auth failures, exhausted quotas and Z.AI "no balance" / "content refused"
  /// codes (1113, 1301, 1304, 1308, 1310, 1261) are not; nor is a ConnectionFailed with
  /// upstream_code "tls_certificate" (kTlsCertificateCode: the certificate could not be
  /// verified, and the next handshake would see the same one).
  bool retryable() const noexcept;

  /// "RateLimited (HTTP 429, upstream code 1302): <message>" — for logs and exceptions.
  std::string describe() const;
};

/// Thrown only by Result::value() (and * / ->) when the Result holds an Error: a caller bug,
/// like std::bad_expected_access. Check has_value() first to never see it.
class BadResultAccess : public std::exception {
 public:
  explicit BadResultAccess(Error error) : error_(std::move(error)), what_(error_.describe()) {}
  const Error& error() const noexcept { return error_; }
  const char* what() const noexcept override { return what_.c_str(); }

 private:
  Error error_;
  std::string what_;
};

namespace detail {
const Error& no_error() noexcept;
}  // namespace detail

/// A value of type T or an Error, shaped like C++23 std::expected<T, Error>.
///
/// Thread safety: thread-compatible.
/// Example:
///   Result<Config> config = Config::from_env();
///   if (!config) return fail(config.error().message);
///   use(config->pool.max_connections);
template <class T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::remove_cv_t<T>, Error>, "Result<Error> is ambiguous");

 public:
  using value_type = T;

  Result() requires std::is_default_constructible_v<T> : data_(std::in_place_index<0>) {}
  Result(const T& value) : data_(std::in_place_index<0>, value) {}
  Result(T&& value) : data_(std::in_place_index<0>, std::move(value)) {}
  Result(const Error& error) : data_(std::in_place_index<1>, error) {}
  Result(Error&& error) : data_(std::in_place_index<1>, std::move(error)) {}

  bool has_value() const noexcept { return data_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  /// The value; throws BadResultAccess when this holds an Error.
  T& value() & {
    check();
    return *std::get_if<0>(&data_);
  }
  const T& value() const& {
    check();
    return *std::get_if<0>(&data_);
  }
  T&& value() && {
    check();
    return std::move(*std::get_if<0>(&data_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  /// The Error; when this holds a value, a shared Error with code Internal saying so.
  const Error& error() const& noexcept {
    const Error* e = std::get_if<1>(&data_);
    return e != nullptr ? *e : detail::no_error();
  }
  Error&& error() && noexcept {
    if (Error* e = std::get_if<1>(&data_)) return std::move(*e);
    data_.template emplace<1>(detail::no_error());
    return std::move(*std::get_if<1>(&data_));
  }

  template <class U>
  T value_or(U&& fallback) const& {
    return has_value() ? *std::get_if<0>(&data_) : static_cast<T>(std::forward<U>(fallback));
  }
  template <class U>
  T value_or(U&& fallback) && {
    return has_value() ? std::move(*std::get_if<0>(&data_))
                       : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  void check() const {
    if (!has_value()) throw BadResultAccess(*std::get_if<1>(&data_));
  }

  std::variant<T, Error> data_;
};

/// Success without a value, or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  using value_type = void;

  Result() = default;
  Result(const Error& error) : error_(error) {}
  Result(Error&& error) : error_(std::move(error)) {}

  bool has_value() const noexcept { return !error_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }
  /// Throws BadResultAccess when this holds an Error.
  void value() const {
    if (error_) throw BadResultAccess(*error_);
  }
  void operator*() const { value(); }

  const Error& error() const& noexcept { return error_ ? *error_ : detail::no_error(); }
  Error&& error() && noexcept {
    if (!error_) error_ = detail::no_error();
    return std::move(*error_);
  }

 private:
  std::optional<Error> error_;
};

/// Shorthand for building an Error in a return statement: `return make_error(...)`.
inline Error make_error(ErrorCode code, std::string message, int http_status = 0) {
  Error e;
  e.code = code;
  e.message = std::move(message);
  e.http_status = http_status;
  return e;
}

}  // namespace glmproxy
