#include "framework/quantized_weight.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "framework/error.h"
#include "framework/torch_format.h"

namespace ptq {
namespace {

void check_bits(int bits, const char* what) {
  PTQ_CHECK(bits == 3 || bits == 4 || bits == 8, "{}: got {} bits, expected 3, 4 or 8", what, bits);
}

// Codes (float32 holding integers, [out, in]) with their scale/zero point ([out, G] float32; zero point
// undefined when symmetric): quantize_weight and fake_quantize_weight share this.
struct Codes {
  torch::Tensor q;
  torch::Tensor scale;
  torch::Tensor zero_point;
  int64_t groups = 1;
};

Codes quantize_to_codes(const torch::Tensor& w, const WeightQuantSpec& spec) {
  PTQ_CHECK(w.defined(), "quantize_weight: weight tensor is undefined");
  PTQ_CHECK(w.dim() == 2, "quantize_weight: weight has shape {}, expected 2-d [out_features, in_features]",
            w.sizes());
  PTQ_CHECK(torch::isFloatingType(w.scalar_type()), "quantize_weight: weight has dtype {}, expected a float dtype",
            w.scalar_type());
  check_bits(spec.bits, "quantize_weight");
  const int64_t out = w.size(0), in = w.size(1);
  const BlockSize block = block_size(spec.group_size, out, in);
  const int64_t R = out / block.rows, G = in / block.cols;
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(w.device());
  torch::Tensor wf = w.to(torch::kFloat32).contiguous();

  Codes codes;
  codes.groups = G;
  if (spec.scale.defined()) {
    // GPTQ-style: parameters come from the caller; only their shapes and values are checked.
    PTQ_CHECK(spec.clip_ratio == 1.0 && !spec.clip_ratio_per_group.defined(),
              "quantize_weight: clip ratios cannot be combined with precomputed scales");
    PTQ_CHECK(spec.scale.dim() == 2 && spec.scale.size(0) == out && spec.scale.size(1) == G,
              "quantize_weight: precomputed scale has shape {}, expected [{}, {}] ({} of a [{}, {}] weight)",
              spec.scale.sizes(), out, G, granularity_name(spec.group_size), out, in);
    codes.scale = spec.scale.to(f32);
    PTQ_CHECK(codes.scale.gt(0).all().item<bool>() && codes.scale.isfinite().all().item<bool>(),
              "quantize_weight: precomputed scale must be positive and finite");
    if (spec.symmetric) {
      PTQ_CHECK(!spec.zero_point.defined(), "quantize_weight: zero_point given for a symmetric spec");
    } else {
      PTQ_CHECK(spec.zero_point.defined(), "quantize_weight: asymmetric spec with precomputed scale needs zero_point");
      PTQ_CHECK(spec.zero_point.sizes() == spec.scale.sizes(),
                "quantize_weight: precomputed zero_point has shape {}, expected {} like the scale",
                spec.zero_point.sizes(), spec.scale.sizes());
      codes.zero_point = spec.zero_point.to(f32);
      PTQ_CHECK(codes.zero_point.eq(codes.zero_point.round()).all().item<bool>() &&
                    codes.zero_point.ge(qmin(spec.bits)).all().item<bool>() &&
                    codes.zero_point.le(qmax(spec.bits)).all().item<bool>(),
                "quantize_weight: precomputed zero_point must hold integers in [{}, {}] (signed convention)",
                qmin(spec.bits), qmax(spec.bits));
    }
  } else {
    PTQ_CHECK(spec.clip_ratio > 0 && std::isfinite(spec.clip_ratio), "quantize_weight: clip_ratio {} must be > 0",
              spec.clip_ratio);
    auto blocks = wf.view({R, block.rows, G, block.cols});
    auto lo = blocks.amin({1, 3});  // [R, G]
    auto hi = blocks.amax({1, 3});
    torch::Tensor ratio = torch::full({R, G}, spec.clip_ratio, f32);
    if (spec.clip_ratio_per_group.defined()) {
      auto per_group = spec.clip_ratio_per_group.to(f32);
      PTQ_CHECK(per_group.dim() <= 2, "quantize_weight: clip_ratio_per_group has shape {}, expected [{}, {}]",
                per_group.sizes(), R, G);
      try {
        ratio = ratio * per_group.expand({R, G});
      } catch (const c10::Error&) {
        fail("quantize_weight: clip_ratio_per_group has shape {}, expected a shape broadcastable to [{}, {}]",
             per_group.sizes(), R, G);
      }
      PTQ_CHECK(ratio.gt(0).all().item<bool>(), "quantize_weight: clip_ratio_per_group must be > 0");
    }
    // Shrinking lo and hi (not clamping w first) is the MSE-observer formulation; for symmetric
    // quantization it equals AutoAWQ's clamp(w, -r*absmax, r*absmax) followed by quantization.
    QParams params = compute_qparams(lo.clamp_max(0) * ratio, hi.clamp_min(0) * ratio, spec.bits, spec.symmetric);
    codes.scale = params.scale;
    codes.zero_point = params.zero_point;
    if (block.rows > 1) {  // per-tensor: one value repeated in every row, so kernels see [out, G]
      codes.scale = codes.scale.repeat_interleave(block.rows, 0);
      if (codes.zero_point.defined()) codes.zero_point = codes.zero_point.repeat_interleave(block.rows, 0);
    }
  }
  auto zp = codes.zero_point.defined() ? codes.zero_point.unsqueeze(-1) : torch::Tensor();
  codes.q = quantize_codes(wf.view({out, G, in / G}), codes.scale.unsqueeze(-1), zp, spec.bits).view({out, in});
  return codes;
}

// 2^(i * bits) for the i-th field of a word, int64 [32 / bits].
torch::Tensor field_multipliers(int bits, const torch::Device& device) {
  std::vector<int64_t> m;
  for (int i = 0; i < 32 / bits; ++i) m.push_back(int64_t{1} << (i * bits));
  return torch::tensor(m, torch::TensorOptions().dtype(torch::kInt64)).to(device);
}

torch::Tensor dequantize_codes(const torch::Tensor& q, const torch::Tensor& scale, const torch::Tensor& zero_point) {
  const int64_t out = q.size(0), in = q.size(1), G = scale.size(1);
  auto v = q.to(torch::kFloat32).reshape({out, G, in / G});
  if (zero_point.defined()) v = v - zero_point.to(torch::kFloat32).unsqueeze(-1);
  return (v * scale.to(torch::kFloat32).unsqueeze(-1)).view({out, in});
}

}  // namespace

std::string WeightQuantSpec::to_string() const {
  return fmt::format("int{} {} {}", bits, granularity_name(group_size), symmetric ? "sym" : "asym");
}

torch::Tensor div_exact(const torch::Tensor& t, double d) { return t / torch::full_like(t, d); }

QParams compute_qparams(const torch::Tensor& lo_in, const torch::Tensor& hi_in, int bits, bool symmetric) {
  PTQ_CHECK(bits >= 2 && bits <= 8, "compute_qparams: got {} bits, expected 2..8", bits);
  PTQ_CHECK(lo_in.sizes() == hi_in.sizes(), "compute_qparams: lo has shape {} but hi has shape {}", lo_in.sizes(),
            hi_in.sizes());
  // 0 must be exactly representable (zero padding, pruned weights, and kernels' zero fill stay exact).
  auto lo = lo_in.to(torch::kFloat32).clamp_max(0);
  auto hi = hi_in.to(torch::kFloat32).clamp_min(0);
  const double range = static_cast<double>(qmax(bits) - qmin(bits));  // 2^b - 1
  QParams p;
  if (symmetric) {
    p.scale = div_exact(torch::max(lo.neg(), hi), range / 2.0);
  } else {
    p.scale = div_exact(hi - lo, range);
  }
  // An all-zero block: any positive scale reproduces it; epsilon is what compressed-tensors stores.
  const float eps = std::numeric_limits<float>::epsilon();
  p.scale = torch::where(p.scale.eq(0), torch::full_like(p.scale, eps), p.scale);
  if (!symmetric) {
    p.zero_point = (static_cast<double>(qmin(bits)) - lo / p.scale).clamp(qmin(bits), qmax(bits)).round();
  }
  return p;
}

torch::Tensor quantize_codes(const torch::Tensor& x, const torch::Tensor& scale, const torch::Tensor& zero_point,
                             int bits) {
  auto t = x.to(torch::kFloat32) / scale.to(torch::kFloat32);
  if (zero_point.defined()) t = t + zero_point.to(torch::kFloat32);
  return t.round().clamp(qmin(bits), qmax(bits));
}

QuantizedWeight quantize_weight(const torch::Tensor& w, const WeightQuantSpec& spec) {
  Codes codes = quantize_to_codes(w, spec);
  QuantizedWeight qw;
  qw.bits = spec.bits;
  qw.group_size = spec.group_size;
  qw.symmetric = spec.symmetric;
  qw.shape = {w.size(0), w.size(1)};
  qw.packing = default_packing(spec.bits);
  auto q8 = codes.q.to(torch::kInt8);
  qw.data = qw.packing == PackingFormat::kInt8Plain ? q8 : pack_int32(q8, spec.bits, 1);
  qw.scale = codes.scale.contiguous();
  if (codes.zero_point.defined()) qw.zero_point = codes.zero_point.to(torch::kInt8).contiguous();
  return qw;
}

torch::Tensor fake_quantize_weight(const torch::Tensor& w, const WeightQuantSpec& spec) {
  Codes codes = quantize_to_codes(w, spec);
  return dequantize_codes(codes.q, codes.scale, codes.zero_point).to(w.scalar_type());
}

// ---- QuantizedWeight ----------------------------------------------------------------------------------

torch::Tensor QuantizedWeight::unpacked_int8() const {
  PTQ_CHECK(data.defined(), "QuantizedWeight: data is undefined");
  if (packing == PackingFormat::kInt8Plain) return data;
  return unpack_int32(data, packing_bits(packing), in_features(), 1);
}

torch::Tensor QuantizedWeight::dequantize(torch::ScalarType dtype) const {
  return dequantize_codes(unpacked_int8(), scale, zero_point).to(dtype);
}

int64_t QuantizedWeight::weight_bytes() const {
  auto bytes = [](const torch::Tensor& t) -> int64_t { return t.defined() ? t.numel() * t.element_size() : 0; };
  return bytes(data) + bytes(scale) + bytes(zero_point);
}

void QuantizedWeight::validate() const {
  PTQ_CHECK(shape.size() == 2 && shape[0] > 0 && shape[1] > 0,
            "QuantizedWeight: shape has {} entries, expected the 2-d [out_features, in_features]", shape.size());
  check_bits(bits, "QuantizedWeight");
  const int64_t out = shape[0], in = shape[1];
  const int64_t G = num_groups(group_size, in);  // validates group_size against in_features
  PTQ_CHECK(packing == PackingFormat::kInt8Plain || packing_bits(packing) == bits,
            "QuantizedWeight: packing {} cannot hold {}-bit codes", ptq::to_string(packing), bits);
  PTQ_CHECK(data.defined(), "QuantizedWeight: data is undefined");
  if (packing == PackingFormat::kInt8Plain) {
    PTQ_CHECK(data.scalar_type() == torch::kInt8 && data.dim() == 2 && data.size(0) == out && data.size(1) == in,
              "QuantizedWeight: data is {} {}, expected Char [{}, {}] for {}", data.scalar_type(), data.sizes(), out,
              in, ptq::to_string(packing));
    if (bits < 8) {
      PTQ_CHECK(data.ge(qmin(bits)).all().item<bool>() && data.le(qmax(bits)).all().item<bool>(),
                "QuantizedWeight: unpacked {}-bit codes outside [{}, {}]", bits, qmin(bits), qmax(bits));
    }
  } else {
    const int64_t pf = pack_factor(packing);
    const int64_t words = (in + pf - 1) / pf;
    PTQ_CHECK(data.scalar_type() == torch::kInt32 && data.dim() == 2 && data.size(0) == out && data.size(1) == words,
              "QuantizedWeight: data is {} {}, expected Int [{}, {}] for {} with in_features {}", data.scalar_type(),
              data.sizes(), out, words, ptq::to_string(packing), in);
  }
  PTQ_CHECK(scale.defined() && scale.scalar_type() == torch::kFloat32 && scale.dim() == 2 && scale.size(0) == out &&
                scale.size(1) == G,
            "QuantizedWeight: scale is {} {}, expected Float [{}, {}] ({})",
            scale.defined() ? scale.scalar_type() : torch::kFloat32,
            scale.defined() ? scale.sizes() : c10::IntArrayRef{}, out, G, granularity_name(group_size));
  PTQ_CHECK(scale.device() == data.device(), "QuantizedWeight: scale is on {}, data on {}", scale.device().str(),
            data.device().str());
  if (symmetric) {
    PTQ_CHECK(!zero_point.defined(), "QuantizedWeight: symmetric weight must not have a zero_point");
  } else {
    PTQ_CHECK(zero_point.defined() && zero_point.scalar_type() == torch::kInt8 && zero_point.sizes() == scale.sizes(),
              "QuantizedWeight: asymmetric weight needs zero_point Char [{}, {}], got {}", out, G,
              zero_point.defined() ? fmt::format("{} {}", zero_point.scalar_type(), zero_point.sizes()) : "none");
    PTQ_CHECK(zero_point.device() == data.device(), "QuantizedWeight: zero_point is on {}, data on {}",
              zero_point.device().str(), data.device().str());
    PTQ_CHECK(zero_point.ge(qmin(bits)).all().item<bool>() && zero_point.le(qmax(bits)).all().item<bool>(),
              "QuantizedWeight: zero_point outside the signed {}-bit range [{}, {}]", bits, qmin(bits), qmax(bits));
  }
}

QuantizedWeight QuantizedWeight::to(const torch::Device& device) const {
  QuantizedWeight copy = *this;
  copy.data = data.to(device);
  copy.scale = scale.to(device);
  if (zero_point.defined()) copy.zero_point = zero_point.to(device);
  return copy;
}

std::string QuantizedWeight::describe() const {
  return fmt::format("int{} {} {} {} [{}, {}]", bits, granularity_name(group_size), symmetric ? "sym" : "asym",
                     ptq::to_string(packing), shape.size() == 2 ? shape[0] : 0, shape.size() == 2 ? shape[1] : 0);
}

// ---- int32 packing -----------------------------------------------------------------------------------

torch::Tensor pack_int32(const torch::Tensor& codes, int bits, int64_t packed_dim) {
  PTQ_CHECK(bits >= 1 && bits <= 8, "pack_int32: got {} bits, expected 1..8", bits);
  PTQ_CHECK(codes.defined() && codes.scalar_type() == torch::kInt8 && codes.dim() == 2,
            "pack_int32: codes must be a 2-d Char tensor, got {} {}",
            codes.defined() ? codes.scalar_type() : torch::kInt8, codes.defined() ? codes.sizes() : c10::IntArrayRef{});
  PTQ_CHECK(packed_dim == 0 || packed_dim == 1, "pack_int32: packed_dim {} must be 0 or 1", packed_dim);
  auto u = codes.to(torch::kInt64) + unsigned_offset(bits);  // unsigned view [0, 2^b - 1]
  PTQ_CHECK(u.ge(0).all().item<bool>() && u.le(unsigned_qmax(bits)).all().item<bool>(),
            "pack_int32: codes outside the signed {}-bit range [{}, {}]", bits, qmin(bits), qmax(bits));
  if (packed_dim == 0) u = u.t();
  u = u.contiguous();
  const int64_t pf = 32 / bits;
  const int64_t rows = u.size(0), cols = u.size(1);
  const int64_t words = (cols + pf - 1) / pf;
  if (words * pf != cols) u = torch::constant_pad_nd(u, {0, words * pf - cols}, 0);
  // Place code i of each run at bit i * bits. Multiplying by 2^shift in int64 avoids signed-shift overflow;
  // the fields are disjoint, so their sum is their bitwise OR, a value in [0, 2^32).
  auto word = (u.view({rows, words, pf}) * field_multipliers(bits, u.device())).sum(-1);
  // Reinterpret [0, 2^32) as int32 two's complement.
  word = torch::where(word.ge(int64_t{1} << 31), word - (int64_t{1} << 32), word);
  auto packed = word.to(torch::kInt32);
  if (packed_dim == 0) packed = packed.t();
  return packed.contiguous();
}

torch::Tensor unpack_int32(const torch::Tensor& packed, int bits, int64_t original_size, int64_t packed_dim) {
  PTQ_CHECK(bits >= 1 && bits <= 8, "unpack_int32: got {} bits, expected 1..8", bits);
  PTQ_CHECK(packed.defined() && packed.scalar_type() == torch::kInt32 && packed.dim() == 2,
            "unpack_int32: packed must be a 2-d Int tensor, got {} {}",
            packed.defined() ? packed.scalar_type() : torch::kInt32,
            packed.defined() ? packed.sizes() : c10::IntArrayRef{});
  PTQ_CHECK(packed_dim == 0 || packed_dim == 1, "unpack_int32: packed_dim {} must be 0 or 1", packed_dim);
  auto p = (packed_dim == 0 ? packed.t() : packed).contiguous();
  const int64_t pf = 32 / bits;
  const int64_t rows = p.size(0), words = p.size(1);
  PTQ_CHECK(original_size <= words * pf && original_size > (words - 1) * pf,
            "unpack_int32: {} packed words hold {} codes, which does not fit an unpacked size of {}", words,
            words * pf, original_size);
  auto u = p.to(torch::kInt64).bitwise_and(int64_t{0xFFFFFFFF});  // unsigned 32-bit value of each word
  auto fields = torch::div(u.unsqueeze(-1), field_multipliers(bits, u.device()), "floor")
                    .bitwise_and(unsigned_qmax(bits));  // [rows, words, pf]
  auto codes = fields.reshape({rows, words * pf}).narrow(1, 0, original_size) - unsigned_offset(bits);
  codes = codes.to(torch::kInt8);
  if (packed_dim == 0) codes = codes.t();
  return codes.contiguous();
}

}  // namespace ptq
