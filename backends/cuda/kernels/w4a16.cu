// W4A16: the int4 code policy of the row-tile decode kernel and the dequantizer (weight_only_decode.cuh),
// the opt-in split-K decode kernel, and the launchers. Layout: cuda_kernels.h.
//
// Unpacking: the repacked word of a lane is its A fragment, so unpacking is four mask-and-or's (the
// fp16/bf16 exponent trick: 0x6400 | q is the half 1024 + q, 0x4300 | q the bfloat16 128 + q) and one
// packed subtraction of (1024 + 8 + z) per register, which yields the exact small integers q - z.
#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <string>

#include "backends/cuda/kernels/cuda_kernels.h"
#include "backends/cuda/kernels/mma_util.cuh"
#include "backends/cuda/kernels/weight_only_decode.cuh"

namespace ptq::cuda {
namespace {

template <typename T>
struct Int4Magic;
template <>
struct Int4Magic<__half> {
  static constexpr uint32_t kOr = 0x64006400u;  // fp16 1024.0 in both halves
  static constexpr uint32_t kBase = 0x6400u + 8u;  // bits of 1024 + 8 (the unsigned code offset)
};
template <>
struct Int4Magic<__nv_bfloat16> {
  static constexpr uint32_t kOr = 0x43004300u;     // bf16 128.0 in both halves
  static constexpr uint32_t kBase = 0x4300u + 8u;  // 128 + 8: the ulp at 128 is 1, so + 8 + z stays exact
};

// The int4 codes of the repacked layout: one 16-byte vector per lane per quad, word j = k-tile j, nibble
// p * 4 + c8 * 2 + h = (row r + 8 h, column 2 cq + 8 c8 + p), so (word >> 4 i) & 0x000F000F puts the pairs
// of fragment register i in the low bits of each half.
struct Int4Codes {
  static constexpr int kVecs = 1;
  static constexpr int kUnroll = 4;
  // (base + z) in both halves: the value subtracted from (base + code) to leave q - z.
  template <typename T>
  __device__ __forceinline__ static uint32_t zero_pair(int z) {
    const uint32_t h = Int4Magic<T>::kBase + static_cast<uint32_t>(z);  // z in [-8, 7]
    return h | (h << 16);
  }
  template <typename T>
  __device__ __forceinline__ static void fragment(const uint4 (&w)[kVecs], int j, uint32_t z_lo, uint32_t z_hi,
                                                  uint32_t (&a)[4]) {
    const uint32_t word = j == 0 ? w[0].x : j == 1 ? w[0].y : j == 2 ? w[0].z : w[0].w;
    a[0] = sub_pair<T>((word & 0x000F000Fu) | Int4Magic<T>::kOr, z_lo);
    a[1] = sub_pair<T>(((word >> 4) & 0x000F000Fu) | Int4Magic<T>::kOr, z_hi);
    a[2] = sub_pair<T>(((word >> 8) & 0x000F000Fu) | Int4Magic<T>::kOr, z_lo);
    a[3] = sub_pair<T>(((word >> 12) & 0x000F000Fu) | Int4Magic<T>::kOr, z_hi);
  }
};

template <typename T>
cudaError_t dispatch_decode(const W4A16DecodeTuning& t, const void* x, const uint32_t* wq, const float* scales,
                            const int8_t* zeros, const float* bias, void* y, int M, int N, int K, int group_size,
                            cudaStream_t stream) {
  const bool pipe_small = t.kernel == 2 || t.pipeline == 1;
  const bool pipe_big = t.kernel == 2 || t.pipeline != 0;
  return dispatch_row_tile_decode<Int4Codes, T>(pipe_small, pipe_big, t.unroll, x, wq, scales, zeros, bias, y, M, N,
                                                K, group_size, stream);
}

// ---------------------------------------------------------------------------------------------------------
// Split-K decode kernel: OPT-IN (W4A16DecodeTuning::kernel = 1, or PTQ_W4A16_DECODE=kernel=1), because
// on the H200 it measured SLOWER than the kernel above (2026-12-01, bench/cuda/w4a16_decode_sweep.cu,
// fp16 g128, M = 1: 11.6 / 20.0 / 25.6 us against 7.5 / 18.3 / 17.2 us at (K, N) = (4096, 4096),
// (4096, 11008), (11008, 4096); M = 16 also slower; docs/CUDA_BACKEND.md has the table). Correct (tests
// and the sweep's float reference pass), kept as the base for the next attempt. The idea: the kernel
// above keeps its weight loads in registers, so register pressure caps the bytes in flight, and with one
// block per row tile the small-N shapes leave SMs idle and each warp waits on a couple of dependent DRAM
// round trips. Here:
//   - a block owns kRowWarps row tiles (one per warp) and a K range [qa, qb) of 64-column quads; the
//     blocks of one row group that split K form one thread-block cluster (<= 8), and their partial sums
//     are added through distributed shared memory (no workspace, no atomics, no second launch, and a
//     fixed summation order: deterministic);
//   - each warp streams its row tile's quads (512 contiguous bytes each, plus that quad's scales and
//     zero points) through a private S-stage cp.async ring in shared memory: S * 512 bytes per warp in
//     flight without holding registers, no block-wide barrier in the main loop (only __syncwarp, since
//     lanes 0..19 fetch the scales every lane reads);
//   - the block's activation chunk x[0..M, qa*64 .. qb*64) is copied to shared memory once (zero past K)
//     and read by all 8 warps, so L2 serves x once per block, not once per warp;
//   - the k-tiles of one group are accumulated in the mma's fp32 accumulator, then scaled once.
// Suspected costs, not yet separated by measurement: one quad per wait (a serial unpack + 4-mma chain per
// 64 columns, no ILP across quads: a batched step was written but not measured), the cluster launch and
// its two cluster barriers, and the x chunk's load before the first quad can be used.
constexpr int kRowWarps = 8;
constexpr int kMaxClusterSplit = 8;  // portable cluster size

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

template <int NT>
__host__ __device__ constexpr int splitk_red_bytes() {
  return kRowWarps * NT * 4 * 32 * 4;
}
template <int GPQ>
__host__ __device__ constexpr int splitk_stage_bytes() {
  return 512 + GPQ * 64 + GPQ * 16;  // weights (32 lanes x 16 B), GPQ x 16 scales, GPQ x 16 zero points
}

template <typename T, int NT, int GPQ, int S>
__global__ void __launch_bounds__(kRowWarps * 32)
    w4a16_decode_splitk_kernel(const T* __restrict__ x, const uint4* __restrict__ wq,
                               const float* __restrict__ scales, const int8_t* __restrict__ zeros,
                               const float* __restrict__ bias, T* __restrict__ y, int M, int N, int K, int group_size,
                               int qps) {
  namespace cg = cooperative_groups;
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int kStage = splitk_stage_bytes<GPQ>();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int r = lane / 4, cq = lane % 4;
  const TileGeometry geo(N, K, group_size);
  const int split = blockIdx.y;  // == rank in the cluster (the cluster spans gridDim.y)
  const int qa = split * qps;
  const int nq = max(0, min(geo.n_quads, qa + qps) - qa);
  const int rt = blockIdx.x * kRowWarps + warp;
  const int kq = rt < geo.n_row_tiles ? nq : 0;  // this warp's quads

  float* red = reinterpret_cast<float*>(smem);
  unsigned char* ring = smem + splitk_red_bytes<NT>() + warp * S * kStage;
  T* xs = reinterpret_cast<T*>(smem + splitk_red_bytes<NT>() + kRowWarps * S * kStage);
  const int xstride = qps * 64 + 8;  // +16 bytes per row: the 8 token rows of a fragment hit distinct banks

  // Activation chunk (the oldest cp.async group).
  {
    const int k0 = qa * 64, chunks = nq * 8;  // 16-byte chunks per row (8 elements)
    for (int i = threadIdx.x; i < M * chunks; i += blockDim.x) {
      const int m = i / chunks, c = (i % chunks) * 8;
      T* dst = xs + m * xstride + c;
      if (k0 + c < K) {
        cp_async16(dst, x + static_cast<size_t>(m) * K + k0 + c);  // K % 8 == 0: the chunk is inside
      } else {
        *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
      }
    }
    cp_async_commit();
  }

  const uint4* wsrc = wq + (static_cast<size_t>(rt) * geo.n_quads + qa) * 32 + lane;
  auto issue = [&](int i) {  // quad i of this warp into slot i % S; always one commit (maybe empty)
    if (i < kq) {
      unsigned char* st = ring + (i % S) * kStage;
      cp_async16(st + lane * 16, wsrc + static_cast<size_t>(i) * 32);
      const int q = qa + i;
      if (lane < 4 * GPQ) {
        const int gq = lane / 4, part = lane % 4;
        const int g = min(group_of(q * 64 + gq * (64 / GPQ), group_size), geo.n_groups - 1);
        cp_async16(st + 512 + gq * 64 + part * 16, scales + static_cast<size_t>(g) * geo.n_pad + rt * 16 + part * 4);
      } else if (lane >= 16 && lane < 16 + GPQ) {
        const int gq = lane - 16;
        const int g = min(group_of(q * 64 + gq * (64 / GPQ), group_size), geo.n_groups - 1);
        cp_async16(st + 512 + GPQ * 64 + gq * 16, zeros + static_cast<size_t>(g) * geo.n_pad + rt * 16);
      }
    }
    cp_async_commit();
  };
#pragma unroll
  for (int i = 0; i < S; ++i) issue(i);
  cp_async_wait<S>();  // the activation chunk has landed (this thread's part) ...
  __syncthreads();     // ... and everyone's

  float acc[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[nt][e] = 0.f;
  const T* xb = xs + r * xstride + 2 * cq;

  for (int i = 0; i < kq; ++i) {
    cp_async_wait<S - 1>();  // quad i (this lane's copies)
    __syncwarp();            // ... and the scale lanes' copies
    const unsigned char* st = ring + (i % S) * kStage;
    const uint4 wv[1] = {*reinterpret_cast<const uint4*>(st + lane * 16)};
    const float* ss = reinterpret_cast<const float*>(st + 512);
    const int8_t* zz = reinterpret_cast<const int8_t*>(st + 512 + GPQ * 64);
    float s_lo[GPQ], s_hi[GPQ];
    uint32_t z_lo[GPQ], z_hi[GPQ];
#pragma unroll
    for (int gq = 0; gq < GPQ; ++gq) {
      s_lo[gq] = ss[gq * 16 + r];
      s_hi[gq] = ss[gq * 16 + r + 8];
      z_lo[gq] = Int4Codes::zero_pair<T>(zz[gq * 16 + r]);
      z_hi[gq] = Int4Codes::zero_pair<T>(zz[gq * 16 + r + 8]);
    }
    __syncwarp();  // every lane has read the slot before it is refilled
    issue(i + S);

    const T* xq = xb + i * 64;
#pragma unroll
    for (int gq = 0; gq < GPQ; ++gq) {
      float d[NT][4];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) d[nt][e] = 0.f;
#pragma unroll
      for (int jj = 0; jj < 4 / GPQ; ++jj) {
        const int j = gq * (4 / GPQ) + jj;
        uint32_t a[4];
        Int4Codes::fragment<T>(wv, j, z_lo[gq], z_hi[gq], a);
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          uint32_t b[2] = {0u, 0u};
          if (nt * 8 + r < M) {
            const T* p = xq + nt * 8 * xstride + j * 16;
            b[0] = *reinterpret_cast<const uint32_t*>(p);
            b[1] = *reinterpret_cast<const uint32_t*>(p + 8);
          }
          mma16816_acc<T>(d[nt], a, b);
        }
      }
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        acc[nt][0] += d[nt][0] * s_lo[gq];
        acc[nt][1] += d[nt][1] * s_lo[gq];
        acc[nt][2] += d[nt][2] * s_hi[gq];
        acc[nt][3] += d[nt][3] * s_hi[gq];
      }
    }
  }
  cp_async_wait<0>();

