// ptq inspect: what a model folder holds (architecture, sizes, parameter counts, dtypes, tensors,
// and for a quantized checkpoint how each layer is quantized), read from config.json and the
// safetensors headers without loading the weights.
#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <optional>

#include "framework/checkpoint_config.h"
#include "framework/error.h"
#include "framework/safetensors.h"
#include "framework/table.h"
#include "network_helpers/llama/model_spec.h"
#include "network_helpers/tokenizer/load_tokenizer.h"
#include "tools/ptq/cli_common.h"
#include "tools/ptq/inspect_quantization.h"

namespace ptq::cli {
namespace {

struct InspectOptions {
  std::string model_dir;
  bool tensors = false;
  bool json = false;
};

void run_inspect(const InspectOptions& o, const GlobalOptions& globals) {
  apply_runtime_options(globals, o.json);
  namespace fs = std::filesystem;
  ModelSpec spec = ModelSpec::from_file(fs::path(o.model_dir) / "config.json");
  TensorStore store = TensorStore::open(o.model_dir);
  std::map<std::string, std::pair<int64_t, uint64_t>> by_dtype;  // dtype -> (elements, bytes)
  int64_t elements = 0;
  uint64_t bytes = 0;
  nlohmann::json tensor_list = nlohmann::json::array();
  Table tensor_table({"tensor", "dtype", "shape", "bytes"});
  for (const auto& name : store.names()) {
    const auto& info = store.info(name);
    by_dtype[info.dtype_name].first += info.numel();
    by_dtype[info.dtype_name].second += info.nbytes();
    elements += info.numel();
    bytes += info.nbytes();
    if (o.tensors) {
      tensor_list.push_back({{"name", name}, {"dtype", info.dtype_name}, {"shape", info.shape}, {"bytes", info.nbytes()}});
      tensor_table.add_row({name, info.dtype_name, fmt::format("{}", fmt::join(info.shape, "x")),
                            std::to_string(info.nbytes())});
    }
  }
  std::string tokenizer_kind = "none";
  try {
    tokenizer_kind = load_tokenizer(o.model_dir)->kind();
  } catch (const Error& e) {
    tokenizer_kind = std::string("unavailable: ") + e.what();
  }
  nlohmann::json dtypes = nlohmann::json::object();
  for (const auto& [dtype, counts] : by_dtype) dtypes[dtype] = {{"elements", counts.first}, {"bytes", counts.second}};
  nlohmann::json summary = {{"model", o.model_dir},
                            {"architecture", spec.architecture},
                            {"layers", spec.num_layers},
                            {"hidden_size", spec.hidden_size},
                            {"intermediate_size", spec.intermediate_size},
                            {"attention_heads", spec.num_heads},
                            {"kv_heads", spec.num_kv_heads},
                            {"head_dim", spec.head_dim},
                            {"vocab_size", spec.vocab_size},
                            {"max_position_embeddings", spec.max_position_embeddings},
                            {"rope_theta", spec.rope_theta},
                            {"rope_scaling", spec.rope_scaling.type},
                            {"tie_word_embeddings", spec.tie_word_embeddings},
                            {"parameters", spec.parameter_count()},
                            {"stored_elements", elements},
                            {"stored_bytes", bytes},
                            {"tensors", store.size()},
                            {"shards", store.files().size()},
                            {"dtypes", dtypes},
                            {"tokenizer", tokenizer_kind}};
  std::optional<QuantizationInspection> quantization;
  const nlohmann::json config = read_json_file(fs::path(o.model_dir) / "config.json");
  if (config.contains("quantization_config") && !config["quantization_config"].is_null()) {
    quantization = inspect_quantization(o.model_dir, config["quantization_config"], store);
    summary["quantization"] = quantization->json;
  }
  if (o.json) {
    if (o.tensors) summary["tensor_list"] = tensor_list;
    print_json(summary);
    return;
  }
  Table table({"property", "value"});
  for (const char* key : {"architecture", "layers", "hidden_size", "intermediate_size", "attention_heads", "kv_heads",
                          "head_dim", "vocab_size", "max_position_embeddings", "rope_theta", "rope_scaling",
                          "tie_word_embeddings", "parameters", "tensors", "shards", "tokenizer"}) {
    const auto& v = summary[key];
    table.add_row({key, v.is_string() ? v.get<std::string>() : v.dump()});
  }
  table.add_row({"stored size", fmt::format("{:.2f} MiB", bytes / 1048576.0)});
  for (const auto& [dtype, counts] : by_dtype)
    table.add_row({"  " + dtype, fmt::format("{} elements, {:.2f} MiB", counts.first, counts.second / 1048576.0)});
  if (quantization)
    for (const auto& [key, value] : quantization->properties) table.add_row({key, value});
  std::cout << table.to_string();
  if (quantization) std::cout << "\n" << quantization->layers.to_string();
  if (o.tensors) std::cout << "\n" << tensor_table.to_string();
}

}  // namespace

void add_inspect_command(CLI::App& app, const GlobalOptions& globals) {
  auto options = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand("inspect", "Describe a model folder: architecture, sizes, dtypes, tensors");
  cmd->add_option("model", options->model_dir, "Model folder")->required()->check(CLI::ExistingDirectory);
  cmd->add_flag("--tensors", options->tensors, "List every tensor with dtype and shape");
  cmd->add_flag("--json", options->json, "Print one JSON object");
  cmd->callback([options, &globals] { run_inspect(*options, globals); });
}

}  // namespace ptq::cli
