#pragma once

// Tenant key files (APIKEYS_FILE) for the tests that drive a ProxyClient with a key registry.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <system_error>
#include <vector>

namespace test_support {

/// A key file in a fresh temporary directory, removed at the end of the test.
struct KeyFile {
  std::filesystem::path dir;
  std::filesystem::path path;
  explicit KeyFile(const std::string& json) {
    std::random_device rd;
    dir = std::filesystem::temp_directory_path() /
          ("glmproxy-keys-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(dir);
    path = dir / "apikeys.json";
    write(json);
  }
  ~KeyFile() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  KeyFile(const KeyFile&) = delete;
  KeyFile& operator=(const KeyFile&) = delete;
  void write(const std::string& json) const { std::ofstream(path) << json; }
};

/// One key's record: valid until 2099, `limit` tokens per 5 hours, nothing used yet; `extra`
/// is appended inside the object (",\"model\":\"...\"").
inline std::string key_json(const std::string& key, std::int64_t limit = 1'000'000'000,
                            const std::string& extra = "") {
  return R"({"key":")" + key + R"(","name":"tenant )" + key + R"(","token_limit_per_5h":)" +
         std::to_string(limit) +
         R"(,"expiry_date":"2099-01-01T00:00:00Z","created_at":"2026-01-01T00:00:00Z",)"
         R"("last_used":null,"total_lifetime_tokens":0,"usage_windows":[])" +
         extra + "}";
}

/// A key file's whole text: {"keys":[records...]}.
inline std::string keys_file(const std::vector<std::string>& records) {
  std::string out = R"({"keys":[)";
  for (std::size_t i = 0; i < records.size(); ++i) out += (i ? "," : "") + records[i];
  return out + "]}";
}

}  // namespace test_support
