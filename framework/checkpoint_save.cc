// save_checkpoint: tensors, config.json and tokenizer files into one atomically written folder.
#include <torch/torch.h>

#include <fstream>
#include <map>
#include <optional>
#include <set>

#include "framework/atomic_folder.h"
#include "framework/checkpoint.h"
#include "framework/checkpoint_config.h"
#include "framework/checkpoint_layout.h"
#include "framework/checkpoint_save_detail.h"
#include "framework/error.h"
#include "framework/kv_checkpoint.h"
#include "framework/log.h"

namespace ptq {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace detail {

// What a tokenizer loader (ours or transformers') may read next to the weights.
const std::vector<std::string>& checkpoint_tokenizer_files() {
  static const std::vector<std::string> files = {
      "tokenizer.json",      "tokenizer_config.json",  "tokenizer.model", "special_tokens_map.json",
      "added_tokens.json",   "generation_config.json", "vocab.json",      "merges.txt",
      "vocab.txt",           "encoder.json",           "vocab.bpe",       "tokenizer.bin",
      "chat_template.jinja", "chat_template.json"};
  return files;
}

std::string checkpoint_dtype_name(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kBFloat16:
      return "bfloat16";
    case torch::kFloat16:
      return "float16";
    default:
      return "float32";
  }
}

// The 16-bit dtype config.json declares for the float weights (the source checkpoint's), if any.
std::optional<torch::ScalarType> declared_16bit_dtype(const json& config) {
  for (const char* key : {"torch_dtype", "dtype"}) {
    const auto it = config.find(key);
    if (it == config.end() || !it->is_string()) continue;
    if (*it == "bfloat16") return torch::kBFloat16;
    if (*it == "float16") return torch::kFloat16;
  }
  return std::nullopt;
}

// Float tensors go back to the source checkpoint's 16-bit dtype when that loses nothing (they were
// widened at load and not changed since), so a W4A16 checkpoint of a bf16 model does not store its
// embeddings twice as large as the original did; a tensor an algorithm changed (a smoothed norm) keeps
// its compute dtype. Either way save -> load is bit-exact.
torch::Tensor checkpoint_storage_form(const torch::Tensor& t, std::optional<torch::ScalarType> narrow, bool& kept_wide) {
  if (!narrow || !t.is_floating_point() || t.scalar_type() == *narrow) return t;
  torch::Tensor narrowed = t.to(*narrow);
  if (torch::equal(narrowed.to(t.scalar_type()), t)) return narrowed;
  kept_wide = true;
  return t;
}

json checkpoint_config_json(const CausalLM& net, const std::vector<QuantizedLayerEntry>& quantized,
                            const std::vector<std::string>& float_linears, bool skipped_tied, bool kept_wide) {
  json config = net.hf_config();
  // A network loaded from a quantized folder and made float again must lose its old block.
  config.erase("quantization_config");
  if (net.quantization)
    config["quantization_config"] =
        quantization_config_json(quantized, float_linears, *net.quantization);
  // A tie the file does not keep (the head was quantized, so it has its own tensors) must not be
  // re-created by loaders.
  const auto tie = config.find("tie_word_embeddings");
  if (tie != config.end() && tie->is_boolean() && tie->get<bool>() && !skipped_tied) *tie = false;
  // The declared dtype stays the source's when every float tensor went back to it (storage_form),
  // else it is the compute dtype the wider tensors are stored in.
  if (kept_wide || !declared_16bit_dtype(config))
    for (const char* key : {"torch_dtype", "dtype"})
      if (config.contains(key)) config[key] = checkpoint_dtype_name(net.compute_dtype());
  return config;
}

void write_checkpoint_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  PTQ_CHECK(out.good(), "{}: write failed", path.string());
}

void copy_checkpoint_tokenizer_files(const CausalLM& net, const fs::path& target, const fs::path& staging) {
  if (net.source_dir.empty()) {
    log_warning(
        "{}: the network was not loaded from a folder, so no tokenizer files are written; copy "
        "them "
        "into the checkpoint to use it with ptq eval/generate",
        target.string());
    return;
  }
  int copied = 0;
  for (const auto& name : checkpoint_tokenizer_files()) {
    const fs::path source = net.source_dir / name;
    if (!fs::is_regular_file(source)) continue;
    fs::copy_file(source, staging / name);
    ++copied;
  }
  if (copied == 0)
    log_warning("{}: no tokenizer files found in {}; the checkpoint has none", target.string(),
                net.source_dir.string());
}

}  // namespace detail

