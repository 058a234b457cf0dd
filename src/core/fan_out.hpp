#pragma once

// Handing one result to several waiting callbacks (single-flight joiners, identical requests of
// one batch).

#include <cstddef>
#include <utility>
#include <vector>

namespace glmproxy::detail {

/// Calls every callback with its own copy of `result` (the last one gets it moved). A callback
/// that throws does not keep the others from their answer.
template <class R, class F>
void fan_out(std::vector<F>& callbacks, R result) {
  for (std::size_t i = 0; i < callbacks.size(); ++i) {
    try {
      if (i + 1 == callbacks.size()) {
        callbacks[i](std::move(result));
      } else {
        callbacks[i](result);
      }
    } catch (...) {
      // A throwing callback must not keep the others from their answer.
    }
  }
}

}  // namespace glmproxy::detail