  // Partial sums to shared memory, then the cluster adds the K splits: block `split` finalizes every
  // ks-th output of the row group, reading the other blocks' partials through distributed shared memory.
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) red[((warp * NT + nt) * 4 + e) * 32 + lane] = acc[nt][e];
  cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();
  const int ks = gridDim.y;
  const int rows = kRowWarps * 16;
  for (int idx = split * blockDim.x + threadIdx.x; idx < rows * M; idx += ks * blockDim.x) {
    const int m = idx / rows, row = idx % rows;  // row fastest: coalesced stores of y
    const int n = blockIdx.x * rows + row;
    if (n >= N) continue;
    const int wv = row / 16, l16 = row % 16;
    const int nt = m / 8, mm = m % 8;
    const int e = (l16 >= 8 ? 2 : 0) + (mm & 1);
    const int l = (l16 % 8) * 4 + mm / 2;
    const int off = ((wv * NT + nt) * 4 + e) * 32 + l;
    float sum = 0.f;
#pragma unroll 8
    for (int b = 0; b < ks; ++b) sum += cluster.map_shared_rank(red, b)[off];
    if (bias != nullptr) sum += bias[n];
    y[static_cast<size_t>(m) * N + n] = from_float<T>(sum);
  }
  cluster.sync();  // no block leaves while another still reads its shared memory
}

