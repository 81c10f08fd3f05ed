// The one wrapper around oneDNN calls (STYLE.md: one check macro per status-code API). oneDNN's C++ API
// throws dnnl::error; PTQ_DNNL turns it into a ptq::Error naming the statement, the location and
// oneDNN's status, so the CLI reports it like every other failure.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include "framework/error.h"

#define PTQ_DNNL(...)                                                                                   \
  [&]() -> auto {                                                                                        \
    try {                                                                                               \
      return __VA_ARGS__;                                                                               \
    } catch (const dnnl::error& e) {                                                                    \
      ::ptq::fail("oneDNN: {} failed at {}:{}: {} (status {})", #__VA_ARGS__, __FILE__, __LINE__,       \
                  e.what(), static_cast<int>(e.status));                                                \
    }                                                                                                   \
  }()
