// load_checkpoint / read_checkpoint_config: fill a network's (DEPLOY) structure from a checkpoint
// folder, checking every tensor against it.
#include <torch/torch.h>

#include <map>
#include <set>

#include "framework/checkpoint.h"
#include "framework/checkpoint_config.h"
#include "framework/checkpoint_layout.h"
#include "framework/deferred_weights.h"
#include "framework/error.h"
#include "framework/kv_checkpoint.h"
#include "framework/log.h"
#include "framework/tensor_checksum.h"
#include "framework/torch_format.h"

namespace ptq {
namespace fs = std::filesystem;

namespace {

std::string file_of(const TensorStore& store, const std::string& tensor) {
  return store.file_of(tensor).path().string();
}

std::string suffix_list(const std::vector<StoredTensor>& layout) {
  std::string s;
  for (const auto& t : layout) s += (s.empty() ? "" : ", ") + t.suffix;
  return s;
}

void load_quantized_linear(const TensorStore& store, const std::string& name, LinearImpl& linear,
                           torch::ScalarType compute_dtype, std::set<std::string>& used) {
  const QuantizedLinearParams& params = *linear.quantized;
  const LinearScheme scheme = params.scheme();
  const std::vector<StoredTensor> layout = compressed_tensors_layout(params);
  const std::string form = fmt::format("{} ({}: {})", scheme.name(),
                                       to_string(compressed_format(scheme)), suffix_list(layout));
  for (const StoredTensor& expected : layout) {
    const std::string tensor = name + "." + expected.suffix;
    PTQ_CHECK(store.has(tensor), "{}: tensor \"{}\" is missing; the network's layer \"{}\" is {}",
              store.path().string(), tensor, name, form);
    const SafetensorsTensorInfo& info = store.info(tensor);
    PTQ_CHECK(info.dtype == expected.dtype,
              "{}: tensor \"{}\" has dtype {}, expected {} (layer \"{}\" is {})",
              file_of(store, tensor), tensor, info.dtype_name,
              torch_dtype_to_safetensors(expected.dtype), name, form);
    PTQ_CHECK(info.shape == expected.shape,
              "{}: tensor \"{}\" has shape {}, expected {} (layer \"{}\" is {})",
              file_of(store, tensor), tensor, c10::IntArrayRef(info.shape),
              c10::IntArrayRef(expected.shape), name, form);
    try {
      expected.decode(store.tensor(tensor));
    } catch (const Error& e) {
      fail("{}: tensor \"{}\": {}", file_of(store, tensor), tensor, e.what());
    }
    used.insert(tensor);
  }
  // A stored-form tensor outside the layout (a zero point for a symmetric layer, a float weight
  // next to a packed one) means the checkpoint stores the layer differently from the network's
  // structure.
  std::vector<std::string> suffixes = quantized_tensor_suffixes();
  suffixes.push_back("weight");
  for (const auto& suffix : suffixes) {
    const std::string tensor = name + "." + suffix;
    PTQ_CHECK(!store.has(tensor) || used.count(tensor),
              "{}: tensor \"{}\" is not part of layer \"{}\", which the network holds as {}; the "
              "checkpoint stores "
              "this layer differently",
              file_of(store, tensor), tensor, name, form);
  }
  try {
    params.validate();
  } catch (const Error& e) {
    fail("{}: layer \"{}\" after loading: {}", store.path().string(), name, e.what());
  }
  // A converted layer's kernel was made from the empty structure (and may hold a repacked copy):
  // rebuild it.
  if (!linear.backend_name.empty())
    linear.set_kernel(backend(linear.backend_name)->make_linear_kernel(params, compute_dtype));
}

// Copies the stored float parameters (or buffers) into the network. A tensor absent from the
// checkpoint is fine only when it shares storage with one that was loaded (tied embeddings).
//
// Ties are told by the storage the tensors share before loading: a placeholder (a network built
// without weights) gets new storage when it is filled, which would leave its tied partner on the old
// placeholder, so the partner is given the filled tensor's storage here.
void load_plain_tensors(const TensorStore& store,
                        const torch::OrderedDict<std::string, torch::Tensor>& tensors,
                        const std::set<std::string>& skip, const char* kind,
                        std::set<std::string>& used) {
  std::map<const void*, torch::Tensor> loaded;  // storage before loading -> the tensor filled from it
  std::vector<std::string> absent;
  for (const auto& item : tensors) {
    const std::string& name = item.key();
    const torch::Tensor& target = item.value();
    if (skip.count(name)) continue;
    if (!store.has(name)) {
      absent.push_back(name);
      continue;
    }
    const SafetensorsTensorInfo& info = store.info(name);
    PTQ_CHECK(info.shape == target.sizes().vec(),
              "{}: tensor \"{}\" has shape {}, but the network's {} is {}", file_of(store, name),
              name, c10::IntArrayRef(info.shape), kind, target.sizes());
    const bool dtype_ok = target.is_floating_point() ? info.dtype != torch::ScalarType::Undefined &&
                                                           torch::isFloatingType(info.dtype)
                                                     : info.dtype == target.scalar_type();
    PTQ_CHECK(dtype_ok, "{}: tensor \"{}\" has dtype {}, expected {}", file_of(store, name), name,
              info.dtype_name,
              target.is_floating_point() ? std::string("a floating-point dtype")
                                         : torch_dtype_to_safetensors(target.scalar_type()));
    const void* storage_before = target.numel() > 0 ? target.data_ptr() : nullptr;
    fill_tensor(target, store.tensor(name));  // a network built without weights allocates each one here
    if (storage_before != nullptr) loaded.emplace(storage_before, target);
    used.insert(name);
  }
  for (const auto& name : absent) {
    const torch::Tensor& target = tensors[name];
    const auto partner = target.numel() > 0 ? loaded.find(target.data_ptr()) : loaded.end();
    PTQ_CHECK(partner != loaded.end(), "{}: tensor \"{}\" ({} {}) is missing", store.path().string(),
              name, kind, target.sizes());
    if (partner->second.data_ptr() != target.data_ptr()) {
      torch::NoGradGuard no_grad;
      target.set_data(partner->second);
    }
  }
}

void check_unused(const TensorStore& store, const std::set<std::string>& used) {
  std::vector<std::string> unused;
  for (const auto& name : store.names()) {
    if (used.count(name)) continue;
    for (const auto& suffix : quantized_tensor_suffixes()) {
      const std::string tail = "." + suffix;
      PTQ_CHECK(name.size() <= tail.size() ||
                    name.compare(name.size() - tail.size(), tail.size(), tail) != 0,
                "{}: tensor \"{}\" belongs to a quantized layer, but the network keeps that layer "
                "in float",
                file_of(store, name), name);
    }
    unused.push_back(name);
  }
  if (!unused.empty())
    log_warning("{}: {} tensors in the checkpoint are not used by the network, e.g. \"{}\"",
                store.path().string(), unused.size(), unused.front());
}

// The CRC-32 of every tensor against what the writer recorded (framework/tensor_checksum.h). A
// quantized checkpoint of format version >= 2 must have them in every file; older ones, and float
// folders written by other tools, load unverified with a warning.
void verify_checkpoint_bytes(const fs::path& dir, const TensorStore& store, bool quantized) {
  int version = 0;
  if (quantized) {
    const nlohmann::json config = read_json_file(dir / "config.json");
    version =
        config.at("quantization_config").at("ptq").at("format_version").get<int>();  // checked
  }
  const ChecksumReport report =
      verify_tensor_checksums(store, /*required=*/version >= kCheckpointChecksumVersion);
  if (report.files_unverified > 0)
    log_warning(
        "{}: {} of {} safetensors files carry no checksums (e.g. {}; written by ptq before format "
        "version {}, or by another tool): loaded without verifying their bytes",
        dir.string(), report.files_unverified, store.files().size(), report.first_unverified,
        kCheckpointChecksumVersion);
  log_debug("{}: {} tensors in {} files match their checksums", dir.string(),
            report.tensors_verified, report.files_verified);
}

}  // namespace

std::optional<PTQConfig> read_checkpoint_config(const fs::path& dir) {
  const fs::path file = dir / "config.json";
  const nlohmann::json config = read_json_file(file);
  const auto block = config.find("quantization_config");
  if (block == config.end() || block->is_null()) return std::nullopt;
  return ptq_config_from_block(*block, file.string());
}

void load_checkpoint(const fs::path& dir, CausalLM& net) {
  PTQ_CHECK(fs::is_directory(dir),
            "{}: not a folder (expected a checkpoint folder written by save_checkpoint)",
            dir.string());
  const std::string source = (dir / "config.json").string();
  const std::optional<PTQConfig> config = read_checkpoint_config(dir);
  PTQ_CHECK(
      !config || net.quantization,
      "{}: the checkpoint is quantized ({}), but the network has no quantized structure; build it "
      "with a "
      "DEPLOY apply of the checkpoint's config (read_checkpoint_config), or use load_quantized",
      source, config ? config->summary() : "");
  PTQ_CHECK(config || !net.quantization,
            "{}: the checkpoint is a float model, but the network is quantized ({}); load it into "
            "a float network",
            source, net.quantization ? net.quantization->summary() : "");
  if (config) check_same_structure(*config, *net.quantization, source);

  const TensorStore store = TensorStore::open(dir);
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  // The float weights of quantized linears are released; their stored form replaces them.
  std::set<std::string> quantized_weights;
  for (const auto& [name, linear] : named_linears(net)) {
    if (!linear->quantized) continue;
    quantized_weights.insert(name + ".weight");
    load_quantized_linear(store, name, *linear, net.compute_dtype(), used);
  }
  load_plain_tensors(store, net.named_parameters(/*recurse=*/true), quantized_weights, "parameter",
                     used);
  load_plain_tensors(store, net.named_buffers(/*recurse=*/true), {}, "buffer", used);
  if (config) load_kv_cache_quantization(store, *config, net, used);
  check_unused(store, used);
  // Last, so that a checkpoint of the wrong structure is named by its shapes and dtypes first; a
  // failure here leaves the network half-filled, like any failed load.
  verify_checkpoint_bytes(dir, store, config.has_value());
}

}  // namespace ptq
