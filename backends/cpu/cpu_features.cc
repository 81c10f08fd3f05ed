#include "backends/cpu/cpu_features.h"

#include <cpuid.h>

namespace ptq::cpu {
namespace {

// CPUID leaf 7, sub-leaf 0 (structured extended features); zeros when the leaf does not exist.
struct Leaf7 {
  unsigned ebx = 0, ecx = 0, edx = 0;
};
Leaf7 leaf7() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  Leaf7 l;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) l = {ebx, ecx, edx};
  return l;
}

}  // namespace

bool has_avx512() {
  // __builtin_cpu_supports also accounts for the OS enabling the AVX-512 state (XCR0).
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma");
}

// AMX-INT8 is CPUID.(7,0):EDX[25]; the OS grants the tile state per process (oneDNN requests it).
bool has_amx_int8() { return (leaf7().edx >> 25) & 1u; }

bool has_avx512_vnni() { return __builtin_cpu_supports("avx512vnni"); }

std::string cpu_feature_summary() {
  std::string s = has_avx512() ? "avx512" : "no-avx512";
  if (has_avx512_vnni()) s += " vnni";
  if (has_amx_int8()) s += " amx-int8";
  return s;
}

}  // namespace ptq::cpu
