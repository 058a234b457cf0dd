#include "buffer/buffer_pool.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <utility>

namespace glmproxy::detail {

std::uint64_t BufferPoolStats::hits() const noexcept {
  std::uint64_t n = 0;
  for (const Tier& t : tiers) n += t.hits;
  return n;
}

std::uint64_t BufferPoolStats::misses() const noexcept {
  std::uint64_t n = oversize;
  for (const Tier& t : tiers) n += t.misses;
  return n;
}

std::uint64_t BufferPoolStats::in_use() const noexcept {
  std::uint64_t n = 0;
  for (const Tier& t : tiers) n += t.in_use;
  return n;
}

BufferPool::BufferPool(bool enabled, std::size_t max_pooled_per_tier)
    : enabled_(enabled), max_pooled_(max_pooled_per_tier) {
  // The free lists never allocate after this: release() pushes at most max_pooled_ blocks.
  for (TierState& t : tiers_) t.free.reserve(max_pooled_);
}

BufferPool::~BufferPool() {
  for (TierState& t : tiers_) {
    for (char* block : t.free) delete[] block;
  }
}

int BufferPool::tier_for(std::size_t size) noexcept {
  for (std::size_t i = 0; i < kTierSizes.size(); ++i) {
    if (size <= kTierSizes[i]) return static_cast<int>(i);
  }
  return -1;
}

char* BufferPool::acquire(std::size_t min_capacity, std::size_t& capacity) {
  const int tier = tier_for(min_capacity);
  if (tier < 0) {
    oversize_.fetch_add(1, std::memory_order_relaxed);
    capacity = std::bit_ceil(min_capacity);
    return new char[capacity];
  }
  TierState& t = tiers_[static_cast<std::size_t>(tier)];
  capacity = kTierSizes[static_cast<std::size_t>(tier)];
  t.in_use.fetch_add(1, std::memory_order_relaxed);
  if (!t.free.empty()) {
    char* block = t.free.back();
    t.free.pop_back();
    t.pooled.fetch_sub(1, std::memory_order_relaxed);
    t.hits.fetch_add(1, std::memory_order_relaxed);
    return block;
  }
  t.misses.fetch_add(1, std::memory_order_relaxed);
  return new char[capacity];
}

void BufferPool::release(char* block, std::size_t capacity) noexcept {
  if (block == nullptr) return;
  const int tier = tier_for(capacity);
  if (tier < 0 || kTierSizes[static_cast<std::size_t>(tier)] != capacity) {
    delete[] block;
    return;
  }
  TierState& t = tiers_[static_cast<std::size_t>(tier)];
  t.in_use.fetch_sub(1, std::memory_order_relaxed);
  if (enabled_ && t.free.size() < max_pooled_) {
    t.free.push_back(block);
    t.pooled.fetch_add(1, std::memory_order_relaxed);
  } else {
    delete[] block;
  }
}

BufferPoolStats BufferPool::stats() const noexcept {
  BufferPoolStats s;
  s.enabled = enabled_;
  for (std::size_t i = 0; i < kTierSizes.size(); ++i) {
    const TierState& t = tiers_[i];
    s.tiers[i].block_size = kTierSizes[i];
    s.tiers[i].hits = t.hits.load(std::memory_order_relaxed);
    s.tiers[i].misses = t.misses.load(std::memory_order_relaxed);
    s.tiers[i].in_use = t.in_use.load(std::memory_order_relaxed);
    s.tiers[i].pooled = t.pooled.load(std::memory_order_relaxed);
  }
  s.oversize = oversize_.load(std::memory_order_relaxed);
  return s;
}

Buffer::Buffer(Buffer&& other) noexcept
    : pool_(other.pool_),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      capacity_(std::exchange(other.capacity_, 0)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    reset();
    pool_ = other.pool_;
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
  }
  return *this;
}

void Buffer::set_pool(BufferPool* pool) noexcept {
  if (pool == pool_) return;
  reset();
  pool_ = pool;
}

void Buffer::reserve(std::size_t n) {
  if (n <= capacity_) return;
  // Geometric growth keeps appends amortised O(1) past the top tier too.
  const std::size_t want = std::max(n, capacity_ * 2);
  std::size_t capacity = 0;
  char* block;
  if (pool_ != nullptr) {
    block = pool_->acquire(want, capacity);
  } else {
    capacity = std::max<std::size_t>(std::bit_ceil(want), 64);
    block = new char[capacity];
  }
  if (size_ > 0) std::memcpy(block, data_, size_);
  char* old = std::exchange(data_, block);
  const std::size_t old_capacity = std::exchange(capacity_, capacity);
  if (old != nullptr) {
    if (pool_ != nullptr) {
      pool_->release(old, old_capacity);
    } else {
      delete[] old;
    }
  }
}

void Buffer::append(std::string_view bytes) {
  if (bytes.empty()) return;
  reserve(size_ + bytes.size());
  std::memcpy(data_ + size_, bytes.data(), bytes.size());
  size_ += bytes.size();
}

void Buffer::push_back(char c) {
  reserve(size_ + 1);
  data_[size_++] = c;
}

void Buffer::reset() noexcept {
  if (data_ != nullptr) {
    if (pool_ != nullptr) {
      pool_->release(data_, capacity_);
    } else {
      delete[] data_;
    }
  }
  data_ = nullptr;
  size_ = capacity_ = 0;
}

}  // namespace glmproxy::detail
