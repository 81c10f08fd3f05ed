// Run-time CPU feature checks. The AVX-512 kernels are compiled for AVX-512 regardless of the build
// machine (only their own file is), so the backend asks these before it offers them.
#pragma once

#include <string>

namespace ptq::cpu {

// AVX-512 F + BW + VL + DQ and FMA: what weight_only_avx512.cc is compiled for.
bool has_avx512();
// AMX with int8 tiles (Sapphire Rapids and later): oneDNN's fastest int8 matmul (brg:avx512_core_amx_int8).
bool has_amx_int8();
// AVX-512 VNNI: oneDNN's int8 matmul without AMX.
bool has_avx512_vnni();
// "avx512 amx-int8 vnni" style summary for reports.
std::string cpu_feature_summary();

}  // namespace ptq::cpu
