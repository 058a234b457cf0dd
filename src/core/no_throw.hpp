#pragma once

// The library lets no exception out of its public API and none end a thread of its own: code
// that can throw (std::bad_alloc on a huge input, std::system_error from a mutex or a thread, a
// user callback) runs inside no_throw(), which turns what it throws into an Error.

#include <exception>
#include <initializer_list>
#include <new>
#include <string>
#include <string_view>

#include "glmproxy/error.hpp"

namespace glmproxy::detail {

/// An Error (code Internal) for the exception being handled, its message `context` (the parts
/// joined) + ": " + what was thrown. Call only inside a catch block. Never throws: with no
/// memory left for the message, the message is "out of memory".
inline Error exception_error(std::initializer_list<std::string_view> context) noexcept {
  Error e;
  e.code = ErrorCode::Internal;
  try {
    std::string what;
    try {
      throw;
    } catch (const std::bad_alloc&) {
      what = "out of memory (std::bad_alloc)";
    } catch (const std::exception& ex) {
      what = ex.what();
    } catch (...) {
      what = "an exception of unknown type";
    }
    std::string message;
    for (std::string_view part : context) message += part;
    message += ": ";
    message += what;
    e.message = std::move(message);
  } catch (...) {
    e.message = "out of memory";  // fits the small-string buffer: no allocation
  }
  return e;
}

/// f(), which returns a Result; what it throws becomes exception_error(context).
/// Example:
///   return no_throw({"APIKEYS_FILE ", path_, ": reading it"}, [&] { return load(); });
template <class F>
auto no_throw(std::initializer_list<std::string_view> context, F&& f) noexcept -> decltype(f()) {
  try {
    return f();
  } catch (...) {
    return exception_error(context);
  }
}

}  // namespace glmproxy::detail
