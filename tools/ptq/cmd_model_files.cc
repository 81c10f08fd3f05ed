// ptq convert-llama2c and ptq make-random-model: commands that write model folders.
#include <iostream>

#include "framework/output_folder.h"
#include "network_helpers/llama/llama2c_import.h"
#include "network_helpers/llama/random_model.h"
#include "tools/ptq/cli_common.h"

namespace ptq::cli {
namespace {

// -o/--out and --force of a command that writes a model folder (framework/output_folder.h).
void add_out_options(CLI::App& cmd, std::string& out, bool& force) {
  cmd.add_option("-o,--out", out, "Output folder (absent, empty, or a folder ptq wrote)")->required();
  cmd.add_flag("--force", force, "Also replace an --out folder holding a model another tool wrote");
}

}  // namespace

void add_convert_llama2c_command(CLI::App& app, const GlobalOptions& globals) {
  struct Options {
    std::string checkpoint, tokenizer, out;
    bool json = false, force = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("convert-llama2c", "Convert a llama2.c .bin checkpoint into a Hugging Face folder");
  cmd->add_option("checkpoint", o->checkpoint, "llama2.c checkpoint (e.g. stories260K.bin)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer (e.g. tok512.bin), copied as tokenizer.bin")
      ->check(CLI::ExistingFile);
  add_out_options(*cmd, o->out, o->force);
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->callback([o, &globals] {
    apply_runtime_options(globals, o->json);
    check_output_folder(o->out, {{o->checkpoint, o->tokenizer}, o->force});
    Llama2cImport r = import_llama2c(o->checkpoint, o->tokenizer, o->out);
    nlohmann::json result = {{"out", o->out}, {"parameters", r.spec.parameter_count()},
                             {"layers", r.spec.num_layers}, {"hidden_size", r.spec.hidden_size}};
    if (o->json) {
      print_json(result);
    } else {
      std::cout << "wrote " << o->out << ": LlamaForCausalLM, " << r.spec.num_layers << " layers, hidden "
                << r.spec.hidden_size << ", " << r.spec.parameter_count() << " parameters" << std::endl;
    }
  });
}

void add_make_random_model_command(CLI::App& app, const GlobalOptions& globals) {
  struct Options {
    std::string preset = "tiny", config, out;
    RandomModelOptions model;
    bool json = false, force = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("make-random-model",
                                     "Write a Llama-shaped Hugging Face folder with random weights (for benchmarks)");
  cmd->add_option("--preset", o->preset, "Shape: tinyllama-1.1b, llama2-7b or tiny")
      ->check(CLI::IsMember({"tinyllama-1.1b", "llama2-7b", "tiny"}));
  cmd->add_option("--config", o->config, "A config.json to take the shape from instead of a preset")
      ->check(CLI::ExistingFile);
  cmd->add_option("--dtype", o->model.dtype, "Stored dtype")->check(CLI::IsMember({"float32", "bfloat16", "float16"}));
  cmd->add_option("--seed", o->model.seed, "Random seed");
  add_out_options(*cmd, o->out, o->force);
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->callback([o, &globals] {
    apply_runtime_options(globals, o->json);
    check_output_folder(o->out, {{o->config}, o->force});
    nlohmann::json config = o->config.empty() ? preset_config(o->preset) : ModelSpec::from_file(o->config).raw;
    write_random_llama(o->out, config, o->model);
    ModelSpec spec = ModelSpec::from_json(config, o->out);
    if (o->json) {
      print_json({{"out", o->out}, {"parameters", spec.parameter_count()}});
    } else {
      std::cout << "wrote " << o->out << ": " << spec.parameter_count() << " parameters (" << o->model.dtype << ")"
                << std::endl;
    }
  });
}

}  // namespace ptq::cli
