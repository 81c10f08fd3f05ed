// Tuning sweep of the W4A16 decode kernel (backends/cuda/kernels/w4a16.cu), CUDA only (no LibTorch), so it
// builds in seconds: every variant of launch_w4a16_decode_tuned is first checked against a plain float32
// reference on random repacked weights (fp16 and bf16, several group sizes, sym and asym, awkward shapes),
// then timed at the issue-7 shapes against cuBLAS fp16 (cublasGemmEx, what torch::linear calls), the same way
// bench/cuda_kernel_report.cc times (CUDA graph of `reps` calls, each on the next of enough weight copies to
// be 4x the L2, median of `trials` replays).
// It also times two floors at the same sizes: an empty kernel (what one launch costs inside the graph) and a
// plain streaming read of the int4 weight bytes (16-byte loads, 8 in flight per thread): the best any decode
// kernel of this layout can do, so cuBLAS time / stream time is the ceiling of the speed-up.
// Run (GPU machine): build-gpu/bench/w4a16_decode_sweep [--quick | --check-only]; exits 77 (ctest: skipped)
// without a GPU, 2 when a variant is wrong.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backends/cuda/kernels/cuda_kernels.h"

using ptq::cuda::W4A16DecodeTuning;

#define CK(x)                                                                              \
  do {                                                                                     \
    cudaError_t e_ = (x);                                                                  \
    if (e_ != cudaSuccess) {                                                               \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                        \
    }                                                                                      \
  } while (0)

namespace {

__device__ uint32_t hash32(uint64_t i, uint32_t seed) {
  uint64_t z = i * 0x9E3779B97F4A7C15ull + seed * 0xBF58476D1CE4E5B9ull + 0x94D049BB133111EBull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<uint32_t>(z ^ (z >> 31));
}
__global__ void fill_words(uint32_t* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = hash32(i, seed);
}
__global__ void fill_scales(float* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = 0.005f + 0.02f * (hash32(i, seed) >> 8) * (1.0f / 16777216.0f);
}
__global__ void fill_zeros(int8_t* p, size_t n, uint32_t seed, bool sym) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = sym ? 0 : static_cast<int8_t>(static_cast<int>(hash32(i, seed) % 16) - 8);
}
template <typename T>
__global__ void fill_x(T* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = static_cast<T>(2.0f * (hash32(i, seed) >> 8) * (1.0f / 16777216.0f) - 1.0f);
}
__global__ void poison(uint16_t* p, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = 0x7FFF;  // NaN in fp16 and bf16
}

