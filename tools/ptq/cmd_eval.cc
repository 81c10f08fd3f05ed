// ptq eval: perplexity of a text file (see network_helpers/eval/perplexity.h for the protocols).
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <iostream>

#include "framework/error.h"
#include "framework/table.h"
#include "network_helpers/eval/perplexity.h"
#include "tools/ptq/cli_common.h"

namespace ptq::cli {
namespace {

struct EvalOptions {
  ModelOptions model;
  std::string data;
  PerplexityCliOptions eval;  // --protocol, --window, --batch, --max-windows
  bool json = false;
};

void run_eval(const EvalOptions& o, const GlobalOptions& globals) {
  apply_runtime_options(globals, o.json);
  const PerplexityOptions options = o.eval.resolve(/*show_progress=*/!o.json && !globals.quiet);
  LoadedModel loaded = load_model(o.model);
  const std::vector<int64_t> ids = evaluation_ids(loaded, o.data, options.protocol);
  PerplexityResult r = evaluate_perplexity(*loaded.network, ids, options);

  if (o.json) {
    print_json({{"model", o.model.model_dir},
                {"data", o.data},
                {"protocol", to_string(options.protocol)},
                {"window", options.window},
                {"dtype", o.model.dtype},
                {"ppl", r.perplexity},
                {"mean_nll", r.mean_nll},
                {"tokens", r.tokens},
                {"scored_tokens", r.scored_tokens},
                {"windows", r.windows},
                {"seconds", r.seconds},
                {"tokens_per_second", r.tokens_per_second}});
  } else {
    Table table({"model", "data", "protocol", "window", "tokens", "scored", "perplexity", "seconds", "tok/s"});
    table.add_row({std::filesystem::path(o.model.model_dir).filename().string(),
                   std::filesystem::path(o.data).filename().string(), to_string(options.protocol),
                   std::to_string(options.window), std::to_string(r.tokens), std::to_string(r.scored_tokens),
                   fmt::format("{:.4f}", r.perplexity), fmt::format("{:.1f}", r.seconds),
                   fmt::format("{:.0f}", r.tokens_per_second)});
    std::cout << table.to_string();
  }
  // A NaN or Inf anywhere in the weights makes every logit non-finite: the number is printed, then it fails.
  PTQ_CHECK(std::isfinite(r.perplexity), "{}: the perplexity of {} is {}: the model computes non-finite logits (a NaN or Inf weight?)",
            o.model.model_dir, o.data, r.perplexity);
}

}  // namespace

void add_eval_command(CLI::App& app, const GlobalOptions& globals) {
  auto options = std::make_shared<EvalOptions>();
  CLI::App* cmd = app.add_subcommand("eval", "Perplexity of a text file under a model (float or quantized)");
  options->model.add_to(*cmd);
  cmd->add_option("-d,--data", options->data, "UTF-8 text file to score (e.g. wikitext2/test.txt)")
      ->required()
      ->check(CLI::ExistingFile);
  options->eval.add_to(*cmd);
  cmd->add_flag("--json", options->json, "Print one JSON object (perplexity under \"ppl\")");
  cmd->callback([options, &globals] { run_eval(*options, globals); });
}

}  // namespace ptq::cli
