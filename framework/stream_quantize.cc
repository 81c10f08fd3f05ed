#include "framework/stream_quantize.h"

#include <fcntl.h>
#include <ptq/build_config.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <torch/torch.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "framework/atomic_folder.h"
#include "framework/calibration.h"
#include "framework/checkpoint_config.h"
#include "framework/checkpoint_layout.h"
#include "framework/checkpoint_save_detail.h"
#include "framework/deferred_weights.h"
#include "framework/error.h"
#include "framework/kv_checkpoint.h"
#include "framework/log.h"
#include "framework/non_finite_fallback.h"
#include "framework/process_memory.h"
#include "framework/tensor_checksum.h"

namespace ptq {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr int kProgressFormat = 1;
constexpr const char* kProgressFile = "progress.json";
constexpr const char* kPartKey = "ptq_part";  // a part file's "__metadata__": what it holds, in order

// ---- fingerprint -----------------------------------------------------------------------------------

// FNV-1a, 64 bits: not cryptographic; it tells runs apart, it does not resist forgery.
class Fingerprint {
 public:
  void add(const void* data, size_t size) {
    auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < size; ++i) hash_ = (hash_ ^ p[i]) * 1099511628211ull;
  }
  void add(const std::string& text) {
    add(text.data(), text.size());
    add("\0", 1);  // "ab" + "c" differs from "a" + "bc"
  }
  std::string hex() const { return fmt::format("{:016x}", hash_); }

 private:
  uint64_t hash_ = 1469598103934665603ull;
};

std::string run_fingerprint(const Algorithm& algo, const CausalLM& net, const TensorStore& store,
                            const torch::Tensor& tokens, const torch::Device& device, bool float_fallback) {
  Fingerprint f;
  f.add(fmt::format("ptq {} layer-streamed quantization, progress format {}", PTQ_VERSION_STRING, kProgressFormat));
  f.add(algo.name());
  f.add(algo.config().to_json().dump());
  f.add(net.hf_config().dump());
  f.add(c10::toString(net.compute_dtype()));
  f.add(device.str());
  if (!float_fallback) f.add("no float fallback");  // (only when off: earlier records stay resumable)
  // The weights: each file's name, size, modification time and header (hashing the bytes of a model
  // larger than memory would cost a full read per resume; a rewritten file changes its mtime).
  for (const auto& file : store.files()) {
    struct stat st {};
    PTQ_CHECK(::stat(file->path().c_str(), &st) == 0, "{}: cannot stat: {}", file->path().string(),
              std::strerror(errno));
    f.add(file->path().filename().string());
    f.add(fmt::format("{} {}.{:09d}", static_cast<int64_t>(st.st_size), static_cast<int64_t>(st.st_mtim.tv_sec),
                      static_cast<int64_t>(st.st_mtim.tv_nsec)));
    for (const auto& name : file->names()) {
      const SafetensorsTensorInfo& info = file->info(name);
      f.add(fmt::format("{} {} {} {} {}", name, info.dtype_name, fmt::join(info.shape, "x"), info.data_begin,
                        info.data_end));
    }
  }
  // The calibration: the sampled tokens stand for the file, the tokenizer, samples, seq_len and seed.
  if (tokens.defined()) {
    torch::Tensor t = tokens.to(torch::kCPU).contiguous();
    f.add(fmt::format("tokens {}", fmt::join(t.sizes(), "x")));
    f.add(t.data_ptr(), t.nbytes());
  } else {
    f.add("no calibration data");
  }
  return f.hex();
}

// ---- small file helpers ------------------------------------------------------------------------------

// Writes `text` to `path` all-or-nothing (write_file_atomically: temporary, fsync, rename, folder fsync).
void write_text_atomically(const fs::path& path, const std::string& text) {
  write_file_atomically(path, [&](const fs::path& temporary) {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    PTQ_CHECK(out.good(), "{}: write failed", temporary.string());
  });
}

json read_json_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  PTQ_CHECK(in, "{}: cannot open", path.string());
  std::stringstream text;
  text << in.rdbuf();
  try {
    return json::parse(text.str());
  } catch (const json::exception& e) {
    fail("{}: not valid JSON ({}); the progress record is damaged: run without --resume to start over", path.string(),
         e.what());
  }
}

std::string part_file_name(int64_t step) {
  if (step == kEmbeddingStep) return "embedding.safetensors";
  if (step == kHeadLayer) return "head.safetensors";
  return fmt::format("layer-{:05d}.safetensors", step);
}

