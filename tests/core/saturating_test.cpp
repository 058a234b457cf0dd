// Saturating sums of untrusted counts.

#include "core/saturating.hpp"

#include <catch2/catch.hpp>
#include <cstdint>

using glmproxy::detail::kInt64Max;
using glmproxy::detail::kInt64Min;
using glmproxy::detail::non_negative;
using glmproxy::detail::saturating_add;
using glmproxy::detail::saturating_sub;

// Usable in constant expressions (and so free of undefined behaviour there: a constant
// expression may not overflow).
static_assert(saturating_add(kInt64Max, kInt64Max) == kInt64Max);
static_assert(saturating_add(kInt64Min, kInt64Min) == kInt64Min);
static_assert(saturating_sub(kInt64Min, 1) == kInt64Min);
static_assert(non_negative(-1) == 0);

TEST_CASE("saturating: add stops at the ends of int64", "[saturating]") {
  CHECK(saturating_add(1, 2) == 3);
  CHECK(saturating_add(-5, 3) == -2);
  CHECK(saturating_add(kInt64Max, 0) == kInt64Max);
  CHECK(saturating_add(kInt64Max, 1) == kInt64Max);
  CHECK(saturating_add(kInt64Max, kInt64Max) == kInt64Max);
  CHECK(saturating_add(kInt64Max - 10, 10) == kInt64Max);
  CHECK(saturating_add(kInt64Max - 10, 9) == kInt64Max - 1);
  CHECK(saturating_add(1, kInt64Max) == kInt64Max);
  CHECK(saturating_add(kInt64Min, -1) == kInt64Min);
  CHECK(saturating_add(kInt64Min, kInt64Min) == kInt64Min);
  CHECK(saturating_add(kInt64Min + 10, -10) == kInt64Min);
  CHECK(saturating_add(kInt64Max, kInt64Min) == -1);
  CHECK(saturating_add(kInt64Min, kInt64Max) == -1);
  CHECK(saturating_add(kInt64Max, -1) == kInt64Max - 1);
}

TEST_CASE("saturating: sub stops at the ends of int64", "[saturating]") {
  CHECK(saturating_sub(5, 3) == 2);
  CHECK(saturating_sub(3, 5) == -2);
  CHECK(saturating_sub(kInt64Min, 1) == kInt64Min);
  CHECK(saturating_sub(0, kInt64Min) == kInt64Max);
  CHECK(saturating_sub(-1, kInt64Min) == kInt64Max);
  CHECK(saturating_sub(kInt64Max, -1) == kInt64Max);
  CHECK(saturating_sub(kInt64Max, kInt64Max) == 0);
  CHECK(saturating_sub(kInt64Min, kInt64Min) == 0);
}

TEST_CASE("saturating: a negative increment counted as 0 where the caller asks", "[saturating]") {
  CHECK(non_negative(-1) == 0);
  CHECK(non_negative(kInt64Min) == 0);
  CHECK(non_negative(0) == 0);
  CHECK(non_negative(7) == 7);
  CHECK(non_negative(kInt64Max) == kInt64Max);
  std::int64_t total = 10;
  for (std::int64_t reported : {kInt64Max, kInt64Min, std::int64_t{-3}, kInt64Max}) {
    total = saturating_add(total, non_negative(reported));
  }
  CHECK(total == kInt64Max);
  CHECK(saturating_add(10, non_negative(-20)) == 10);
}
