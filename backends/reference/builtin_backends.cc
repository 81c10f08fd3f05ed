// The explicit list of built-in backends (framework/backend.h explains why a list, and why here).
// Today the build has only the reference backend. When backends/cpu and backends/cuda arrive, this list
// moves to backends/register_backends.cc in a small library that links every backend target, and gains
// one line per backend (guarded by the build options that enable it).
#include "backends/reference/reference_backend.h"
#include "framework/backend.h"

namespace ptq {

// Adds each built-in backend that is not registered yet, so calling it again (or after a plugin replaced
// one of them) changes nothing.
void register_builtin_backends() {
  if (!find_backend(kReferenceBackendName)) register_reference_backend();
}

}  // namespace ptq