std::string inputs_file_name(int64_t layer) { return fmt::format("inputs-{:05d}.safetensors", layer); }

json scheme_to_json(const LinearScheme& s) {
  return {{"weight_bits", s.weight_bits},
          {"group_size", s.group_size},
          {"weight_symmetric", s.weight_symmetric},
          {"act", static_cast<int>(s.act)},
          {"act_symmetric", s.act_symmetric}};
}

LinearScheme scheme_from_json(const json& j) {
  LinearScheme s;
  s.weight_bits = j.at("weight_bits").get<int>();
  s.group_size = j.at("group_size").get<int64_t>();
  s.weight_symmetric = j.at("weight_symmetric").get<bool>();
  s.act = static_cast<ActQuant>(j.at("act").get<int>());
  s.act_symmetric = j.at("act_symmetric").get<bool>();
  return s;
}

// Gives back the mapped pages wholly inside bytes [from, to) of tensor `name`
// (SafetensorsFile::release_pages for a part of a tensor).
void release_mapped_bytes(const TensorStore& store, const std::string& name, uint64_t from, uint64_t to) {
  const SafetensorsFile& file = store.file_of(name);
  const SafetensorsTensorInfo& info = file.info(name);
  to = std::min(to, info.nbytes());
  if (from >= to) return;
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(file.mapped_range().data + file.data_offset() + info.data_begin);
  const uintptr_t first = (begin + from + page - 1) / page * page;
  const uintptr_t last = (begin + to) / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

// ---- the network's parameters, step by step ----------------------------------------------------------

struct Param {
  std::string name;
  torch::Tensor handle;  // shares its TensorImpl with the module's parameter: set_data() loads it
};

// The parameters of each step, in named_parameters() order -- which must be: those before decoder
// layer 0 (the embedding step), layer 0's, ..., layer L-1's, the rest (the head step): save_checkpoint
// writes them in that order, and the parts must concatenate to the same sequence.
struct StepParams {
  std::map<int64_t, std::vector<Param>> by_step;
  std::map<std::string, torch::Tensor> by_name;
  std::map<int64_t, std::vector<std::string>> buffers;  // buffer names per step (decoder layers; the rest: head)
};

StepParams partition_parameters(CausalLM& net) {
  const int64_t layers = net.num_decoder_layers();
  std::map<const c10::TensorImpl*, int64_t> layer_of;
  std::map<const c10::TensorImpl*, int64_t> buffer_layer_of;
  for (int64_t i = 0; i < layers; ++i) {
    for (const auto& p : net.decoder_layer(i)->parameters(/*recurse=*/true)) layer_of[p.unsafeGetTensorImpl()] = i;
    for (const auto& b : net.decoder_layer(i)->buffers(/*recurse=*/true)) buffer_layer_of[b.unsafeGetTensorImpl()] = i;
  }
  StepParams steps;
  int64_t current = kEmbeddingStep;
  for (const auto& item : net.named_parameters(/*recurse=*/true)) {
    const auto it = layer_of.find(item.value().unsafeGetTensorImpl());
    int64_t step;
    if (it != layer_of.end()) {
      step = it->second;
    } else {
      step = current == kEmbeddingStep ? kEmbeddingStep : kHeadLayer;
    }
    // Steps may only move forward: embedding, 0, 1, ..., L-1, head.
    auto rank = [layers](int64_t s) { return s == kEmbeddingStep ? -1 : s == kHeadLayer ? layers : s; };
    PTQ_CHECK(rank(step) >= rank(current),
              "layer-streamed quantization: parameter \"{}\" comes after those of a later layer in the network's "
              "order; this network cannot be processed layer by layer",
              item.key());
    current = step;
    steps.by_step[step].push_back({item.key(), item.value()});
    steps.by_name[item.key()] = item.value();
  }
  for (const auto& item : net.named_buffers(/*recurse=*/true)) {
    const auto it = buffer_layer_of.find(item.value().unsafeGetTensorImpl());
    steps.buffers[it != buffer_layer_of.end() ? it->second : kHeadLayer].push_back(item.key());
  }
  return steps;
}

// ---- the run -------------------------------------------------------------------------------------------

class StreamedRun {
 public:
  StreamedRun(Algorithm& algo, CausalLM& net, NetworkHelper& helper, const StreamQuantizeOptions& options)
      : algo_(algo), net_(net), helper_(helper), options_(options) {}

  StreamQuantizeResult run();

 private:
  fs::path part_path(int64_t step) const { return partial_ / "parts" / part_file_name(step); }
  // The name in the checkpoint that a parameter's weights come from (a tied lm_head: the embedding's).
  std::string source_of(const std::string& name) const;
  void load_step(int64_t step);
  void release_step(int64_t step);
  void write_step(int64_t step, const torch::Tensor& next_inputs);
  void record_progress(int64_t next_layer, bool head_done);
  void restore(const json& progress);
  StreamQuantizeResult assemble();

  Algorithm& algo_;
  CausalLM& net_;
  NetworkHelper& helper_;
  const StreamQuantizeOptions& options_;
  fs::path partial_;
  std::optional<TensorStore> store_;
  StepParams params_;
  torch::ScalarType dtype_ = torch::kFloat32;
  torch::Device device_ = torch::kCPU;
  std::optional<torch::ScalarType> narrow_;
  std::string fingerprint_;

  // What the checkpoint needs from the steps done so far (also recorded, for a resumed run).
  std::vector<QuantizedLayerEntry> quantized_;
  std::vector<std::string> float_linears_;
  bool kept_wide_ = false;
  bool skipped_tied_ = false;
  std::map<std::string, std::string> float_crc_;  // float parameters written: name -> CRC-32 as stored
  std::set<std::string> kv_written_;
  std::vector<std::string> loaded_extra_;  // tie partners loaded for the current step
};

std::string StreamedRun::source_of(const std::string& name) const {
  if (store_->has(name)) return name;
  const json config = net_.hf_config();
  const auto tie = config.find("tie_word_embeddings");
  const bool tied = tie != config.end() && tie->is_boolean() && tie->get<bool>();
  if (tied && name == "lm_head.weight" && store_->has("model.embed_tokens.weight")) return "model.embed_tokens.weight";
  fail("{}: tensor \"{}\" is missing (the config describes a {} with {} layers)", store_->path().string(), name,
       net_.architecture(), net_.num_decoder_layers());
}

void StreamedRun::load_step(int64_t step) {
  torch::NoGradGuard no_grad;
  loaded_extra_.clear();
  auto load = [&](const std::string& name, torch::Tensor& handle) {
    const std::string source = source_of(name);
    torch::Tensor stored = store_->tensor(source);
    PTQ_CHECK(stored.sizes() == handle.sizes(), "{}: tensor \"{}\" has shape {}, but config.json implies {}",
              store_->path().string(), source, fmt::join(stored.sizes(), "x"), fmt::join(handle.sizes(), "x"));
    PTQ_CHECK(stored.is_floating_point(), "{}: tensor \"{}\" has dtype {}, expected a floating-point dtype",
              store_->path().string(), source, c10::toString(stored.scalar_type()));
    // The same conversions as load_llama -- into float32, then the compute dtype, then the device --
    // into memory of our own (never a view of the mapping), a block of rows at a time, giving each
    // block's mapped pages back as soon as it is copied: the mapped file never adds more than one
    // block to the resident memory.
    torch::Tensor value = torch::empty(stored.sizes(), torch::TensorOptions().dtype(dtype_));
    const int64_t rows = stored.dim() == 0 ? 1 : stored.size(0);
    const uint64_t row_bytes = rows > 0 ? stored.nbytes() / static_cast<uint64_t>(rows) : 0;
    const int64_t block = std::max<int64_t>(1, static_cast<int64_t>((uint64_t{32} << 20) / std::max<uint64_t>(row_bytes, 1)));
    for (int64_t r = 0; r < rows; r += block) {
      const int64_t n = std::min(block, rows - r);
      torch::Tensor src = stored.dim() == 0 ? stored : stored.narrow(0, r, n);
      torch::Tensor converted = src.to(torch::kFloat32);
      if (dtype_ != torch::kFloat32) converted = converted.to(dtype_);
      (stored.dim() == 0 ? value : value.narrow(0, r, n)).copy_(converted);
      release_mapped_bytes(*store_, source, r * row_bytes, (r + n) * row_bytes);
    }
    if (device_ != torch::Device(torch::kCPU)) value = value.to(device_);
    stored = torch::Tensor();
    store_->release_pages(source);
    handle.set_data(value);
    if (source != name) {
      // A tied parameter: the network's tie (Linear::weight is the embedding's tensor) needs the
      // partner loaded too, sharing the storage, as load_llama leaves it.
      auto& partner = params_.by_name.at(source);
      if (is_deferred(partner)) {
        partner.set_data(value);
        loaded_extra_.push_back(source);
      }
    }
  };
  for (auto& param : params_.by_step[step]) load(param.name, param.handle);
}

void StreamedRun::release_step(int64_t step) {
  torch::NoGradGuard no_grad;
  auto release = [&](torch::Tensor& handle) {
    if (!is_deferred(handle)) handle.set_data(deferred_placeholder(handle.sizes(), dtype_));
  };
  for (auto& param : params_.by_step[step]) release(param.handle);
  for (const auto& name : loaded_extra_) release(params_.by_name.at(name));
  loaded_extra_.clear();
  // The quantized forms, kernels and observers of the step's linears go too.
  std::set<std::string> names;
  for (const auto& param : params_.by_step[step]) names.insert(param.name);
  for (const auto& [name, linear] : named_linears(net_)) {
    if (!names.count(name + ".weight")) continue;
    linear->quantized.reset();
    linear->set_kernel(nullptr);
    linear->clear_observers();
    // A stage may have replaced the weight tensor (Linear::replace_weight): that tensor is the
    // registered parameter's, already released above, unless it was untied from it.
    if (linear->weight.defined() && !is_deferred(linear->weight) && linear->weight.numel() > 1)
      linear->weight = params_.by_name.at(name + ".weight");
  }
}

void StreamedRun::write_step(int64_t step, const torch::Tensor& next_inputs) {
  torch::NoGradGuard no_grad;
  NamedTensors tensors;
  json parameters = json::array(), buffers = json::array(), kv_scales = json::array();
  auto add = [&](const std::string& name, const torch::Tensor& t) {
    tensors.emplace_back(name, t.detach().to(torch::kCPU).contiguous());
  };

  // The step's linears: quantized ones are written in their compressed-tensors layout instead of
  // their float weight (save_checkpoint's rule).
  std::map<std::string, std::pair<std::string, std::shared_ptr<LinearImpl>>> quantized_by_weight;
  std::set<std::string> step_names;
  for (const auto& param : params_.by_step[step]) step_names.insert(param.name);
  for (const auto& [name, linear] : named_linears(net_)) {
    if (!step_names.count(name + ".weight")) continue;
    if (linear->quantized) {
      quantized_by_weight[name + ".weight"] = {name, linear};
      quantized_.push_back({name, linear->quantized->scheme()});
    } else {
      float_linears_.push_back(name);
    }
  }
  std::map<std::string, std::string> new_crcs;
  for (const auto& param : params_.by_step[step]) {
    const auto q = quantized_by_weight.find(param.name);
    if (q != quantized_by_weight.end()) {
      const auto& [layer, linear] = q->second;
      try {
        for (const StoredTensor& stored : compressed_tensors_layout(*linear->quantized)) {
          add(layer + "." + stored.suffix, stored.encode());
          parameters.push_back(layer + "." + stored.suffix);
        }
      } catch (const Error& e) {
        fail("{}: layer \"{}\": {}", options_.out.string(), layer, e.what());
      }
      continue;
    }
    const std::string source = source_of(param.name);
    torch::Tensor stored = detail::checkpoint_storage_form(param.handle, narrow_, kept_wide_);
    stored = stored.detach().to(torch::kCPU).contiguous();
    const std::string crc = fmt::format("{:08x}", crc32(stored.data_ptr(), stored.nbytes()));
    if (source != param.name) {
      // A tied parameter save_checkpoint leaves out (it shares storage with one written before).
      // Its partner was written in an earlier step: that must still be what it holds now.
      const auto written = float_crc_.find(source);
      PTQ_CHECK(written != float_crc_.end() && written->second == crc,
                "layer-streamed quantization: \"{}\" is tied to \"{}\", which a stage changed after it was "
                "written; quantize this model without --stream",
                param.name, source);
      skipped_tied_ = true;
      continue;
    }
    new_crcs[param.name] = crc;
    tensors.emplace_back(param.name, stored);
    parameters.push_back(param.name);
  }
  for (const auto& name : params_.buffers[step]) {
    for (const auto& item : net_.named_buffers(/*recurse=*/true)) {
      if (item.key() != name) continue;
      add(name, item.value());
      buffers.push_back(name);
    }
  }
  for (const auto& [name, scale] : kv_scale_tensors(net_)) {
    if (kv_written_.count(name)) continue;
    add(name, scale);
    kv_scales.push_back(name);
    kv_written_.insert(name);
  }
  std::map<std::string, std::string> metadata = {
      {kChecksumMetadataKey, tensor_checksums_metadata(tensors)},
      {kPartKey, json{{"parameters", parameters}, {"buffers", buffers}, {"kv_scales", kv_scales}}.dump()}};
  write_safetensors(part_path(step), tensors, metadata);
  for (auto& [name, crc] : new_crcs) float_crc_[name] = crc;

  const int64_t layers = net_.num_decoder_layers();
  if (step == kHeadLayer) {
    record_progress(layers, /*head_done=*/true);
  } else {
    const int64_t next_layer = step == kEmbeddingStep ? 0 : step + 1;
    if (next_inputs.defined())
      write_safetensors(partial_ / inputs_file_name(next_layer), {{"inputs", next_inputs.to(torch::kCPU).contiguous()}});
    record_progress(next_layer, /*head_done=*/false);
    // The previous layer's inputs are no longer needed once the record names the new ones.
    std::error_code ignored;
    if (next_layer > 0) fs::remove(partial_ / inputs_file_name(next_layer - 1), ignored);
  }
  const ResidentMemory memory = resident_memory();
  log_debug("{}: written; resident {} (peak so far {})",
           step == kEmbeddingStep ? std::string("embedding") : step == kHeadLayer ? std::string("head") : fmt::format("layer {}", step),
           format_bytes(memory.now), format_bytes(memory.peak));
  if (options_.after_step_recorded) options_.after_step_recorded(step);
}

void StreamedRun::record_progress(int64_t next_layer, bool head_done) {
  json quantized = json::array();
  for (const auto& entry : quantized_) quantized.push_back({{"name", entry.name}, {"scheme", scheme_to_json(entry.scheme)}});
  json progress = {{"format", kProgressFormat},
                   {"fingerprint", fingerprint_},
                   {"next_layer", next_layer},
                   {"head_done", head_done},
                   {"kept_wide", kept_wide_},
                   {"skipped_tied", skipped_tied_},
                   {"quantized", quantized},
                   {"float_linears", float_linears_},
                   {"float_crc32", float_crc_},
                   {"kv_written", kv_written_},
                   {"report", algo_.report().to_json()}};
  write_text_atomically(partial_ / kProgressFile, progress.dump(1) + "\n");
}

void StreamedRun::restore(const json& progress) {
  try {
    quantized_.clear();
    for (const auto& entry : progress.at("quantized"))
      quantized_.push_back({entry.at("name").get<std::string>(), scheme_from_json(entry.at("scheme"))});
    float_linears_ = progress.at("float_linears").get<std::vector<std::string>>();
    kept_wide_ = progress.at("kept_wide").get<bool>();
    skipped_tied_ = progress.at("skipped_tied").get<bool>();
    float_crc_ = progress.at("float_crc32").get<std::map<std::string, std::string>>();
    const auto kv = progress.at("kv_written").get<std::vector<std::string>>();
    kv_written_ = std::set<std::string>(kv.begin(), kv.end());
  } catch (const json::exception& e) {
    fail("{}: malformed progress record ({}); run without --resume to start over",
         (partial_ / kProgressFile).string(), e.what());
  }
}

StreamQuantizeResult StreamedRun::assemble() {
  // Every part in step order; the tensors in the order save_checkpoint adds them: all parameters (in
  // network order), then all buffers (network order), then the static KV-cache scales (sorted by
  // name, as kv_scale_tensors' map is).
  const int64_t layers = net_.num_decoder_layers();
  std::vector<int64_t> steps = {kEmbeddingStep};
  for (int64_t i = 0; i < layers; ++i) steps.push_back(i);
  steps.push_back(kHeadLayer);
  std::vector<std::shared_ptr<const SafetensorsFile>> parts;
  std::vector<std::pair<std::string, size_t>> parameters, buffer_list;
  std::map<std::string, size_t> buffer_part, kv_part;
  for (int64_t step : steps) {
    auto file = std::make_shared<const SafetensorsFile>(part_path(step));
    const auto meta = file->metadata().find(kPartKey);
    PTQ_CHECK(meta != file->metadata().end(), "{}: not a part of a layer-streamed run (no \"{}\" metadata)",
              file->path().string(), kPartKey);
    const json part = json::parse(meta->second);
    for (const auto& name : part.at("parameters")) parameters.emplace_back(name.get<std::string>(), parts.size());
    for (const auto& name : part.at("buffers")) buffer_part[name.get<std::string>()] = parts.size();
    for (const auto& name : part.at("kv_scales")) kv_part[name.get<std::string>()] = parts.size();
    parts.push_back(file);
  }
  for (const auto& item : net_.named_buffers(/*recurse=*/true)) {
    const auto it = buffer_part.find(item.key());
    PTQ_CHECK(it != buffer_part.end(), "layer-streamed quantization: buffer \"{}\" is in no part", item.key());
    buffer_list.emplace_back(item.key(), it->second);
  }

  StreamQuantizeResult result;
  write_folder_atomically(options_.out, [&](const fs::path& staging) {
    SafetensorsShardWriter writer(staging, options_.max_shard_bytes);
    for (const auto& [name, part] : parameters) writer.add_from_file(name, parts[part], name);
    for (const auto& [name, part] : buffer_list) writer.add_from_file(name, parts[part], name);
    for (const auto& [name, part] : kv_part) writer.add_from_file(name, parts[part], name);
    writer.finish();
    result.tensor_bytes = writer.total_bytes();
    result.tensors = writer.num_tensors();
    detail::write_checkpoint_text(
        staging / "config.json",
        detail::checkpoint_config_json(net_, quantized_, float_linears_, skipped_tied_, kept_wide_).dump(2) + "\n");
    detail::copy_checkpoint_tokenizer_files(net_, options_.out, staging);
  });
  parts.clear();
  std::error_code ignored;
  fs::remove_all(partial_, ignored);
  log_info("saved {} ({} tensors, {:.1f} MiB; {} of {} linear layers quantized; layer-streamed, peak resident "
           "memory {})",
           options_.out.string(), result.tensors, result.tensor_bytes / 1048576.0, quantized_.size(),
           quantized_.size() + float_linears_.size(), format_bytes(resident_memory().peak));
  return result;
}

StreamQuantizeResult StreamedRun::run() {
  PTQ_CHECK(!net_.source_dir.empty(),
            "layer-streamed quantization reads the float weights from the model folder, but this network was not "
            "loaded from one (CausalLM::source_dir is empty)");
  PTQ_CHECK(algo_.config().mode == PTQMode::kQuantize,
            "layer-streamed quantization needs a QUANTIZE config (mode is \"deploy\")");
  store_ = TensorStore::open(net_.source_dir);
  params_ = partition_parameters(net_);
  dtype_ = net_.compute_dtype();
  for (const auto& [name, handle] : params_.by_name) {
    PTQ_CHECK(is_deferred(handle) || handle.numel() <= 1,
              "layer-streamed quantization needs a network built without its weights (LoadOptions::defer_weights); "
              "parameter \"{}\" is loaded",
              name);
    (void)handle;
  }
  device_ = options_.device;
  narrow_ = detail::declared_16bit_dtype(net_.hf_config());

  fs::path target = fs::absolute(options_.out).lexically_normal();
  if (!target.has_filename()) target = target.parent_path();
  partial_ = stream_progress_dir(target);

  // One run per output folder: two runs writing the same OUT.partial would interleave their records.
  // The lock is an flock on "<OUT>.partial.lock", released by the kernel however the process ends.
  const fs::path lock_path = partial_.string() + ".lock";
  fs::create_directories(lock_path.parent_path());
  const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  PTQ_CHECK(lock_fd >= 0, "{}: cannot create the lock file: {}", lock_path.string(), std::strerror(errno));
  struct LockGuard {
    int fd;
    fs::path path;
    bool locked = false;
    ~LockGuard() {
      if (locked) ::unlink(path.c_str());
      ::close(fd);
    }
  } lock{lock_fd, lock_path};
  PTQ_CHECK(::flock(lock_fd, LOCK_EX | LOCK_NB) == 0,
            "{}: another ptq run is writing this checkpoint right now (it holds {}); wait for it to finish or stop "
            "it, then --resume",
            options_.out.string(), lock_path.string());
  lock.locked = true;

  // The calibration tokens, sampled here (not by the driver) because the fingerprint covers them.
  const auto stages = algo_.stages();
  const bool needs_data = std::any_of(stages.begin(), stages.end(), [](const auto& s) { return s->needs_calibration_data(); });
  LayerwiseOptions layerwise;
  layerwise.batch_size = options_.batch_size;
  layerwise.float_fallback = options_.float_fallback;
  if (needs_data) {
    const std::string file = resolve_calibration_file(algo_.config().calibration);
    log_info("calibration: {} samples of {} tokens from {}", algo_.config().calibration.samples,
             algo_.config().calibration.seq_len, file);
    layerwise.tokens = sample_calibration_tokens(file, *helper_.create_tokenizer(), algo_.config().calibration);
  }
  fingerprint_ = run_fingerprint(algo_, net_, *store_, layerwise.tokens, device_, options_.float_fallback);

  StreamQuantizeResult result;
  bool head_done = false;
  std::error_code ec;
  if (options_.resume) {
    const fs::path record = partial_ / kProgressFile;
    PTQ_CHECK(fs::is_regular_file(record),
              "--resume: {} holds no progress record of an interrupted run (nothing to resume; run without --resume)",
              partial_.string());
    const json progress = read_json_file(record);
    PTQ_CHECK(progress.value("format", 0) == kProgressFormat,
              "{}: progress format {} is not this ptq's ({}); run without --resume to start over", record.string(),
              progress.value("format", 0), kProgressFormat);
    const std::string recorded = progress.value("fingerprint", "");
    PTQ_CHECK(recorded == fingerprint_,
              "--resume: the interrupted run in {} quantized a different job (fingerprint {}, this one {}): the "
              "recipe, the model files, the calibration data or settings, the compute dtype, the device or the ptq "
              "version differ. Resume with exactly the same arguments, or run without --resume to start over",
              partial_.string(), recorded, fingerprint_);
    restore(progress);
    const int64_t next_layer = progress.at("next_layer").get<int64_t>();
    head_done = progress.at("head_done").get<bool>();
    layerwise.first_layer = std::min(next_layer, net_.num_decoder_layers());
    layerwise.initial_report = QuantizationReport::from_json(progress.at("report"));
    if (needs_data && !head_done) {
      SafetensorsFile inputs(partial_ / inputs_file_name(next_layer));
      layerwise.first_inputs = inputs.tensor("inputs").clone().to(device_);
    }
    result.resumed_at = next_layer;
    log_info("resuming {} at {} (fingerprint {})", options_.out.string(),
             head_done ? std::string("the final assembly") : fmt::format("decoder layer {}", next_layer), fingerprint_);
  } else {
    if (fs::exists(partial_, ec)) {
      log_info("{}: discarding the progress of an earlier run (pass --resume to continue it)", partial_.string());
      fs::remove_all(partial_, ec);
    }
  }
  fs::create_directories(partial_ / "parts", ec);
  PTQ_CHECK(!ec, "{}: cannot create the progress folder: {}", partial_.string(), ec.message());

  if (!head_done) {
    layerwise.before_step = [this](int64_t step) { load_step(step); };
    // The NaN/Inf guard's second pass reads the float weights from the file again (no copy in memory).
    layerwise.reload_step = [this](int64_t step) { load_step(step); };
    layerwise.after_step = [this](int64_t step, const torch::Tensor& next) {
      write_step(step, next);
      release_step(step);
    };
    algo_.apply(net_, helper_, layerwise);
    result.report = algo_.report();
  } else {
    // Everything was computed before the interruption; only the assembly is left. The algorithm's
    // apply() is not run again: the report comes from the record.
    result.report = QuantizationReport::from_json(read_json_file(partial_ / kProgressFile).at("report"));
    net_.quantization = config_with_float_fallbacks(algo_.config(), result.report);
  }
  const StreamQuantizeResult assembled = assemble();
  result.tensor_bytes = assembled.tensor_bytes;
  result.tensors = assembled.tensors;
  return result;
}

}  // namespace

fs::path stream_progress_dir(const fs::path& out) {
  fs::path target = fs::absolute(out).lexically_normal();
  if (!target.has_filename()) target = target.parent_path();
  return target.parent_path() / (target.filename().string() + ".partial");
}

StreamQuantizeResult quantize_streamed(Algorithm& algo, CausalLM& net, NetworkHelper& helper,
                                       const StreamQuantizeOptions& options) {
  torch::NoGradGuard no_grad;
  StreamedRun run(algo, net, helper, options);
  return run.run();
}

}  // namespace ptq
