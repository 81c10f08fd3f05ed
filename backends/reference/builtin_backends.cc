// The explicit list of built-in backends (framework/backend.h explains why a list, and why here).
// Optional backends are guarded by the definitions their build options set (backends/reference/
// CMakeLists.txt links them into this library). When backends/cuda arrives, this list may move to
// backends/register_backends.cc in a small library that links every backend target.
#include "backends/reference/reference_backend.h"
#include "framework/backend.h"

#ifdef PTQ_WITH_CPU_BACKEND
#include "backends/cpu/cpu_backend.h"
#endif
#ifdef PTQ_WITH_CUDA_BACKEND
#include "backends/cuda/cuda_backend.h"
#endif

namespace ptq {

// Adds each built-in backend that is not registered yet, so calling it again (or after a plugin replaced
// one of them) changes nothing. Order matters for "auto": the first non-reference backend that supports a
// scheme wins.
void register_builtin_backends() {
  if (!find_backend(kReferenceBackendName)) register_reference_backend();
#ifdef PTQ_WITH_CPU_BACKEND
  if (!find_backend(kCpuBackendName)) register_cpu_backend();
#endif
#ifdef PTQ_WITH_CUDA_BACKEND
  if (!find_backend(kCudaBackendName)) register_cuda_backend();
#endif
}

}  // namespace ptq
