#pragma once

// Tiered byte buffers for the streaming path: 4, 8, 16, 32 and 64 KiB blocks kept on per-tier
// free lists, so a stream in steady state reuses blocks instead of allocating. Blocks larger than
// the top tier come from the heap and go back to it.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace glmproxy::detail {

/// Counters of one BufferPool (read from any thread; values are approximate while it runs).
struct BufferPoolStats {
  struct Tier {
    std::size_t block_size = 0;
    std::uint64_t hits = 0;    ///< acquisitions served from the free list
    std::uint64_t misses = 0;  ///< acquisitions that allocated
    std::uint64_t in_use = 0;  ///< blocks handed out and not yet returned
    std::uint64_t pooled = 0;  ///< blocks waiting on the free list
  };
  std::array<Tier, 5> tiers{};
  std::uint64_t oversize = 0;  ///< acquisitions above the top tier (always allocated)
  bool enabled = true;

  std::uint64_t hits() const noexcept;
  std::uint64_t misses() const noexcept;
  std::uint64_t in_use() const noexcept;
};

/// The free lists. With `enabled` false every acquisition allocates and every release frees
/// (STREAM_BUFFER_POOL_ENABLED=false), and the counters still say so.
///
/// Thread safety: not thread-safe for acquire/release (one owner thread: the I/O thread);
/// stats() is thread-safe.
class BufferPool {
 public:
  static constexpr std::array<std::size_t, 5> kTierSizes{4096, 8192, 16384, 32768, 65536};

  /// `max_pooled_per_tier`: free blocks kept per tier; more are freed on release.
  explicit BufferPool(bool enabled = true, std::size_t max_pooled_per_tier = 64);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  /// A block of at least `min_capacity` bytes; `capacity` receives its real size.
  char* acquire(std::size_t min_capacity, std::size_t& capacity);
  /// Returns a block from acquire() with the capacity acquire() gave.
  void release(char* block, std::size_t capacity) noexcept;

  BufferPoolStats stats() const noexcept;
  bool enabled() const noexcept { return enabled_; }

 private:
  struct TierState {
    std::vector<char*> free;
    std::atomic<std::uint64_t> hits{0}, misses{0}, in_use{0}, pooled{0};
  };
  static int tier_for(std::size_t size) noexcept;

  bool enabled_;
  std::size_t max_pooled_;
  std::array<TierState, kTierSizes.size()> tiers_;
  std::atomic<std::uint64_t> oversize_{0};
};

/// A growable byte buffer whose storage comes from a BufferPool (or the heap without one).
/// Growth moves to the next tier's block; the old block goes back to the pool.
///
/// Thread safety: thread-compatible; use it on the pool's owner thread.
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(BufferPool* pool) noexcept : pool_(pool) {}
  ~Buffer() { reset(); }
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  /// Rebinds to `pool` (returns any storage to the old one first).
  void set_pool(BufferPool* pool) noexcept;

  char* data() noexcept { return data_; }
  const char* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }
  bool empty() const noexcept { return size_ == 0; }
  std::string_view view() const noexcept { return {data_, size_}; }

  /// Keeps the storage.
  void clear() noexcept { size_ = 0; }
  /// Makes capacity() >= n, keeping the contents.
  void reserve(std::size_t n);
  void append(std::string_view bytes);
  void push_back(char c);
  /// Drops the last byte (size() must be > 0).
  void pop_back() noexcept { --size_; }
  /// Returns the storage to the pool.
  void reset() noexcept;

 private:
  BufferPool* pool_ = nullptr;
  char* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace glmproxy::detail
