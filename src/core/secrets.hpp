#pragma once

// The process's secrets (upstream keys, tenant keys, admin tokens, URL and proxy passwords), so
// that any text that leaves the library (Error messages, log lines) can have them replaced, even
// when an upstream echoes one back in an error body.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace glmproxy::detail {

/// Every live client's secrets in one set, process wide. A message is scrubbed against all of
/// them: replacing another client's key too costs nothing and leaks nothing.
///
/// Thread safety: thread-safe (a shared mutex; scrubbing only reads).
class SecretRegistry {
 public:
  static SecretRegistry& instance() noexcept;

  /// Adds `secrets` (empty strings and ones of 4 bytes or fewer are ignored: redact_key() shows
  /// nothing of those either way). Returns a handle for remove(). Never throws: on allocation
  /// failure the secret is simply not added (the pattern scrub still applies).
  std::uint64_t add(std::span<const std::string> secrets) noexcept;
  /// Adds one more secret to the set registered under `handle` (a tenant key seen later).
  void add_to(std::uint64_t handle, std::string_view secret) noexcept;
  /// Forgets what `handle` registered (a secret registered twice stays until both are gone).
  void remove(std::uint64_t handle) noexcept;

  /// Replaces every registered secret in `text` by redact_key(secret), longest first. Also a
  /// prefix of a secret cut off at the end of `text` (or just before a trailing "…", the mark
  /// of a shortened message) is redacted, so a message cut in the middle of a key does not show
  /// its first part.
  void scrub(std::string& text) const noexcept;
  /// The longest registered secret in bytes (0 when none).
  std::size_t longest() const noexcept;

  class Impl;

 private:
  SecretRegistry();
  Impl* impl_;
};

/// RAII registration of a client's secrets.
class SecretScope {
 public:
  SecretScope() = default;
  explicit SecretScope(std::span<const std::string> secrets)
      : handle_(SecretRegistry::instance().add(secrets)) {}
  ~SecretScope() {
    if (handle_ != 0) SecretRegistry::instance().remove(handle_);
  }
  SecretScope(const SecretScope&) = delete;
  SecretScope& operator=(const SecretScope&) = delete;
  void add(std::string_view secret) noexcept {
    if (handle_ != 0) SecretRegistry::instance().add_to(handle_, secret);
  }

 private:
  std::uint64_t handle_ = 0;
};

/// `text` with every registered secret scrubbed (SecretRegistry::scrub()).
std::string scrub_registered(std::string text) noexcept;

}  // namespace glmproxy::detail
