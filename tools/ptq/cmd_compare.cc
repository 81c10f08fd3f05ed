// ptq compare: the report program of docs/ACCURACY.md. One float model, several recipes: each recipe is
// quantized in memory the way `ptq quantize` does it (load, apply, convert; timed, calibration
// included), then every --data text is scored; one table (or JSON) has float and each recipe with weight
// bytes, quantize seconds, perplexity, change vs float and the gap ratio vs a --baseline recipe (one
// per weight bit width when several are given).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>

#include "framework/checkpoint.h"
#include "framework/error.h"
#include "framework/log.h"
#include "framework/quantization_report.h"
#include "framework/table.h"
#include "framework/output_folder.h"
#include "tools/ptq/cli_common.h"

namespace ptq::cli {
namespace fs = std::filesystem;
namespace {

struct CompareOptions {
  ModelOptions model;
  std::vector<std::string> configs;
  std::vector<std::string> data;
  PerplexityCliOptions eval;    // --protocol, --window, --batch, --max-windows
  QuantizeCliOptions quantize;  // --calib, --backend, --inject-outliers
  std::vector<std::string> baselines;
  std::string save_dir;
  bool force = false;  // --force: replace model folders another tool wrote under --save-dir
  std::string json_file;  // --json-file: the JSON object also written here
  bool markdown = false;
  bool json = false;
};

struct DataSet {
  std::string path;
  std::string label;  // column prefix: the file's stem, with its folder when the stem alone is ambiguous
  std::vector<int64_t> ids;
};

struct Row {
  std::string recipe;  // "float" or the config's file stem
  std::string config;  // the config path ("" for float)
  std::string summary;
  std::vector<std::string> composition;
  std::string error;  // why the recipe failed ("" when it ran)
  int64_t weight_bytes = -1;
  int64_t file_bytes = -1;  // with --save-dir
  std::optional<QuantizeTimes> times;
  int64_t quantized_layers = 0;
  int64_t fallbacks = 0;
  std::vector<double> ppl;  // per data set
  QuantDtype weight_dtype = QuantDtype::kNone;
  const Row* baseline = nullptr;  // the row its gap ratio divides by
};

bool is_recipe(const Row& row, const std::string& recipe) {
  return !row.config.empty() && (row.recipe == recipe || row.config == recipe);
}

std::string recipe_name(const std::string& config_file) { return fs::path(config_file).stem().string(); }

std::vector<DataSet> data_sets(const std::vector<std::string>& files) {
  static const std::set<std::string> kSplitNames = {"test", "train", "valid", "validation", "dev"};
  std::vector<DataSet> sets;
  for (const std::string& file : files) {
    const fs::path path(file);
    const std::string stem = path.stem().string();
    const bool shared_stem = std::count_if(files.begin(), files.end(), [&](const std::string& other) {
                               return fs::path(other).stem() == stem;
                             }) > 1;
    const std::string folder = path.parent_path().filename().string();
    sets.push_back({file, (kSplitNames.count(stem) || shared_stem) && !folder.empty() ? folder + "/" + stem : stem,
                    {}});
  }
  return sets;
}

double change_percent(double ppl, double float_ppl) { return 100.0 * (ppl / float_ppl - 1.0); }

// (ppl - float) / (baseline - float); nullopt when the baseline has no gap to divide by.
std::optional<double> gap_ratio(double ppl, double float_ppl, double baseline_ppl) {
  const double gap = baseline_ppl - float_ppl;
  if (!(std::abs(gap) > 0) || !std::isfinite(gap)) return std::nullopt;
  return (ppl - float_ppl) / gap + 0.0;  // + 0.0: float's own row shows 0, not -0
}

// One recipe: a fresh float model, the recipe applied and converted (timed), every data set scored.
void run_recipe(const CompareOptions& o, const PTQConfig& config, std::vector<DataSet>& sets,
                const PerplexityOptions& eval_options, Row& row) {
  LoadedModel loaded = load_model(o.model);
  apply_outlier_injection(loaded, o.quantize.inject_outliers);
  PTQ algo(config);
  row.composition = algo.composition();
  row.times = quantize_network(algo, loaded);
  row.quantized_layers = algo.report().quantized_count();
  row.fallbacks = algo.report().fallback_count();
  row.weight_bytes = checkpoint_tensor_bytes(*loaded.network);
  log_info("  quantized in {:.1f} s ({} linears quantized, {} fallbacks), weights {}", row.times->total(),
           row.quantized_layers, row.fallbacks, format_bytes(row.weight_bytes));
  if (!o.save_dir.empty()) {
    const fs::path out = fs::path(o.save_dir) / row.recipe;
    save_checkpoint(*loaded.network, out);
    row.file_bytes = weight_file_bytes(out);
    log_info("  saved {}", out.string());
  }
  for (DataSet& set : sets) {
    const auto start = std::chrono::steady_clock::now();
    row.ppl.push_back(evaluate_perplexity(*loaded.network, set.ids, eval_options).perplexity);
    log_info("  {}: perplexity {:.4f} ({:.1f} s)", set.label, row.ppl.back(), seconds_since(start));
  }
}

nlohmann::json to_json(const CompareOptions& o, const PerplexityOptions& eval_options,
                       const std::vector<DataSet>& sets, const std::vector<Row>& rows) {
  nlohmann::json data = nlohmann::json::array();
  for (const DataSet& set : sets)
    data.push_back({{"label", set.label}, {"path", set.path}, {"tokens", static_cast<int64_t>(set.ids.size())}});
  nlohmann::json out_rows = nlohmann::json::array();
  const Row& float_row = rows.front();
  for (const Row& row : rows) {
    nlohmann::json j = {{"recipe", row.recipe},
                        {"config", row.config.empty() ? nlohmann::json() : nlohmann::json(row.config)},
                        {"summary", row.summary},
                        {"ok", row.error.empty()},
                        {"error", row.error},
                        {"weight_bytes", row.weight_bytes >= 0 ? nlohmann::json(row.weight_bytes) : nlohmann::json()},
                        {"quantize_seconds", row.times ? nlohmann::json(row.times->total()) : nlohmann::json()}};
    if (row.times) j["seconds"] = {{"apply", row.times->apply}, {"convert", row.times->convert}};
    if (!row.composition.empty()) j["composition"] = row.composition;
    if (!row.config.empty()) {
      j["quantized_layers"] = row.quantized_layers;
      j["fallbacks"] = row.fallbacks;
    }
    if (row.file_bytes >= 0) j["file_bytes"] = row.file_bytes;
    if (!o.baselines.empty()) j["baseline"] = row.baseline ? nlohmann::json(row.baseline->recipe) : nlohmann::json();
    const Row* baseline = row.baseline;
    nlohmann::json evals = nlohmann::json::array();
    for (size_t d = 0; d < row.ppl.size(); ++d) {
      nlohmann::json e = {{"data", sets[d].label},
                          {"ppl", row.ppl[d]},
                          {"change_percent", change_percent(row.ppl[d], float_row.ppl[d])}};
      if (!o.baselines.empty()) {
        const auto ratio = baseline && d < baseline->ppl.size()
                               ? gap_ratio(row.ppl[d], float_row.ppl[d], baseline->ppl[d])
                               : std::nullopt;
        e["gap_ratio"] = ratio ? nlohmann::json(*ratio) : nlohmann::json();
      }
      evals.push_back(e);
    }
    j["eval"] = evals;
    out_rows.push_back(j);
  }
  return {{"model", o.model.model_dir},
          {"device", o.model.device},
          {"dtype", o.model.dtype},
          {"protocol", to_string(eval_options.protocol)},
          {"window", eval_options.window},
          {"max_windows", eval_options.max_windows},
          {"calib", o.quantize.calib},
          {"inject_outliers", o.quantize.inject_outliers},
          {"baseline", o.baselines.size() == 1 ? nlohmann::json(o.baselines[0]) : nlohmann::json()},
          {"baselines", o.baselines},
          {"data", data},
          {"rows", out_rows}};
}

Table to_table(const CompareOptions& o, const std::vector<DataSet>& sets, const std::vector<Row>& rows) {
  const bool ratios = !o.baselines.empty();
  std::vector<std::string> header = {"recipe", "weight bytes", "quantize s"};
  for (const DataSet& set : sets) {
    header.push_back(set.label + " ppl");
    header.push_back("change");
    if (ratios) header.push_back(o.baselines.size() == 1 ? "gap vs " + o.baselines[0] : "gap vs baseline");
  }
  Table table(header);
  const Row& float_row = rows.front();
  for (const Row& row : rows) {
    std::vector<std::string> cells = {row.recipe, row.weight_bytes >= 0 ? format_bytes(row.weight_bytes) : "",
                                      row.times ? fmt::format("{:.1f}", row.times->total()) : ""};
    for (size_t d = 0; d < sets.size(); ++d) {
      if (!row.error.empty() || d >= row.ppl.size()) {
        cells.push_back(d == 0 && !row.error.empty() ? "failed" : "");
        cells.push_back("");
        if (ratios) cells.push_back("");
        continue;
      }
      cells.push_back(fmt::format("{:.4f}", row.ppl[d]));
      cells.push_back(fmt::format("{:+.3f}%", change_percent(row.ppl[d], float_row.ppl[d])));
      if (ratios) {
        const Row* baseline = row.baseline;
        const auto ratio = baseline && d < baseline->ppl.size()
                               ? gap_ratio(row.ppl[d], float_row.ppl[d], baseline->ppl[d])
                               : std::nullopt;
        cells.push_back(ratio ? fmt::format("{:.2f}", *ratio) : "");
      }
    }
    table.add_row(cells);
  }
  return table;
}

void run_compare(const CompareOptions& o, const GlobalOptions& globals) {
  apply_runtime_options(globals, o.json);
  // Every recipe is read before anything runs, so a bad path or key fails in a second, naming the file.
  std::vector<std::pair<std::string, PTQConfig>> recipes;
  for (const std::string& file : o.configs) {
    PTQ_CHECK(fs::is_regular_file(file), "recipe config {}: no such file", file);
    recipes.emplace_back(file, load_quantize_recipe(file, o.quantize));
  }
  if (!o.quantize.inject_outliers.empty()) parse_outlier_injection(o.quantize.inject_outliers);
  if (!o.save_dir.empty())
    for (const auto& recipe : recipes)
      check_output_folder(fs::path(o.save_dir) / recipe_name(recipe.first), {{o.model.model_dir}, o.force});
  std::set<std::string> baseline_bits;
  for (const std::string& baseline : o.baselines) {
    const auto found = std::find_if(recipes.begin(), recipes.end(), [&](const auto& r) {
      return recipe_name(r.first) == baseline || r.first == baseline;
    });
    PTQ_CHECK(found != recipes.end(), "--baseline {}: not one of the recipes given (name a config's file stem, e.g. {})",
              baseline, recipes.empty() ? std::string("w4a16_rtn_g128") : recipe_name(recipes.front().first));
    PTQ_CHECK(o.baselines.size() == 1 || baseline_bits.insert(to_string(found->second.weight_quant_dtype)).second,
              "--baseline {}: a second baseline for {} weights (give one per weight bit width)", baseline,
              to_string(found->second.weight_quant_dtype));
  }
  const PerplexityOptions eval_options = o.eval.resolve(/*show_progress=*/!o.json && !globals.quiet);
  std::vector<DataSet> sets = data_sets(o.data);
  const size_t total = recipes.size() + 1;

  std::vector<Row> rows;
  {
    Row row;
    row.recipe = "float";
    row.summary = "float (" + o.model.dtype + " compute)";
    log_info("[1/{}] float: {}", total, o.model.model_dir);
    LoadedModel loaded = load_model(o.model);
    apply_outlier_injection(loaded, o.quantize.inject_outliers);
    for (DataSet& set : sets) set.ids = evaluation_ids(loaded, set.path, eval_options.protocol);
    row.weight_bytes = checkpoint_tensor_bytes(*loaded.network);
    for (DataSet& set : sets) {
      const auto start = std::chrono::steady_clock::now();
      row.ppl.push_back(evaluate_perplexity(*loaded.network, set.ids, eval_options).perplexity);
      log_info("  {}: perplexity {:.4f} ({:.1f} s)", set.label, row.ppl.back(), seconds_since(start));
    }
    rows.push_back(row);
  }
  std::vector<std::string> failed;
  for (size_t i = 0; i < recipes.size(); ++i) {
    const auto& [file, config] = recipes[i];
    Row row;
    row.recipe = recipe_name(file);
    row.config = file;
    row.summary = config.summary();
    row.weight_dtype = config.weight_quant_dtype;
    log_info("[{}/{}] {}: {}", i + 2, total, row.recipe, row.summary);
    try {
      run_recipe(o, config, sets, eval_options, row);
    } catch (const c10::Error& e) {
      row.error = e.what_without_backtrace();
    } catch (const std::exception& e) {
      row.error = e.what();
    }
    if (!row.error.empty()) {
      log_warning("{} ({}) failed: {}", row.recipe, file, row.error);
      row.ppl.clear();
      failed.push_back(row.recipe);
    }
    rows.push_back(row);
  }

  // One baseline divides every row; several: each row by the baseline of its weight bit width.
  for (const std::string& name : o.baselines) {
    const auto it = std::find_if(rows.begin(), rows.end(), [&](const Row& row) { return is_recipe(row, name); });
    if (it == rows.end() || !it->error.empty()) {
      log_warning("--baseline {} failed: no gap ratios against it", name);
      continue;
    }
    for (Row& row : rows)
      if (o.baselines.size() == 1 || row.config.empty() || row.weight_dtype == it->weight_dtype)
        if (!row.baseline) row.baseline = &*it;
  }
  const nlohmann::json result = to_json(o, eval_options, sets, rows);
  if (!o.json_file.empty()) {
    std::ofstream file(o.json_file);
    file << result.dump(2) << "\n";
    PTQ_CHECK(file.good(), "--json-file {}: cannot write", o.json_file);
  }
  if (o.json) {
    print_json(result);
  } else {
    const Table table = to_table(o, sets, rows);
    if (o.markdown) {
      std::cout << table.to_markdown();
    } else {
      std::cout << fmt::format("{}, window {}{}{}\n", o.model.model_dir, eval_options.window,
                               eval_options.max_windows > 0 ? fmt::format(", first {} windows", eval_options.max_windows)
                                                            : std::string(),
                               o.quantize.inject_outliers.empty()
                                   ? std::string()
                                   : ", outliers injected " + o.quantize.inject_outliers);
      std::cout << table.to_string();
    }
    for (const Row& row : rows)
      if (!row.error.empty()) std::cout << fmt::format("{} failed: {}\n", row.recipe, row.error);
  }
  std::cout.flush();
  PTQ_CHECK(failed.empty(), "{} of {} recipes failed: {}", failed.size(), recipes.size(), fmt::join(failed, ", "));
}

}  // namespace

void add_compare_command(CLI::App& app, const GlobalOptions& globals) {
  auto options = std::make_shared<CompareOptions>();
  CLI::App* cmd = app.add_subcommand(
      "compare",
      "Float vs recipes: quantize a model in memory with each config, time it, and compare perplexities in one table");
  options->model.add_to(*cmd);
  cmd->add_option("configs", options->configs, "Recipe files (configs/*.json); one row each, in this order")
      ->required();
  cmd->add_option("-d,--data", options->data,
                  "Text file to score (repeatable: e.g. heldout/gutenberg_heldout.txt and wikitext2/test.txt)")
      ->check(CLI::ExistingFile)
      ->allow_extra_args(false);
  options->eval.add_to(*cmd);
  options->quantize.add_to(*cmd);
  cmd->add_option("--baseline", options->baselines,
                  "Recipe (config file stem, e.g. w4a16_rtn_g128) whose gap to float the others are divided by; "
                  "repeatable, one per weight bit width (each row then uses the one of its width)")
      ->allow_extra_args(false);
  cmd->add_option("--save-dir", options->save_dir,
                  "Also save each recipe's checkpoint to DIR/<recipe> (each empty, absent or a ptq checkpoint)");
  cmd->add_flag("--force", options->force, "Also replace DIR/<recipe> folders holding a model another tool wrote");
  cmd->add_flag("--markdown", options->markdown, "Print the table as GitHub Markdown (for docs)");
  cmd->add_option("--json-file", options->json_file, "Also write the JSON object to FILE (with the table on stdout)");
  cmd->add_flag("--json", options->json, "Print one JSON object (rows with ppl, change_percent, gap_ratio per data)");
  cmd->callback([options, &globals] { run_compare(*options, globals); });
}

}  // namespace ptq::cli