struct SplitPlan {
  int row_groups = 0, ks = 0, qps = 0;
  size_t smem = 0;
};

template <int NT, int GPQ, int S>
SplitPlan plan_splitk(int M, int N, int K, int ksplit, int blocks_per_sm) {
  SplitPlan p;
  const int n_quads = (K + 63) / 64;
  const int n_row_tiles = (N + 15) / 16;
  p.row_groups = (n_row_tiles + kRowWarps - 1) / kRowWarps;
  int ks = ksplit;
  if (ks <= 0) {
    int dev = 0, sms = 132;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
      sms = 132;
    }
    const int target = (blocks_per_sm > 0 ? blocks_per_sm : 2) * sms;
    ks = (target + p.row_groups - 1) / p.row_groups;
  }
  ks = std::max(1, std::min({ks, kMaxClusterSplit, n_quads}));
  p.qps = (n_quads + ks - 1) / ks;
  p.ks = (n_quads + p.qps - 1) / p.qps;  // no empty split
  p.smem = static_cast<size_t>(splitk_red_bytes<NT>()) + static_cast<size_t>(kRowWarps) * S *
                                                             splitk_stage_bytes<GPQ>() +
           static_cast<size_t>(M) * (p.qps * 64 + 8) * 2;
  p.smem = (p.smem + 15) / 16 * 16;
  return p;
}

