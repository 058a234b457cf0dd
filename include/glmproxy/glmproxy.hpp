#pragma once

/// Umbrella header: everything a glmproxy user needs.

#include "glmproxy/config.hpp"
#include "glmproxy/error.hpp"
#include "glmproxy/keys.hpp"
#include "glmproxy/log.hpp"
#include "glmproxy/metrics.hpp"
#include "glmproxy/profiling.hpp"
#include "glmproxy/proxy_client.hpp"
#include "glmproxy/request.hpp"
#include "glmproxy/response.hpp"
#include "glmproxy/version.hpp"
