// KeyStore: lookups that read the key file again, and usage merged in under the file lock. The
// file's I/O is in key_file_io.cpp, its records' JSON in key_records.cpp, its times in
// iso8601.cpp.

#include "keys/key_store.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <unordered_map>
#include <utility>

#include "core/no_throw.hpp"
#include "core/saturating.hpp"
#include "keys/key_file_io.hpp"

namespace glmproxy::detail {

using SysClock = std::chrono::system_clock;

// Error instead of leaving the library.

Result<std::unique_ptr<KeyStore>> KeyStore::open(std::string path) {
  return no_throw({"APIKEYS_FILE ", path, ": reading it"},
                  [&]() -> Result<std::unique_ptr<KeyStore>> {
                    std::unique_ptr<KeyStore> store(new KeyStore(path));
                    std::lock_guard lock(store->mu_);
                    store->reads_.fetch_add(1, std::memory_order_relaxed);
                    auto records = store->load();
                    if (!records) return std::move(records).error();
                    for (const KeyRecord& r : *records) store->keys_at_open_.push_back(r.key);
                    return store;
                  });
}

Result<std::vector<KeyRecord>> KeyStore::load() {
  auto text = read_key_file(path_, kMaxFileBytes);
  if (!text) return std::move(text).error();
  return parse_key_records(path_, *text);
}

Result<std::optional<KeyRecord>> KeyStore::find(std::string_view key) {
  return no_throw({"APIKEYS_FILE ", path_, ": looking a key up"},
                  [&] { return find_unguarded(key); });
}

Result<std::optional<KeyRecord>> KeyStore::find_unguarded(std::string_view key) {
  std::lock_guard lock(mu_);
  reads_.fetch_add(1, std::memory_order_relaxed);
  auto records = load();
  if (!records) return std::move(records).error();
  for (KeyRecord& r : *records) {
    if (r.key == key) return std::optional<KeyRecord>(std::move(r));
  }
  return std::optional<KeyRecord>();
}

Result<std::size_t> KeyStore::apply(const std::vector<UsageDelta>& deltas,
                                    SysClock::time_point keep_after) {
  return no_throw({"APIKEYS_FILE ", path_, ": writing usage"},
                  [&] { return apply_unguarded(deltas, keep_after); });
}

Result<std::size_t> KeyStore::apply_unguarded(const std::vector<UsageDelta>& deltas,
                                              SysClock::time_point keep_after) {
  std::lock_guard lock(mu_);
  // Read, merge and write under the file lock: another writer's usage is in what we read, and
  // ours is in what it reads next, so both count.
  FileLock file_lock(path_);
  if (!file_lock.held()) {
    return key_file_error(
        path_, fmt::format("cannot lock {}.lock ({})", path_, errno_text(file_lock.error())));
  }
  auto records = load();
  if (!records) return std::move(records).error();
  std::unordered_map<std::string_view, std::size_t> by_key;
  for (std::size_t i = 0; i < records->size(); ++i) by_key.emplace((*records)[i].key, i);
  std::vector<std::optional<SysClock::time_point>> latest(records->size());
  for (const UsageDelta& d : deltas) {
    const auto it = by_key.find(d.key);
    if (it == by_key.end()) continue;  // the key was removed meanwhile
    KeyRecord& r = (*records)[it->second];
    auto& used = latest[it->second];
    used = used ? std::max(*used, d.used_at) : d.used_at;
    if (d.tokens <= 0) continue;
    auto w = std::find_if(r.usage_windows.begin(), r.usage_windows.end(),
                          [&](const UsageWindow& u) { return u.start == d.bucket_start; });
    if (w == r.usage_windows.end()) {
      r.usage_windows.push_back(UsageWindow{d.bucket_start, 0, {}});
      w = std::prev(r.usage_windows.end());
    }
    // The file's counts are >= 0 (checked when read), the deltas > 0: the sums only stop at
    // INT64_MAX.
    w->tokens = saturating_add(w->tokens, d.tokens);
    r.total_lifetime_tokens = saturating_add(r.total_lifetime_tokens, d.tokens);
  }
  std::size_t changed = 0;
  for (std::size_t i = 0; i < records->size(); ++i) {
    KeyRecord& r = (*records)[i];
    std::erase_if(r.usage_windows, [&](const UsageWindow& u) { return u.start < keep_after; });
    std::stable_sort(r.usage_windows.begin(), r.usage_windows.end(),
                     [](const UsageWindow& a, const UsageWindow& b) { return a.start < b.start; });
    if (!latest[i]) continue;
    ++changed;
    // The file keeps seconds, so compare seconds; an unreadable last_used is replaced.
    const auto previous = parse_iso8601(r.last_used);
    const auto floor_s = [](SysClock::time_point t) {
      return std::chrono::floor<std::chrono::seconds>(t);
    };
    if (!previous || floor_s(*previous) < floor_s(*latest[i])) {
      r.last_used = format_iso8601(*latest[i]);
    }
  }
  if (auto written = replace_file(path_, serialize_key_records(*records)); !written) {
    return std::move(written).error();
  }
  writes_.fetch_add(1, std::memory_order_relaxed);
  return changed;
}

}  // namespace glmproxy::detail
