// Backends: who builds the real kernels behind the Linear and KV-cache slots, and the registry that
// finds them by name.
//
// A backend answers "can you run this scheme?" with a reason (ggml's supports_op), then makes kernels:
// a LinearKernel from QuantizedLinearParams, a KVCacheFormat from KVQuantParams. The reference backend
// (backends/reference: plain LibTorch, any device) implements every scheme and is the ground truth that
// each optimized kernel is tested against; setting PTQ_FORCE_REFERENCE=1 (or force_reference_backend())
// makes every lookup return it.
//
// Registration, and why it is explicit: the registry lives here, in the framework, but the framework
// cannot name any backend (backends link the framework, not the other way round), and self-registering
// statics in shared or static libraries are dropped by the linker whenever nothing else references the
// library. So each backend library exports one registration function (register_reference_backend(), ...)
// and one explicit list calls them: register_builtin_backends(), DECLARED here so that any layer above
// the backends (algorithms, network helpers, the CLI, tests) can call it without including a backend
// header, and DEFINED in the backends layer, which knows the list. It is idempotent and cheap; call it
// once at startup (the CLI's main, the PTQ algorithm, tests) before the first lookup. Plugins call
// register_backend() from their ptq_plugin_init.
#pragma once

#include <torch/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "framework/kv_quant.h"
#include "framework/linear.h"
#include "framework/quantized_weight.h"

namespace ptq {

enum class ActQuant {
  kNone,                 // A16: activations stay in the compute dtype
  kInt8PerTensorStatic,  // one calibrated scale (and zero point when asymmetric) for the whole input
  kInt8PerTokenDynamic,  // one scale per row of the input, computed at run time
};
std::string to_string(ActQuant act);  // "none", "int8-static", "int8-dynamic"

// What a Linear computes, independent of the tensors: the question a backend answers in supports().
struct LinearScheme {
  int weight_bits = 0;               // 0 = float weight; 3, 4 or 8
  int64_t group_size = kPerChannel;  // kPerChannel, kPerTensor or g
  bool weight_symmetric = true;
  ActQuant act = ActQuant::kNone;
  bool act_symmetric = true;

  // "w4a16-g128-asym", "w8a16", "w8a8-dynamic", "w8a8-static-asymact", "float".
  std::string name() const;
};

// A backend's answer: ok, or the reason it declines ("group size 96 not supported: needs a multiple of 128").
struct Support {
  bool ok = true;
  std::string reason;
  static Support yes() { return {true, ""}; }
  static Support no(std::string why) { return {false, std::move(why)}; }
  explicit operator bool() const { return ok; }
};

// Everything a real quantized Linear kernel needs.
struct QuantizedLinearParams {
  QuantizedWeight weight;
  torch::Tensor bias;  // float [out] (any float dtype) or undefined
  ActQuant act = ActQuant::kNone;
  bool act_symmetric = true;
  // kInt8PerTensorStatic only: one positive float; zero point one integer in [-128, 127] (asymmetric).
  torch::Tensor input_scale;
  torch::Tensor input_zero_point;

  LinearScheme scheme() const;
  // Throws naming the field when the parts disagree (weight layout, bias length, static input scale).
  void validate() const;
};

// The calibration-time kernel: weight (and input) quantize-dequantized in float, then a float matmul.
// weight_spec.bits == 0 leaves the weight in float. The weight is fake-quantized once, when the kernel is
// made; rebuild the kernel after changing the Linear's weight.
struct FakeQuantLinearParams {
  torch::Tensor weight;  // float [out, in]
  torch::Tensor bias;    // float [out] or undefined
  WeightQuantSpec weight_spec;
  ActQuant act = ActQuant::kNone;
  bool act_symmetric = true;
  torch::Tensor input_scale;  // as in QuantizedLinearParams
  torch::Tensor input_zero_point;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // Whether this backend has kernels for `device` at all (e.g. cuda: only CUDA devices).
  virtual Support supports_device(const torch::Device& device) const { return Support::yes(); }
  virtual Support supports(const LinearScheme& scheme) const = 0;
  // compute_dtype: the dtype of x handed to forward() (and of its result).
  virtual std::shared_ptr<LinearKernel> make_linear_kernel(const QuantizedLinearParams& params,
                                                           torch::ScalarType compute_dtype) const = 0;
  virtual Support supports_kv(const KVQuantParams& params) const;  // default: no
  // Throws "KV-cache quantization (...) not supported on <name>" unless overridden.
  virtual std::shared_ptr<KVCacheFormat> make_kv_cache_format(const KVQuantParams& params) const;
  // Fake-quant kernels are a calibration tool; the reference backend makes them. Default: throws.
  virtual std::shared_ptr<LinearKernel> make_fake_quant_kernel(const FakeQuantLinearParams& params) const;
};

// ---- registry ---------------------------------------------------------------------------------------

// Adds (or replaces, by name) a backend. Thread-safe.
void register_backend(std::shared_ptr<Backend> backend);
// Removes the backend registered under `name`; false when there was none (plugin unload, tests).
bool unregister_backend(const std::string& name);
// The backend registered under `name`. When the reference backend is forced, returns it whatever the
// name. "auto" returns the first registered non-reference backend, else the reference (it cannot look at
// the scheme or device: prefer select_backend() when they are known). Throws listing the registered
// names, with a hint to call register_builtin_backends(), when none matches.
std::shared_ptr<Backend> backend(const std::string& name);
// As backend(name) but never forced and nullptr when absent (tests comparing a backend to the reference).
std::shared_ptr<Backend> find_backend(const std::string& name);
// Registered names, in registration order.
std::vector<std::string> available_backends();

// Kernel selection, the policy the PTQ algorithm uses: `requested` is a backend name or "auto".
//   forced reference        -> reference (fallback_reason says so)
//   named backend supports  -> it
//   named backend declines  -> reference, with the backend's reason in fallback_reason
//   "auto"                  -> the first registered non-reference backend that supports the device and
//                              the scheme, else reference with every decline in fallback_reason
// Throws when even the reference backend declines (the message carries its reason).
// The same walk serves linears (Backend::supports) and int8 KV caches (Backend::supports_kv): a Capability
// names what is asked for (in the reasons) and asks one backend.
struct BackendChoice {
  std::shared_ptr<Backend> backend;
  std::string fallback_reason;  // empty when the requested backend was used
};
struct Capability {
  std::string name;  // e.g. the scheme's name
  std::function<Support(const Backend&)> supported_by;
};
BackendChoice select_backend(const std::string& requested, const Capability& capability, const torch::Device& device);
BackendChoice select_backend(const std::string& requested, const LinearScheme& scheme, const torch::Device& device);

// The switch that forces the reference backend. Initialised from the environment variable
// PTQ_FORCE_REFERENCE ("1", "true", "yes", "on" force it) on first use; the setter overrides it.
void force_reference_backend(bool force);
bool reference_backend_forced();

// Registers every built-in backend this build has (the explicit list). Declared here, defined in the
// backends layer (link ptq_backend_reference, or the library holding the list); idempotent.
void register_builtin_backends();

inline constexpr const char* kReferenceBackendName = "reference";

}  // namespace ptq
