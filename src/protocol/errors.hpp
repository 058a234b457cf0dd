#pragma once

// Which upstream answers are worth asking again, and which say "too many at once": the protocol
// layer's word on statuses and business codes (ARCHITECTURE.md "Upstream facts (Z.AI)"). The
// transport asks these instead of holding its own lists. Error::retryable() is built on them.
// Every function is pure and thread-safe.

#include <string_view>

#include "glmproxy/error.hpp"

namespace glmproxy::detail {

/// HTTP statuses worth another attempt: 408, 409, 429 and 5xx (529 included); 0 (no answer
/// arrived) too.
bool is_retryable_status(int status) noexcept;

/// Z.AI business codes that asking again will not change, whatever the status: no balance /
/// arrears (1113), refused content (1301), daily or usage caps (1304, 1308, 1310), prompt too
/// long (1261). They make a 429 final.
bool is_final_business_code(std::string_view code) noexcept;

/// Upstream codes that mean "not now" whatever the HTTP status: Anthropic overloaded_error and
/// api_error (inside a 200 stream they arrive with status 200).
bool is_transient_upstream_code(std::string_view code) noexcept;

/// The upstream says this account has too many requests at once for the model: a 429 with Z.AI
/// business code 1302, or a 429 that says nothing more. Such an answer cuts the model's
/// concurrency limit (AIMD), and its attempt is not counted against the request's attempts.
bool is_too_many_at_once(int status, std::string_view upstream_code) noexcept;

/// An answer that counts against the upstream host's health (the circuit breaker): 5xx.
bool is_server_failure(int status) noexcept;

/// Whether a non-2xx answer is read into an Error: always when statuses may be retried, and a
/// 429 always (it may cut the concurrency limit even when the status is final for the caller).
bool reads_error_answer(int status, bool retry_on_status) noexcept;

}  // namespace glmproxy::detail
