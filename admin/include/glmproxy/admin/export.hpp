#pragma once

/// GLMPROXY_ADMIN_API marks glmproxy::admin's public API, the only symbols a shared
/// glmproxy_admin exports (see glmproxy/export.hpp; cpp-httplib's code stays inside).
/// GLMPROXY_ADMIN_SHARED comes with a shared build, GLMPROXY_ADMIN_BUILDING while it is compiled.

#if defined(GLMPROXY_ADMIN_SHARED)
#if defined(_WIN32)
#if defined(GLMPROXY_ADMIN_BUILDING)
#define GLMPROXY_ADMIN_API __declspec(dllexport)
#else
#define GLMPROXY_ADMIN_API __declspec(dllimport)
#endif
#else
#define GLMPROXY_ADMIN_API __attribute__((visibility("default")))
#endif
#else
#define GLMPROXY_ADMIN_API
#endif