// Shared memory one block may take (opt-in), cached per device.
int max_smem_optin() {
  static std::atomic<int> cached[16] = {};
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 48 * 1024;
  if (dev < 16 && cached[dev].load() > 0) return cached[dev].load();
  int v = 48 * 1024;
  if (cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) v = 48 * 1024;
  if (dev < 16) cached[dev].store(v);
  return v;
}

template <typename T, int NT, int GPQ, int S>
cudaError_t launch_splitk(const SplitPlan& p, const void* x, const uint32_t* wq, const float* scales,
                          const int8_t* zeros, const float* bias, void* y, int M, int N, int K, int group_size,
                          cudaStream_t stream) {
  auto kernel = w4a16_decode_splitk_kernel<T, NT, GPQ, S>;
  static std::atomic<uint32_t> attr_set{0};  // one bit per device: the opt-in shared memory is set
  int dev = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err != cudaSuccess) return err;
  const uint32_t bit = 1u << (dev % 32);
  if (p.smem > 48 * 1024 && !(attr_set.load() & bit)) {
    err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, max_smem_optin());
    if (err != cudaSuccess) return err;
    attr_set.fetch_or(bit);
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(p.row_groups, p.ks, 1);
  cfg.blockDim = dim3(kRowWarps * 32, 1, 1);
  cfg.dynamicSmemBytes = p.smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = 1;
  attr[0].val.clusterDim.y = p.ks;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  err = cudaLaunchKernelEx(&cfg, kernel, static_cast<const T*>(x), reinterpret_cast<const uint4*>(wq), scales, zeros,
                           bias, static_cast<T*>(y), M, N, K, group_size, p.qps);
  if (err != cudaSuccess) return err;
  return cudaGetLastError();
}

