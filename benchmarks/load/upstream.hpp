#pragma once

// The upstream glmproxy-bench talks to: the bundled mock as a child process (pinned to its
// own core when there are two), the mock inside this process, or any URL.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "load/run.hpp"

namespace glmproxy::bench {

enum class UpstreamKind { Process, InProcess, Url };

struct UpstreamOptions {
  UpstreamKind kind = UpstreamKind::Process;
  std::string url;          ///< Url: the OpenAI-compatible base URL
  std::string mock_binary;  ///< Process: the glmproxy-mock-upstream executable ("" = search)
  bool pin = true;          ///< Process: mock on the second allowed CPU, this process on the first
};

/// Thread safety: not thread-safe; counters() is for the thread that runs the steps.
class Upstream {
 public:
  /// Starts (or, for Url, checks for a stats endpoint on) the upstream; nullptr and `error`
  /// when it cannot. Process mode must be started before this process has other threads: the
  /// pinning it does applies to threads created afterwards.
  static std::unique_ptr<Upstream> start(const UpstreamOptions& options, std::string* error);
  ~Upstream();  ///< stops the mock (a child process: SIGTERM, then SIGKILL after 3 s)
  Upstream(const Upstream&) = delete;
  Upstream& operator=(const Upstream&) = delete;

  const std::string& base_url() const noexcept;
  std::optional<MockCounters> counters();
  std::string_view kind() const noexcept;  ///< "process", "inprocess", "url"
  const std::string& mock_binary() const noexcept;
  bool pinned() const noexcept;
  int bench_cpu() const noexcept;  ///< -1 when not pinned
  int mock_cpu() const noexcept;

  class Impl;

 private:
  explicit Upstream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Kills a mock child process at once (SIGKILL); async-signal-safe, for signal handlers and
/// the watchdog. Does nothing when none runs.
void kill_mock_process_now() noexcept;

/// The CPUs this process may run on (sched_getaffinity), in order.
std::vector<int> allowed_cpus();

}  // namespace glmproxy::bench