__global__ void empty_kernel() {}
__global__ void stream_read(const uint4* __restrict__ p, size_t n16, uint32_t* out) {
  uint32_t acc = 0;
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  for (; i + 7 * stride < n16; i += 8 * stride) {
    uint4 v[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) v[u] = __ldcs(p + i + u * stride);
#pragma unroll
    for (int u = 0; u < 8; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  for (; i < n16; i += stride) {
    const uint4 v = __ldcs(p + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9E3779B9u) out[0] = acc;  // keeps the loads
}

// Dequantized weight element (n, k) from the repacked layout (cuda_kernels.h).
__device__ float wval(const uint32_t* wq, const float* sc, const int8_t* zp, int n, int k, int K, int N, int gs) {
  const int n_quads = (K + 63) / 64, n_pad = (N + 15) / 16 * 16;
  const int rt = n / 16, rr = n % 16, h = rr / 8, r = rr % 8;
  const int Q = k / 64, kq = k % 64, j = kq / 16, c = kq % 16, c8 = c / 8, cq = (c % 8) / 2, p = c % 2;
  const uint32_t word = wq[((static_cast<size_t>(rt) * n_quads + Q) * 32 + 4 * r + cq) * 4 + j];
  const int code = static_cast<int>((word >> (4 * (p * 4 + c8 * 2 + h))) & 0xF) - 8;
  const int g = gs > 0 ? k / gs : 0;
  const size_t gi = static_cast<size_t>(g) * n_pad + n;
  return static_cast<float>(code - zp[gi]) * sc[gi];
}
// Also writes the fp16 dense weight for cuBLAS.
template <typename T>
__global__ void reference(const T* x, const uint32_t* wq, const float* sc, const int8_t* zp, const float* bias,
                          float* y, int M, int N, int K, int gs) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x, m = blockIdx.y;
  if (n >= N) return;
  double acc = 0;
  for (int k = 0; k < K; ++k) acc += double(static_cast<float>(x[size_t(m) * K + k])) * wval(wq, sc, zp, n, k, K, N, gs);
  y[size_t(m) * N + n] = static_cast<float>(acc) + (bias ? bias[n] : 0.f);
}
__global__ void dense_fp16(const uint32_t* wq, const float* sc, const int8_t* zp, __half* w, int N, int K, int gs) {
  const size_t total = size_t(N) * K;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total; i += size_t(gridDim.x) * blockDim.x)
    w[i] = __float2half(wval(wq, sc, zp, int(i / K), int(i % K), K, N, gs));
}

template <typename T>
float to_f(T v) {
  return static_cast<float>(v);
}

struct Weights {
  uint32_t* wq = nullptr;
  float* sc = nullptr;
  int8_t* zp = nullptr;
  size_t wq_words = 0, g_elems = 0;
};
Weights make_weights(int N, int K, int gs, bool sym, int copies, uint32_t seed) {
  Weights w;
  const size_t n_pad = (N + 15) / 16 * 16, k_pad = (K + 63) / 64 * 64;
  const int G = gs > 0 ? (K + gs - 1) / gs : 1;
  w.wq_words = n_pad * k_pad / 8;
  w.g_elems = size_t(G) * n_pad;
  CK(cudaMalloc(&w.wq, w.wq_words * 4 * copies));
  CK(cudaMalloc(&w.sc, w.g_elems * 4 * copies));
  CK(cudaMalloc(&w.zp, w.g_elems * copies));
  fill_words<<<1024, 256>>>(w.wq, w.wq_words * copies, seed);
  fill_scales<<<1024, 256>>>(w.sc, w.g_elems * copies, seed + 1);
  fill_zeros<<<1024, 256>>>(w.zp, w.g_elems * copies, seed + 2, sym);
  CK(cudaGetLastError());
  return w;
}
void free_weights(Weights& w) {
  cudaFree(w.wq);
  cudaFree(w.sc);
  cudaFree(w.zp);
}

struct Variant {
  std::string name;
  W4A16DecodeTuning t;
};

std::vector<Variant> variants() {
  std::vector<Variant> v;
  // {kernel, stages, ksplit, blocks_per_sm, unroll, pipeline}
  v.push_back({"default", {}});
  v.push_back({"rowtile", {0, 8, 0, 0, 0, 0}});
  v.push_back({"rowtile-u8", {0, 8, 0, 0, 8, 0}});
  v.push_back({"pipe", {0, 8, 0, 0, 0, 1}});
  v.push_back({"pipe-u2", {0, 8, 0, 0, 2, 1}});
  v.push_back({"sk-s8", {1, 8, 0, 0, 0, 0}});
  v.push_back({"sk-s4", {1, 4, 0, 0, 0, 0}});
  v.push_back({"sk-s8-k1", {1, 8, 1, 0, 0, 0}});
  return v;
}

// Relative L2 error of the kernel against the float reference; NaN (unwritten output) fails.
template <typename T>
double check(const Variant& var, int dtype, int M, int N, int K, int gs, bool sym, bool with_bias) {
  Weights w = make_weights(N, K, gs, sym, 1, 1234u + N + K + gs);
  T* x;
  T* y;
  float *yref, *bias = nullptr;
  CK(cudaMalloc(&x, size_t(M) * K * sizeof(T)));
  CK(cudaMalloc(&y, size_t(M) * N * sizeof(T)));
  CK(cudaMalloc(&yref, size_t(M) * N * 4));
  if (with_bias) {
    CK(cudaMalloc(&bias, size_t(N) * 4));
    fill_scales<<<64, 256>>>(bias, N, 77);
  }
  fill_x<T><<<256, 256>>>(x, size_t(M) * K, 99u + M);
  poison<<<256, 256>>>(reinterpret_cast<uint16_t*>(y), size_t(M) * N);
  reference<T><<<dim3((N + 127) / 128, M), 128>>>(x, w.wq, w.sc, w.zp, bias, yref, M, N, K, gs);
  CK(cudaGetLastError());
  CK(ptq::cuda::launch_w4a16_decode_tuned(x, dtype, w.wq, w.sc, w.zp, bias, y, M, N, K, gs, var.t, 0));
  CK(cudaDeviceSynchronize());
  std::vector<T> hy(size_t(M) * N);
  std::vector<float> hr(size_t(M) * N);
  CK(cudaMemcpy(hy.data(), y, hy.size() * sizeof(T), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(hr.data(), yref, hr.size() * 4, cudaMemcpyDeviceToHost));
  double num = 0, den = 0;
  for (size_t i = 0; i < hy.size(); ++i) {
    const double a = to_f(hy[i]), b = hr[i];
    if (std::isnan(a)) return 1e30;
    num += (a - b) * (a - b);
    den += b * b;
  }
  cudaFree(x);
  cudaFree(y);
  cudaFree(yref);
  if (bias) cudaFree(bias);
  free_weights(w);
  return std::sqrt(num / std::max(den, 1e-30));
}

template <typename F>
double time_us(F&& call, int reps, int trials, cudaStream_t s) {
  for (int i = 0; i < reps; ++i) call(i, s);
  CK(cudaStreamSynchronize(s));
  cudaGraph_t g;
  cudaGraphExec_t ge;
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  for (int i = 0; i < reps; ++i) call(i, s);
  CK(cudaStreamEndCapture(s, &g));
  CK(cudaGraphInstantiate(&ge, g, 0));
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  std::vector<double> v;
  CK(cudaGraphLaunch(ge, s));
  for (int t = 0; t < trials; ++t) {
    CK(cudaEventRecord(a, s));
    CK(cudaGraphLaunch(ge, s));
    CK(cudaEventRecord(b, s));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    v.push_back(ms * 1e3 / reps);
  }
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const bool check_only = argc > 1 && std::strcmp(argv[1], "--check-only") == 0;
  int n_dev = 0;
  if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev == 0) {
    std::printf("no CUDA device: skipped\n");
    return 77;
  }
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, L2 %d MiB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
  const auto vars = variants();

  // 1. Correctness of every variant.
  struct CheckCase {
    int M, N, K, gs;
    bool sym;
  };
  const std::vector<CheckCase> cc = {
      {1, 4096, 4096, 128, false}, {16, 4096, 4096, 128, false}, {5, 300, 2000, 16, false},
      {9, 37, 208, 16, true},      {3, 520, 3072, 48, false},   {16, 200, 11008, 0, false},
      {1, 13, 200, 0, true},       {12, 264, 1152, 32, false},  {8, 72, 4096, 32, true},
      {2, 70, 320, 64, false},     {16, 1000, 8192, 128, true}, {7, 11008, 4096, 128, false}};
  int bad = 0;
  double worst16 = 0, worst_bf = 0;
  for (const auto& var : vars) {
    for (size_t i = 0; i < cc.size(); ++i) {
      const auto& c = cc[i];
      const double e16 = check<__half>(var, ptq::cuda::kF16, c.M, c.N, c.K, c.gs, c.sym, i % 2 == 0);
      const double ebf = check<__nv_bfloat16>(var, ptq::cuda::kBF16, c.M, c.N, c.K, c.gs, c.sym, i % 2 == 1);
      worst16 = std::max(worst16, e16);
      worst_bf = std::max(worst_bf, ebf);
      if (e16 > 2e-3 || ebf > 1.5e-2) {
        ++bad;
        std::printf("FAIL %s M=%d N=%d K=%d g=%d sym=%d: rel err fp16 %.3g bf16 %.3g\n", var.name.c_str(), c.M, c.N,
                    c.K, c.gs, c.sym, e16, ebf);
      }
    }
  }
  std::printf("check: %d failures over %zu variants x %zu cases x 2 dtypes; worst rel L2 err fp16 %.2e bf16 %.2e\n",
              bad, vars.size(), cc.size(), worst16, worst_bf);
  if (check_only) return bad == 0 ? 0 : 2;

  // 2. Timing at the issue-7 shapes, g128 asymmetric, fp16.
  cublasHandle_t h;
  if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) return 1;
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  cublasSetStream(h, s);
  const int reps = 20, trials = quick ? 5 : 9;
  std::printf("\n| M | K | N | cublas fp16 us |");
  for (const auto& v : vars) std::printf(" %s |", v.name.c_str());
  std::printf("\n");
  for (const auto& kn : {std::pair<int, int>{4096, 4096}, {4096, 11008}, {11008, 4096}}) {
    const int K = kn.first, N = kn.second, gs = 128;
    const size_t l2 = prop.l2CacheSize;
    const int copies = static_cast<int>(std::max<size_t>(2, 4 * l2 / (size_t(N) * K / 2) + 1));
    Weights w = make_weights(N, K, gs, false, copies, 7u + K);
    __half* w16;
    CK(cudaMalloc(&w16, size_t(N) * K * 2 * copies));
    for (int c = 0; c < copies; ++c)
      dense_fp16<<<2048, 256>>>(w.wq + c * w.wq_words, w.sc + c * w.g_elems, w.zp + c * w.g_elems,
                                w16 + size_t(c) * N * K, N, K, gs);
    CK(cudaDeviceSynchronize());
    for (int M : {1, 4, 8, 16}) {
      if (quick && (M == 4 || M == 8)) continue;
      __half *x, *y;
      CK(cudaMalloc(&x, size_t(M) * K * 2));
      CK(cudaMalloc(&y, size_t(M) * N * 2));
      fill_x<__half><<<256, 256>>>(x, size_t(M) * K, 5);
      const float alpha = 1.f, beta = 0.f;
      const double tb = time_us(
          [&](int i, cudaStream_t) {
            cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, w16 + size_t(i % copies) * N * K, CUDA_R_16F, K,
                         x, CUDA_R_16F, K, &beta, y, CUDA_R_16F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
          },
          reps, trials, s);
      if (M == 1) {
        uint32_t* sink;
        CK(cudaMalloc(&sink, 4));
        const double te = time_us([&](int, cudaStream_t st) { empty_kernel<<<1, 32, 0, st>>>(); }, reps, trials, s);
        const size_t n16 = w.wq_words / 4;
        std::printf("floor K=%d N=%d (int4 weight %.2f MB): empty kernel %.2f us; stream read", K, N,
                    n16 * 16 / 1e6, te);
        for (int bps : {2, 4, 8}) {
          const double tr = time_us(
              [&](int i, cudaStream_t st) {
                stream_read<<<prop.multiProcessorCount * bps, 256, 0, st>>>(
                    reinterpret_cast<const uint4*>(w.wq + (i % copies) * w.wq_words), n16, sink);
              },
              reps, trials, s);
          std::printf(" | %d blocks/SM %.2f us = %.2f TB/s, cublas/read %.2fx", bps, tr, n16 * 16 / tr / 1e6, tb / tr);
        }
        std::printf("\n");
        cudaFree(sink);
      }
      std::printf("| %d | %d | %d | %.1f |", M, K, N, tb);
      for (const auto& v : vars) {
        const double t = time_us(
            [&](int i, cudaStream_t st) {
              const int c = i % copies;
              CK(ptq::cuda::launch_w4a16_decode_tuned(x, ptq::cuda::kF16, w.wq + c * w.wq_words, w.sc + c * w.g_elems,
                                                      w.zp + c * w.g_elems, nullptr, y, M, N, K, gs, v.t, st));
            },
            reps, trials, s);
        std::printf(" %.1f (%.2fx) |", t, tb / t);
      }
      std::printf("\n");
      std::fflush(stdout);
      cudaFree(x);
      cudaFree(y);
    }
    cudaFree(w16);
    free_weights(w);
  }
  cublasDestroy(h);
  return bad == 0 ? 0 : 2;
}