// The legacy kernel when the activation chunk would not fit in shared memory (very large K with M > 8).
template <typename T, int NT, int GPQ, int S>
cudaError_t try_splitk(bool* launched, const W4A16DecodeTuning& t, const void* x, const uint32_t* wq,
                       const float* scales, const int8_t* zeros, const float* bias, void* y, int M, int N, int K,
                       int group_size, cudaStream_t stream) {
  const SplitPlan p = plan_splitk<NT, GPQ, S>(M, N, K, t.ksplit, t.blocks_per_sm);
  *launched = false;
  if (p.smem > static_cast<size_t>(max_smem_optin())) return cudaSuccess;
  *launched = true;
  return launch_splitk<T, NT, GPQ, S>(p, x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
}

template <typename T, int NT, int GPQ>
cudaError_t dispatch_stages(bool* launched, const W4A16DecodeTuning& t, const void* x, const uint32_t* wq,
                            const float* scales, const int8_t* zeros, const float* bias, void* y, int M, int N,
                            int K, int group_size, cudaStream_t stream) {
  // Stage counts other than the default only for the group sizes the benchmarks sweep (fewer kernels).
  if constexpr (GPQ == 1) {
    if (t.stages == 4) {
      return try_splitk<T, NT, GPQ, 4>(launched, t, x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
    }
    if (t.stages == 16) {
      return try_splitk<T, NT, GPQ, 16>(launched, t, x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
    }
  }
  return try_splitk<T, NT, GPQ, 8>(launched, t, x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
}

template <typename T, int GPQ>
cudaError_t dispatch_splitk(bool* launched, const W4A16DecodeTuning& t, const void* x, const uint32_t* wq,
                            const float* scales, const int8_t* zeros, const float* bias, void* y, int M, int N,
                            int K, int group_size, cudaStream_t stream) {
  if (M <= 8) {
    return dispatch_stages<T, 1, GPQ>(launched, t, x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
  }
  return dispatch_stages<T, 2, GPQ>(launched, t, x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
}

template <typename T>
cudaError_t dispatch_decode_tuned(const W4A16DecodeTuning& t, const void* x, const uint32_t* wq,
                                  const float* scales, const int8_t* zeros, const float* bias, void* y, int M, int N,
                                  int K, int group_size, cudaStream_t stream) {
  if (t.kernel == 1) {
    bool launched = false;
    cudaError_t err;
    if (group_size == 0 || group_size % 64 == 0) {
      err = dispatch_splitk<T, 1>(&launched, t, x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
    } else if (group_size % 32 == 0) {
      err = dispatch_splitk<T, 2>(&launched, t, x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
    } else {
      err = dispatch_splitk<T, 4>(&launched, t, x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
    }
    if (launched || err != cudaSuccess) return err;
  }
  return dispatch_decode<T>(t, x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
}

// The defaults, overridable for benchmarking by
// PTQ_W4A16_DECODE="kernel=K,stages=S,ksplit=k,bps=b,unroll=u,pipe=p" (any subset; read once per process,
// e.g. PTQ_W4A16_DECODE=kernel=1 for the split-K kernel, pipe=0 for the row-tile kernel without pipelining).
W4A16DecodeTuning default_decode_tuning() {
  static const W4A16DecodeTuning tuning = [] {
    W4A16DecodeTuning t;
    for_each_tuning_item("PTQ_W4A16_DECODE", [&t](const std::string& key, int v) {
      if (key == "kernel") t.kernel = v;
      if (key == "stages") t.stages = v;
      if (key == "ksplit") t.ksplit = v;
      if (key == "bps") t.blocks_per_sm = v;
      if (key == "unroll") t.unroll = v;
      if (key == "pipe") t.pipeline = v;
    });
    return t;
  }();
  return tuning;
}

}  // namespace

cudaError_t launch_w4a16_decode(const void* x, int dtype, const uint32_t* wq, const float* scales,
                                const int8_t* zeros, const float* bias, void* y, int M, int N, int K, int group_size,
                                cudaStream_t stream) {
  return launch_w4a16_decode_tuned(x, dtype, wq, scales, zeros, bias, y, M, N, K, group_size,
                                   default_decode_tuning(), stream);
}

cudaError_t launch_w4a16_decode_tuned(const void* x, int dtype, const uint32_t* wq, const float* scales,
                                      const int8_t* zeros, const float* bias, void* y, int M, int N, int K,
                                      int group_size, const W4A16DecodeTuning& tuning, cudaStream_t stream) {
  if (M < 1 || M > 16 || K % 8 != 0 || (group_size != 0 && group_size % 16 != 0)) return cudaErrorInvalidValue;
  if (dtype == kF16) {
    return dispatch_decode_tuned<__half>(tuning, x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
  }
  if (dtype == kBF16) {
    return dispatch_decode_tuned<__nv_bfloat16>(tuning, x, wq, scales, zeros, bias, y, M, N, K, group_size, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t launch_w4a16_dequantize(const uint32_t* wq, const float* scales, const int8_t* zeros, void* w, int dtype,
                                    int N, int K, int group_size, cudaStream_t stream) {
  return launch_weight_only_dequantize<Int4Codes>(wq, scales, zeros, w, dtype, N, K, group_size, stream);
}

}  // namespace ptq::cuda
