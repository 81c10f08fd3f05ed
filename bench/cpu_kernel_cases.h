// The quantized schemes the CPU-kernel benchmarks time (bench_cpu_kernels.cc, cpu_kernel_report.cc),
// made through the backend registry from one random float weight, so both programs measure the same
// kernels the `convert()` path builds.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "framework/backend.h"
#include "framework/error.h"
#include "framework/quantized_weight.h"

namespace ptq::bench {

struct CpuKernelCase {
  std::string label;  // column name in the report
  int bits;
  int64_t group_size;
  bool weight_symmetric;
  ActQuant act;
};

inline const std::vector<CpuKernelCase>& cpu_kernel_cases() {
  static const std::vector<CpuKernelCase> cases = {
      {"w8a8-dyn", 8, kPerChannel, true, ActQuant::kInt8PerTokenDynamic},
      {"w8a8-static", 8, kPerChannel, true, ActQuant::kInt8PerTensorStatic},
      {"w8a16", 8, kPerChannel, true, ActQuant::kNone},
      {"w4a16-g128", 4, 128, false, ActQuant::kNone},
  };
  return cases;
}

// The "cpu" backend's kernel for `c` on weight w [N, K] (float). Throws when the backend is missing or
// declines (the report should not silently time the reference backend).
inline std::shared_ptr<LinearKernel> make_cpu_kernel(const CpuKernelCase& c, const torch::Tensor& w) {
  register_builtin_backends();
  auto cpu = find_backend("cpu");
  PTQ_CHECK(cpu, "the cpu backend is not built (oneDNN missing?): nothing to benchmark");
  WeightQuantSpec spec;
  spec.bits = c.bits;
  spec.group_size = c.group_size;
  spec.symmetric = c.weight_symmetric;
  QuantizedLinearParams p;
  p.weight = quantize_weight(w, spec);
  p.act = c.act;
  if (c.act == ActQuant::kInt8PerTensorStatic) p.input_scale = torch::tensor(4.0f / 127.0f);  // randn inputs
  const Support s = cpu->supports(p.scheme());
  PTQ_CHECK(s.ok, "the cpu backend declines {}: {}", p.scheme().name(), s.reason);
  return cpu->make_linear_kernel(p, torch::kFloat32);
}

}  // namespace ptq::bench
