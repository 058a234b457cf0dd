#include "core/secrets.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "glmproxy/config.hpp"

namespace glmproxy::detail {

namespace {

constexpr std::string_view kEllipsis = "\xE2\x80\xA6";  // U+2026, the mark of a cut message
constexpr std::size_t kMinSecret = 5;  // redact_key() shows nothing of shorter ones anyway

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

}  // namespace

class SecretRegistry::Impl {
 public:
  mutable std::shared_mutex mu;
  std::uint64_t next = 1;
  std::unordered_map<std::uint64_t, std::unordered_set<std::string, StringHash, std::equal_to<>>>
      by_handle;
  std::unordered_map<std::string, int, StringHash, std::equal_to<>> count;
  // Lengths present, longest first, each with its secrets (heterogeneous lookup by view).
  std::map<std::size_t, std::unordered_set<std::string, StringHash, std::equal_to<>>,
           std::greater<>>
      by_length;
  // Secrets by their first kMinSecret bytes: where a cut message may end inside one.
  std::unordered_multimap<std::string, std::string, StringHash, std::equal_to<>> by_prefix;

  void insert(const std::string& s) {
    if (count[s]++ != 0) return;
    by_length[s.size()].insert(s);
    by_prefix.emplace(s.substr(0, kMinSecret), s);
  }
  void erase(const std::string& s) {
    auto it = count.find(s);
    if (it == count.end() || --it->second > 0) return;
    count.erase(it);
    auto bucket = by_length.find(s.size());
    if (bucket != by_length.end()) {
      bucket->second.erase(s);
      if (bucket->second.empty()) by_length.erase(bucket);
    }
    auto [first, last] = by_prefix.equal_range(std::string_view(s).substr(0, kMinSecret));
    for (auto p = first; p != last; ++p) {
      if (p->second == s) {
        by_prefix.erase(p);
        break;
      }
    }
  }
};

SecretRegistry::SecretRegistry() {
  // In static storage, built in place (empty containers allocate nothing, so this cannot
  // throw) and never destroyed: clients destroyed during static destruction may still call
  // remove().
  alignas(Impl) static unsigned char storage[sizeof(Impl)];
  impl_ = ::new (static_cast<void*>(storage)) Impl();
}

SecretRegistry& SecretRegistry::instance() noexcept {
  alignas(SecretRegistry) static unsigned char storage[sizeof(SecretRegistry)];
  static SecretRegistry* registry = ::new (static_cast<void*>(storage)) SecretRegistry();
  return *registry;
}

std::uint64_t SecretRegistry::add(std::span<const std::string> secrets) noexcept {
  try {
    std::unique_lock lock(impl_->mu);
    const std::uint64_t handle = impl_->next++;
    auto& mine = impl_->by_handle[handle];
    for (const std::string& s : secrets) {
      if (s.size() < kMinSecret || !mine.insert(s).second) continue;
      impl_->insert(s);
    }
    return handle;
  } catch (...) {
    return 0;
  }
}

void SecretRegistry::add_to(std::uint64_t handle, std::string_view secret) noexcept {
  if (secret.size() < kMinSecret) return;
  try {
    {
      std::shared_lock lock(impl_->mu);
      auto it = impl_->by_handle.find(handle);
      if (it == impl_->by_handle.end() || it->second.contains(secret)) return;
    }
    std::unique_lock lock(impl_->mu);
    auto it = impl_->by_handle.find(handle);
    if (it == impl_->by_handle.end()) return;
    auto [at, added] = it->second.emplace(secret);
    if (added) impl_->insert(*at);
  } catch (...) {
  }
}

void SecretRegistry::remove(std::uint64_t handle) noexcept {
  try {
    std::unique_lock lock(impl_->mu);
    auto it = impl_->by_handle.find(handle);
    if (it == impl_->by_handle.end()) return;
    for (const std::string& s : it->second) impl_->erase(s);
    impl_->by_handle.erase(it);
  } catch (...) {
  }
}

std::size_t SecretRegistry::longest() const noexcept {
  std::shared_lock lock(impl_->mu);
  return impl_->by_length.empty() ? 0 : impl_->by_length.begin()->first;
}

void SecretRegistry::scrub(std::string& text) const noexcept {
  try {
    std::shared_lock lock(impl_->mu);
    if (impl_->by_length.empty()) return;
    for (const auto& [length, secrets] : impl_->by_length) {
      if (length > text.size()) continue;
      for (std::size_t i = 0; i + length <= text.size();) {
        const std::string_view window(text.data() + i, length);
        if (secrets.find(window) == secrets.end()) {
          ++i;
          continue;
        }
        const std::string replacement = redact_key(window);
        text.replace(i, length, replacement);
        i += replacement.size();
      }
    }
    // A message shortened in the middle of a secret ends with the secret's first part (and
    // the "…" that says it was cut): redact that part as well. Only the last (longest - 1)
    // positions can start such a part; each is looked up by its first bytes.
    std::string_view body(text);
    if (body.ends_with(kEllipsis)) body.remove_suffix(kEllipsis.size());
    const std::size_t longest = impl_->by_length.begin()->first;
    const std::size_t from = body.size() > longest ? body.size() - longest + 1 : 0;
    for (std::size_t at = from; at + kMinSecret <= body.size(); ++at) {
      const std::string_view tail = body.substr(at);
      auto [first, last] = impl_->by_prefix.equal_range(tail.substr(0, kMinSecret));
      for (auto p = first; p != last; ++p) {
        if (p->second.size() <= tail.size() || !p->second.starts_with(tail)) continue;
        text.replace(at, tail.size(), redact_key(p->second));
        return;  // the rest of the text is gone
      }
    }
  } catch (...) {
    // Out of memory while replacing: leave nothing that may hold a secret.
    text.assign("(message withheld: it could not be checked for secrets)");
  }
}

std::string scrub_registered(std::string text) noexcept {
  SecretRegistry::instance().scrub(text);
  return text;
}

}  // namespace glmproxy::detail