namespace {

std::function<void(const std::string&)>& save_hook() {
  static std::function<void(const std::string&)> hook;
  return hook;
}

void run_hook(const char* stage) {
  if (save_hook()) save_hook()(stage);
}

// The quantized linears (keyed by the name their float weight would have) and the float ones.
struct LinearPlan {
  std::map<std::string, std::pair<std::string, const QuantizedLinearParams*>> quantized_by_weight;
  std::vector<QuantizedLayerEntry> quantized;
  std::vector<std::string> float_linears;
};

LinearPlan plan_linears(const CausalLM& net) {
  LinearPlan plan;
  for (const auto& [name, linear] : named_linears(net)) {
    if (linear->quantized) {
      plan.quantized_by_weight[name + ".weight"] = {name, linear->quantized.get()};
      plan.quantized.push_back({name, linear->quantized->scheme()});
    } else {
      plan.float_linears.push_back(name);
    }
  }
  return plan;
}

// Adds every tensor; returns whether a parameter was left out because it shares storage with one
// written before it (a tied lm_head: safetensors files hold no shared tensors, and loaders re-tie
// from config.json).
bool write_tensors(const CausalLM& net, const LinearPlan& plan, const fs::path& dir,
                   SafetensorsShardWriter& writer, bool& kept_wide) {
  const std::optional<torch::ScalarType> narrow = detail::declared_16bit_dtype(net.hf_config());
  std::set<const void*> written;
  bool skipped_tied = false;
  for (const auto& item : net.named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    const torch::Tensor& tensor = item.value();
    auto q = plan.quantized_by_weight.find(name);
    if (q != plan.quantized_by_weight.end()) {
      const auto& [layer, params] = q->second;
      try {
        for (const StoredTensor& stored : compressed_tensors_layout(*params))
          writer.add(layer + "." + stored.suffix, stored.encode());
      } catch (const Error& e) {
        fail("{}: layer \"{}\": {}", dir.string(), layer, e.what());
      }
      continue;
    }
    if (tensor.numel() > 0 && !written.insert(tensor.data_ptr()).second) {
      skipped_tied = true;
      continue;
    }
    writer.add(name, detail::checkpoint_storage_form(tensor, narrow, kept_wide));
  }
  for (const auto& item : net.named_buffers(/*recurse=*/true)) writer.add(item.key(), item.value());
  for (const auto& [name, scale] : kv_scale_tensors(net)) writer.add(name, scale);  // static int8 KV cache
  writer.finish();
  return skipped_tied;
}

}  // namespace


namespace detail {
void set_save_checkpoint_hook(std::function<void(const std::string& stage)> hook) {
  save_hook() = std::move(hook);
}
}  // namespace detail

void save_checkpoint(const CausalLM& net, const fs::path& dir,
                     const SaveCheckpointOptions& options) {
  torch::NoGradGuard no_grad;
  const LinearPlan plan = plan_linears(net);
  PTQ_CHECK(plan.quantized.empty() || net.quantization,
            "{}: {} linear layers are quantized but the network records no quantization config "
            "(CausalLM::quantization, set by Algorithm::apply)",
            dir.string(), plan.quantized.size());
  uint64_t bytes = 0;
  size_t tensors = 0;
  write_folder_atomically(dir, [&](const fs::path& staging) {
    SafetensorsShardWriter writer(staging, options.max_shard_bytes);
    bool kept_wide = false;
    const bool skipped_tied = write_tensors(net, plan, dir, writer, kept_wide);
    bytes = writer.total_bytes();
    tensors = writer.num_tensors();
    run_hook("tensors written");
    detail::write_checkpoint_text(
        staging / "config.json",
        detail::checkpoint_config_json(net, plan.quantized, plan.float_linears, skipped_tied, kept_wide).dump(2) +
            "\n");
    detail::copy_checkpoint_tokenizer_files(net, dir, staging);
    run_hook("complete");
  });
  log_info("saved {} ({} tensors, {:.1f} MiB; {} of {} linear layers quantized)", dir.string(),
           tensors, bytes / 1048576.0, plan.quantized.size(),
           plan.quantized.size() + plan.float_linears.size());
}

}  // namespace ptq
