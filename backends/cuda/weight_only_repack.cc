// Both layouts pad the codes to [Npad = 16 * ceil(N / 16), Kpad = 64 * ceil(K / 64)] with the code of 0
// (padding rows get scale 0 in the glue; padding columns meet zero activations) and regroup them so that
// each lane's 16-byte loads hold exactly its mma.m16n8k16 A fragments of a 16-row x 64-column "quad"
// (rows 16 rt.., columns 64 Q..; lane l = 4 r + cq covers rows r and r + 8, columns 2 cq, 2 cq + 1,
// 2 cq + 8, 2 cq + 9 of each 16 x 16 k-tile), and a warp's bytes of one quad are contiguous.
#include "backends/cuda/weight_only_repack.h"

#include <torch/torch.h>

namespace ptq::cuda {

// int4: word (rt, Q, lane, k-tile j) holds 8 unsigned codes q + 8; nibble p * 4 + c8 * 2 + h is
// (row r + 8 h, column 16 j + 2 cq + 8 c8 + p), so (word >> 4 i) & 0x000F000F puts the pairs of fragment
// register i in the low bits of each half.
torch::Tensor w4a16_repack(const QuantizedWeight& w) {
  const int64_t N = w.out_features(), K = w.in_features();
  const int64_t n_pad = (N + 15) / 16 * 16, k_pad = (K + 63) / 64 * 64;
  auto nib = w.unpacked_int8().to(torch::kInt64) + 8;  // [N, K], unsigned codes
  nib = torch::constant_pad_nd(nib, {0, k_pad - K, 0, n_pad - N}, 8);
  // [RT, h, r, Q, j, c8, cq, p] -> [RT, Q, r, cq, j, p, c8, h]
  nib = nib.reshape({n_pad / 16, 2, 8, k_pad / 64, 4, 2, 4, 2}).permute({0, 3, 2, 6, 4, 7, 5, 1}).reshape({-1, 8});
  auto weights = torch::pow(torch::full({8}, 16, nib.options()), torch::arange(8, nib.options()));  // 16^i
  auto word = (nib * weights).sum(1);  // nibble i at bits 4i..4i+3: [0, 2^32) in int64
  word = torch::where(word >= (int64_t{1} << 31), word - (int64_t{1} << 32), word);
  return word.to(torch::kInt32).contiguous();
}

// int8: bytes (rt, Q, vector hv, lane, k-tile jj of the vector, word c8, h, p) = unsigned code q + 128 of
// (row r + 8 h, column 32 hv + 16 jj + 2 cq + 8 c8 + p): in each word the bytes are the pairs of rows r and
// r + 8, so one byte permute builds a fragment register (kernels/w8a16.cu).
torch::Tensor w8a16_repack(const QuantizedWeight& w) {
  const int64_t N = w.out_features(), K = w.in_features();
  const int64_t n_pad = (N + 15) / 16 * 16, k_pad = (K + 63) / 64 * 64;
  auto u = w.unpacked_int8().to(torch::kInt32) + 128;  // [N, K], unsigned codes
  u = torch::constant_pad_nd(u, {0, k_pad - K, 0, n_pad - N}, 128);
  // [RT, h, r, Q, hv, jj, c8, cq, p] -> [RT, Q, hv, r, cq, jj, c8, h, p]
  u = u.reshape({n_pad / 16, 2, 8, k_pad / 64, 2, 2, 2, 4, 2}).permute({0, 3, 4, 2, 7, 5, 6, 1, 8});
  return u.to(torch::kUInt8).contiguous().reshape({-1});
}

}  // namespace ptq::cuda
