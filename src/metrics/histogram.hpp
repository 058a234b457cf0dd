#pragma once

// The latency histogram moved to core/histogram.hpp (transport records into it and may not
// include metrics/). This name stays for benchmarks/cache_benchmark.cpp until it includes the
// new one.

#include "core/histogram.hpp"
