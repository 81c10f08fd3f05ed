// The backend registry (names -> Backend), the selection policy, the force-reference switch, and the
// small value types of framework/backend.h. The built-in list itself (register_builtin_backends) is
// defined in the backends layer; see the comment at the top of backend.h for why.
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <mutex>

#include "framework/backend.h"
#include "framework/error.h"
#include "framework/log.h"
#include "framework/torch_format.h"

namespace ptq {
namespace {

std::mutex g_mutex;
std::vector<std::shared_ptr<Backend>>& backend_list() {
  static std::vector<std::shared_ptr<Backend>> backends;
  return backends;
}

// -1: not yet read from the environment; 0/1: the switch.
std::atomic<int> g_force{-1};

bool env_truthy(const char* value) {
  if (value == nullptr) return false;
  std::string v(value);
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  return v == "1" || v == "true" || v == "yes" || v == "on";
}

std::shared_ptr<Backend> find_locked(const std::string& name) {
  for (const auto& b : backend_list()) {
    if (b->name() == name) return b;
  }
  return nullptr;
}

std::string names_locked() {
  std::string names;
  for (const auto& b : backend_list()) names += (names.empty() ? "" : ", ") + b->name();
  return names.empty() ? "none" : names;
}

[[noreturn]] void fail_unknown(const std::string& name, const std::string& context = "") {
  std::string names;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    names = names_locked();
  }
  fail("backend '{}'{} is not registered (registered: {}); programs call ptq::register_builtin_backends() at "
       "startup, plugins ptq::register_backend()",
       name, context.empty() ? "" : " (" + context + ")", names);
}

std::shared_ptr<Backend> reference_or_fail(const char* why) {
  auto ref = find_backend(kReferenceBackendName);
  if (!ref) fail_unknown(kReferenceBackendName, why);
  return ref;
}

}  // namespace

std::string to_string(ActQuant act) {
  switch (act) {
    case ActQuant::kNone: return "none";
    case ActQuant::kInt8PerTensorStatic: return "int8-static";
    case ActQuant::kInt8PerTokenDynamic: return "int8-dynamic";
  }
  return "invalid";
}

std::string LinearScheme::name() const {
  if (weight_bits == 0 && act == ActQuant::kNone) return "float";
  std::string s = fmt::format("w{}a{}", weight_bits == 0 ? 16 : weight_bits, act == ActQuant::kNone ? 16 : 8);
  if (weight_bits > 0) {
    if (group_size > 0) s += fmt::format("-g{}", group_size);
    if (group_size == kPerTensor) s += "-per-tensor";
    if (!weight_symmetric) s += "-asym";
  }
  if (act == ActQuant::kInt8PerTensorStatic) s += "-static";
  if (act == ActQuant::kInt8PerTokenDynamic) s += "-dynamic";
  if (act != ActQuant::kNone && !act_symmetric) s += "-asymact";
  return s;
}

LinearScheme QuantizedLinearParams::scheme() const {
  LinearScheme s;
  s.weight_bits = weight.bits;
  s.group_size = weight.group_size;
  s.weight_symmetric = weight.symmetric;
  s.act = act;
  s.act_symmetric = act_symmetric;
  return s;
}

void QuantizedLinearParams::validate() const {
  weight.validate();
  if (bias.defined()) {
    PTQ_CHECK(bias.dim() == 1 && bias.size(0) == weight.out_features() && torch::isFloatingType(bias.scalar_type()),
              "quantized linear: bias is {} {}, expected a float [{}]", bias.scalar_type(), bias.sizes(),
              weight.out_features());
  }
  if (act == ActQuant::kInt8PerTensorStatic) {
    PTQ_CHECK(input_scale.defined() && input_scale.numel() == 1,
              "quantized linear: static int8 activations need input_scale with one value, got {}",
              input_scale.defined() ? fmt::format("shape {}", input_scale.sizes()) : "none");
    PTQ_CHECK(act_symmetric != input_zero_point.defined(),
              "quantized linear: input_zero_point must be given exactly when activations are asymmetric "
              "(act_symmetric = {}, input_zero_point {})",
              act_symmetric, input_zero_point.defined() ? "given" : "missing");
    if (input_zero_point.defined()) {
      PTQ_CHECK(input_zero_point.numel() == 1, "quantized linear: input_zero_point has shape {}, expected one value",
                input_zero_point.sizes());
    }
  }
}

Support Backend::supports_kv(const KVQuantParams& params) const {
  return Support::no(fmt::format("KV-cache quantization ({}) not supported on {}", params.to_string(), name()));
}

