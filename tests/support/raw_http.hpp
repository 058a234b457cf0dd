#pragma once

// A tiny raw-libcurl client for tests: what a test needs to see of one HTTP exchange,
// without going through glmproxy (so the mock can be tested on its own).

#include <curl/curl.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace glmproxy::test {

struct RawResponse {
  CURLcode curl_code = CURLE_OK;
  long status = 0;
  std::string headers;  // raw header block(s)
  std::string body;
  std::size_t body_callbacks = 0;  // how many pieces curl delivered
  std::chrono::milliseconds elapsed{0};
  long connects = 0;  // new connections this transfer opened

  bool has_header(const std::string& line) const { return headers.find(line) != std::string::npos; }
};

/// One reusable easy handle; keeps its connection alive between perform() calls.
class RawClient {
 public:
  RawClient() : easy_(curl_easy_init()) {}
  ~RawClient() { curl_easy_cleanup(easy_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  RawResponse post(const std::string& url, const std::string& body,
                   const std::vector<std::string>& headers = {}) {
    return perform("POST", url, &body, headers);
  }
  RawResponse get(const std::string& url) { return perform("GET", url, nullptr, {}); }

  std::string ca_file;  ///< https: the CA bundle to verify the server with ("" = the system's)

  RawResponse perform(const std::string& method, const std::string& url, const std::string* body,
                      const std::vector<std::string>& headers, bool fresh_connection = false) {
    RawResponse r;
    curl_easy_reset(easy_);
    curl_easy_setopt(easy_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy_, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(easy_, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (body != nullptr) {
      curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, body->data());
      curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
    }
    curl_slist* list = nullptr;
    list = curl_slist_append(list, "Content-Type: application/json");
    for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
    curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, list);
    if (fresh_connection) curl_easy_setopt(easy_, CURLOPT_FRESH_CONNECT, 1L);
    if (!ca_file.empty()) curl_easy_setopt(easy_, CURLOPT_CAINFO, ca_file.c_str());
    curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &RawClient::on_body);
    curl_easy_setopt(easy_, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(easy_, CURLOPT_HEADERFUNCTION, &RawClient::on_header);
    curl_easy_setopt(easy_, CURLOPT_HEADERDATA, &r);
    const auto start = std::chrono::steady_clock::now();
    r.curl_code = curl_easy_perform(easy_);
    r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_getinfo(easy_, CURLINFO_NUM_CONNECTS, &r.connects);
    curl_slist_free_all(list);
    return r;
  }

 private:
  static size_t on_body(char* data, size_t size, size_t n, void* user) {
    auto* r = static_cast<RawResponse*>(user);
    r->body.append(data, size * n);
    ++r->body_callbacks;
    return size * n;
  }
  static size_t on_header(char* data, size_t size, size_t n, void* user) {
    static_cast<RawResponse*>(user)->headers.append(data, size * n);
    return size * n;
  }

  CURL* easy_;
};

}  // namespace glmproxy::test
