#include "framework/kv_checkpoint.h"

#include <torch/torch.h>

#include <mutex>
#include <set>

#include "framework/backend.h"
#include "framework/error.h"
#include "framework/log.h"
#include "framework/torch_format.h"

namespace ptq {
namespace {

// "<attn>.kv_cache" -> "<attn>": where vLLM looks for the per-tensor k_scale / v_scale.
std::string attention_prefix(const std::string& slot_path) {
  const size_t dot = slot_path.rfind('.');
  return dot == std::string::npos ? slot_path : slot_path.substr(0, dot);
}

const Int8KVCacheFormat* static_int8_format(const KVCacheSlotImpl& slot) {
  const auto* format = dynamic_cast<const Int8KVCacheFormat*>(slot.format().get());
  return format && format->params().mode == KVQuantMode::kStaticPerChannel ? format : nullptr;
}

void log_kv_fallback_once(const KVQuantParams& params, const std::string& declines) {
  if (declines.empty()) return;
  // Once per distinct reason, not once per layer.
  static std::mutex mutex;
  static std::set<std::string> logged;
  std::lock_guard<std::mutex> lock(mutex);
  if (logged.insert(declines).second)
    log_warning("int8 KV cache ({}): using the reference backend's cache ({})", params.to_string(), declines);
}

// Which backend's cache a slot gets depends on where the cache is created (a model may be calibrated on one
// device and served on another, or moved after loading), so select_backend makes the choice per device in
// create(): the requested backend, or for "auto" the first non-reference one, that runs this scheme on that
// device; else the reference cache with the reasons logged. Still an Int8KVCacheFormat: checkpoints read its
// params.
class PerDeviceInt8KVCacheFormat : public Int8KVCacheFormat {
 public:
  PerDeviceInt8KVCacheFormat(std::string requested, KVQuantParams params)
      : Int8KVCacheFormat(std::move(params)), requested_(std::move(requested)) {}

  std::unique_ptr<KVCache> create(const KVCacheShape& shape) const override {
    return format_for(shape.device).create(shape);
  }

 private:
  const KVCacheFormat& format_for(const torch::Device& device) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto& format = by_device_type_[device.type()];
    if (format) return *format;
    const BackendChoice choice = select_backend(
        requested_, {params().to_string(), [this](const Backend& b) { return b.supports_kv(params()); }}, device);
    log_kv_fallback_once(params(), choice.fallback_reason);
    return *(format = choice.backend->make_kv_cache_format(params()));
  }

  std::string requested_;
  mutable std::mutex mutex_;
  mutable std::map<c10::DeviceType, std::shared_ptr<KVCacheFormat>> by_device_type_;
};

}  // namespace

std::vector<std::shared_ptr<KVCacheSlotImpl>> collect_kv_cache_slots(torch::nn::Module& root) {
  std::vector<std::shared_ptr<KVCacheSlotImpl>> slots;
  for (auto& module : root.modules(/*include_self=*/true))
    if (auto slot = std::dynamic_pointer_cast<KVCacheSlotImpl>(module)) slots.push_back(slot);
  return slots;
}

std::shared_ptr<KVCacheFormat> make_int8_kv_cache_format(const std::string& requested, const KVQuantParams& params) {
  // Forcing the reference (PTQ_FORCE_REFERENCE) applies when the format is made, as for linears at convert.
  if (requested == kReferenceBackendName || reference_backend_forced())
    return backend(kReferenceBackendName)->make_kv_cache_format(params);
  if (requested != "auto") backend(requested);  // an unknown name fails here, listing the registered ones
  return std::make_shared<PerDeviceInt8KVCacheFormat>(requested, params);
}

std::map<std::string, torch::Tensor> kv_scale_tensors(const CausalLM& net) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : net.named_modules("", /*include_self=*/false)) {
    auto slot = std::dynamic_pointer_cast<KVCacheSlotImpl>(item.value());
    if (!slot) continue;
    const Int8KVCacheFormat* format = static_int8_format(*slot);
    if (!format) continue;
    const std::string& name = item.key();
    const torch::Tensor k = format->params().k_scale.to(torch::kCPU, torch::kFloat32).contiguous();
    const torch::Tensor v = format->params().v_scale.to(torch::kCPU, torch::kFloat32).contiguous();
    out[name + ".k_scale"] = k;
    out[name + ".v_scale"] = v;
    out[attention_prefix(name) + ".k_scale"] = k.max().reshape({1});
    out[attention_prefix(name) + ".v_scale"] = v.max().reshape({1});
  }
  return out;
}

nlohmann::json kv_cache_scheme_json(const PTQConfig& config) {
  if (config.kvcache_quant_dtype == QuantDtype::kNone) return nullptr;
  const bool dynamic = config.kvcache_quant_granularity == QuantGranularity::kPerToken;
  return {{"num_bits", 8},          {"type", "int"},   {"symmetric", true},
          {"strategy", dynamic ? "token" : "channel"}, {"dynamic", dynamic},
          {"group_size", nullptr},  {"observer", to_string(config.act_observer)}};
}

void load_kv_cache_quantization(const TensorStore& store, const PTQConfig& config, CausalLM& net,
                                std::set<std::string>& used) {
  if (config.kvcache_quant_dtype == QuantDtype::kNone) return;
  const bool dynamic = config.kvcache_quant_granularity == QuantGranularity::kPerToken;
  const std::string requested = to_string(config.backend);
  for (const auto& item : net.named_modules("", /*include_self=*/false)) {
    auto slot = std::dynamic_pointer_cast<KVCacheSlotImpl>(item.value());
    if (!slot) continue;
    if (dynamic) {
      slot->set_format(make_int8_kv_cache_format(requested, KVQuantParams::dynamic_per_token()));
      continue;
    }
    auto read = [&](const std::string& tensor) {
      PTQ_CHECK(store.has(tensor), "{}: tensor \"{}\" is missing; the checkpoint's KV cache is int8 with static "
                "per-channel scales", store.path().string(), tensor);
      const torch::Tensor t = store.tensor(tensor);
      PTQ_CHECK(t.dim() == 2 && t.scalar_type() == torch::kFloat32,
                "{}: tensor \"{}\" must be float32 [kv_heads, head_dim], got {} {}", store.path().string(), tensor,
                t.scalar_type(), t.sizes());
      used.insert(tensor);
      return t;
    };
    const std::string& name = item.key();
    const torch::Tensor k = read(name + ".k_scale"), v = read(name + ".v_scale");
    // The per-tensor copies are for other tools; ptq uses the per-channel scales.
    for (const char* which : {".k_scale", ".v_scale"})
      if (store.has(attention_prefix(name) + which)) used.insert(attention_prefix(name) + which);
    const torch::Device device = net.parameters().empty() ? torch::Device(torch::kCPU) : net.parameters().front().device();
    slot->set_format(make_int8_kv_cache_format(
        requested, KVQuantParams::static_per_channel(k.to(device), v.to(device))));
  }
}

}  // namespace ptq
