// Timing of microsecond GPU work for the CUDA report programs: CUDA events around `reps` back-to-back calls
// captured once into a CUDA graph and replayed (so host-side launch overhead -- PyTorch's dispatcher, the
// same on both sides of a comparison -- does not hide the kernels), median of `trials` replays. The caller
// passes call(i), i = 0 .. reps - 1, and should make call i touch the i-th of enough data copies that they
// do not sit in L2 together (a decode kernel re-reading L2-resident data measures the cache, not HBM).
// Used by bench/cuda_kernel_report.cc and bench/cuda_kv_attention_report.cc.
#pragma once

#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <exception>
#include <functional>
#include <iostream>
#include <memory>
#include <vector>

namespace ptq::bench {

struct GraphTiming {
  int reps = 20;
  int trials = 7;
  bool graph = true;
};

// Milliseconds per call, median over trials. *graphed: whether the graph was used (capture can fail, e.g.
// for an op that synchronizes; the plain loop is timed then).
inline double time_ms(const std::function<void(int)>& call, const GraphTiming& o, bool* graphed) {
  auto stream = c10::cuda::getCurrentCUDAStream();
  for (int i = 0; i < o.reps; ++i) call(i);  // warm-up: heuristics, allocator, caches
  cudaDeviceSynchronize();
  auto run = [&] {
    for (int i = 0; i < o.reps; ++i) call(i);
  };
  std::unique_ptr<at::cuda::CUDAGraph> graph;
  *graphed = false;
  if (o.graph) {
    try {
      auto side = c10::cuda::getStreamFromPool();  // capture must not use the legacy default stream
      c10::cuda::CUDAStreamGuard guard(side);
      graph = std::make_unique<at::cuda::CUDAGraph>();
      graph->capture_begin();
      run();
      graph->capture_end();
      *graphed = true;
    } catch (const std::exception& e) {
      std::cerr << "graph capture failed, timing the plain loop: " << e.what() << "\n";
      graph.reset();
      cudaGetLastError();
    }
  }
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<double> ms;
  for (int t = 0; t < o.trials; ++t) {
    cudaEventRecord(start, stream.stream());
    if (graph) {
      graph->replay();
    } else {
      run();
    }
    cudaEventRecord(stop, stream.stream());
    cudaEventSynchronize(stop);
    float elapsed = 0;
    cudaEventElapsedTime(&elapsed, start, stop);
    ms.push_back(elapsed / o.reps);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  return ms[ms.size() / 2];
}

}  // namespace ptq::bench
