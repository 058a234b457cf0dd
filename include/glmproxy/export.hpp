#pragma once

/// GLMPROXY_API marks the public API, the only symbols a shared glmproxy exports.
///
/// The library is compiled with hidden visibility (-fvisibility=hidden,
/// -fvisibility-inlines-hidden), so everything else in it, glmproxy::detail and the code it
/// takes from libcurl, simdjson, fmt and xxHash, stays inside the shared object. The build
/// defines GLMPROXY_SHARED for a shared library and passes it on to consumers (CMake target,
/// pkg-config Cflags); a static library leaves it undefined and the macro empty.
/// GLMPROXY_BUILDING is defined only while the library itself is compiled (Windows needs
/// dllexport there and dllimport elsewhere; ELF needs the same attribute on both sides).

#if defined(GLMPROXY_SHARED)
#if defined(_WIN32)
#if defined(GLMPROXY_BUILDING)
#define GLMPROXY_API __declspec(dllexport)
#else
#define GLMPROXY_API __declspec(dllimport)
#endif
#else
#define GLMPROXY_API __attribute__((visibility("default")))
#endif
#else
#define GLMPROXY_API
#endif

// For the library's own code: keeps hidden what an exported class would otherwise lend its
// visibility to (a pimpl `Impl`, with the lambdas in its members, and the private constructor
// that takes one).
#if defined(_WIN32)
#define GLMPROXY_LOCAL
#else
#define GLMPROXY_LOCAL __attribute__((visibility("hidden")))
#endif