std::shared_ptr<KVCacheFormat> Backend::make_kv_cache_format(const KVQuantParams& params) const {
  fail("KV-cache quantization ({}) not supported on {}", params.to_string(), name());
}

std::shared_ptr<LinearKernel> Backend::make_fake_quant_kernel(const FakeQuantLinearParams& params) const {
  fail("fake-quant kernels not supported on {} (use the reference backend)", name());
}

// ---- registry ---------------------------------------------------------------------------------------

void register_backend(std::shared_ptr<Backend> backend) {
  PTQ_CHECK(backend != nullptr, "register_backend: backend is null");
  const std::string name = backend->name();
  PTQ_CHECK(!name.empty() && name != "auto", "register_backend: '{}' is not a valid backend name", name);
  std::lock_guard<std::mutex> lock(g_mutex);
  auto& list = backend_list();
  for (auto& existing : list) {
    if (existing->name() == name) {
      existing = std::move(backend);
      return;
    }
  }
  list.push_back(std::move(backend));
}

bool unregister_backend(const std::string& name) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto& list = backend_list();
  auto it = std::find_if(list.begin(), list.end(), [&](const auto& b) { return b->name() == name; });
  if (it == list.end()) return false;
  list.erase(it);
  return true;
}

std::shared_ptr<Backend> find_backend(const std::string& name) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return find_locked(name);
}

std::vector<std::string> available_backends() {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::vector<std::string> names;
  for (const auto& b : backend_list()) names.push_back(b->name());
  return names;
}

std::shared_ptr<Backend> backend(const std::string& name) {
  if (reference_backend_forced()) return reference_or_fail("forced by PTQ_FORCE_REFERENCE");
  if (name == "auto") {
    {
      std::lock_guard<std::mutex> lock(g_mutex);
      for (const auto& b : backend_list()) {
        if (b->name() != kReferenceBackendName) return b;
      }
    }
    return reference_or_fail("'auto' found no backend");
  }
  auto b = find_backend(name);
  if (!b) fail_unknown(name);
  return b;
}

BackendChoice select_backend(const std::string& requested, const Capability& capability, const torch::Device& device) {
  const std::string& what = capability.name;
  auto ask = [&](const std::shared_ptr<Backend>& b) -> Support {
    Support s = b->supports_device(device);
    if (!s) return s;
    return capability.supported_by(*b);
  };
  auto fall_back = [&](std::string reason) -> BackendChoice {
    auto ref = reference_or_fail("the fallback of every backend");
    Support s = ask(ref);
    PTQ_CHECK(s.ok, "no backend can run {} on {}: {}{}", what, device.str(), s.reason,
              reason.empty() ? "" : " (" + reason + ")");
    return {ref, std::move(reason)};
  };

  if (reference_backend_forced()) {
    return fall_back(requested == kReferenceBackendName ? "" : "reference backend forced (PTQ_FORCE_REFERENCE)");
  }
  if (requested != "auto") {
    auto b = find_backend(requested);
    if (!b) fail_unknown(requested);
    Support s = ask(b);
    if (s) return {b, ""};
    if (requested == kReferenceBackendName) fail("reference backend cannot run {} on {}: {}", what, device.str(),
                                                 s.reason);
    return fall_back(fmt::format("{} declined {} on {}: {}", requested, what, device.str(), s.reason));
  }
  std::vector<std::shared_ptr<Backend>> candidates;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    for (const auto& b : backend_list()) {
      if (b->name() != kReferenceBackendName) candidates.push_back(b);
    }
  }
  std::string declines;
  for (const auto& b : candidates) {
    Support s = ask(b);
    if (s) return {b, ""};
    declines += fmt::format("{}{} declined {} on {}: {}", declines.empty() ? "" : "; ", b->name(), what,
                            device.str(), s.reason);
  }
  // With no optimized backend registered, the reference is simply the choice, not a fallback.
  return fall_back(declines);
}

BackendChoice select_backend(const std::string& requested, const LinearScheme& scheme, const torch::Device& device) {
  return select_backend(requested, {scheme.name(), [&](const Backend& b) { return b.supports(scheme); }}, device);
}

void force_reference_backend(bool force) { g_force = force ? 1 : 0; }

bool reference_backend_forced() {
  int state = g_force.load();
  if (state < 0) {
    int from_env = env_truthy(std::getenv("PTQ_FORCE_REFERENCE")) ? 1 : 0;
    int expected = -1;
    g_force.compare_exchange_strong(expected, from_env);
    state = g_force.load();
  }
  return state == 1;
}

}  // namespace ptq
