// The common start of the CUDA report programs (bench/cuda_*_report.cc): the timing options, then a check
// that a CUDA device is there and this build has the cuda backend, and the device's properties (its L2 size
// decides how many data copies a timed loop needs so that they do not sit in L2 together).
#pragma once

#include <CLI/CLI.hpp>
#include <cuda_runtime_api.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>

#include "bench/cuda_graph_timer.h"
#include "framework/backend.h"

namespace ptq::bench {

// --reps, --trials and --no-graph, into o.
inline void add_timing_options(CLI::App& app, GraphTiming& o) {
  app.add_option("--reps", o.reps, "Calls per timed replay");
  app.add_option("--trials", o.trials, "Timed replays (the median counts)");
  app.add_flag_callback("--no-graph", [&o] { o.graph = false; }, "Time a plain loop instead of a CUDA graph replay");
}

struct CudaReportSetup {
  std::shared_ptr<ptq::Backend> cuda;  // the registered "cuda" backend
  torch::Device dev{torch::kCUDA, 0};  // the device the report runs on
  cudaDeviceProp prop{};               // of dev
  int64_t l2 = 0;                      // prop.l2CacheSize in bytes
};

// The setup, or nullopt after printing why not (no CUDA device, or a build without the cuda backend); the
// caller then exits with status 1. Also seeds torch's random numbers with 0, so that reports are repeatable.
// (The caller holds its own torch::NoGradGuard: a guard cannot be handed out of a function.)
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
  torch::manual_seed(0);
  cudaGetDeviceProperties(&s.prop, 0);
  s.l2 = s.prop.l2CacheSize;
  return s;
}

}  // namespace ptq::bench
