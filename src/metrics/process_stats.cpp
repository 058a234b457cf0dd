#include "metrics/process_stats.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>

namespace glmproxy::detail {

ProcessSample sample_process() noexcept {
  ProcessSample s;
  s.at = std::chrono::steady_clock::now();
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0) {
    auto seconds = [](const timeval& t) {
      return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    s.cpu_seconds = seconds(usage.ru_utime) + seconds(usage.ru_stime);
    s.peak_rss_bytes = static_cast<std::uint64_t>(usage.ru_maxrss) * 1024;  // Linux: KiB
  }
  // statm: size resident shared text lib data dt, in pages.
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    unsigned long long size = 0, resident = 0;
    if (std::fscanf(f, "%llu %llu", &size, &resident) == 2) {
      const long page = sysconf(_SC_PAGESIZE);
      s.rss_bytes = resident * static_cast<unsigned long long>(page > 0 ? page : 4096);
    }
    std::fclose(f);
  }
  // The kernel updates the high-water mark lazily; it is never below what is resident now.
  if (s.peak_rss_bytes < s.rss_bytes) s.peak_rss_bytes = s.rss_bytes;
  return s;
}

}  // namespace glmproxy::detail
