// The common start of the CUDA report programs (bench/cuda_*_report.cc): a CUDA device is there, this build
// has the cuda backend, and the device's properties (its L2 size decides how many data copies a timed loop
// needs so that they do not sit in L2 together).
#pragma once

#include <cuda_runtime_api.h>
#include <torch/cuda.h>

#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>

#include "framework/backend.h"

namespace ptq::bench {

struct CudaReportSetup {
  std::shared_ptr<ptq::Backend> cuda;  // the registered "cuda" backend
  cudaDeviceProp prop{};               // of device 0
  int64_t l2 = 0;                      // prop.l2CacheSize in bytes
};

// The setup, or nullopt after printing why not (no CUDA device, or a build without the cuda backend); the
// caller then exits with status 1.
inline std::optional<CudaReportSetup> cuda_report_setup() {
  if (!torch::cuda::is_available()) {
    std::cerr << "no CUDA device\n";
    return std::nullopt;
  }
  ptq::register_builtin_backends();
  CudaReportSetup s;
  s.cuda = ptq::find_backend("cuda");
  if (!s.cuda) {
    std::cerr << "this build has no CUDA backend\n";
    return std::nullopt;
  }
  cudaGetDeviceProperties(&s.prop, 0);
  s.l2 = s.prop.l2CacheSize;
  return s;
}

}  // namespace ptq::bench
