#include "framework/algorithm.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <map>
#include <mutex>

#include "framework/calibration.h"
#include "framework/error.h"
#include "framework/linear_quantization.h"
#include "framework/log.h"
#include "framework/non_finite_fallback.h"
#include "framework/progress.h"

namespace ptq {

bool LayerContext::is_head() const { return layer_index == kHeadLayer; }

Algorithm::Algorithm(PTQConfig config) : config_(std::move(config)) { config_.validate(); }

Algorithm::~Algorithm() = default;

void Algorithm::apply(CausalLM& net, NetworkHelper& helper) { apply(net, helper, LayerwiseOptions{}); }

void Algorithm::apply(CausalLM& net, NetworkHelper& helper, const LayerwiseOptions& options) {
  PTQ_CHECK(step_ == Step::kCreated,
            "{}: apply() was already called; an algorithm quantizes one network once (make a new one for "
            "another network)",
            name());
  PTQ_CHECK(!net.quantization, "{}: apply() needs a float network, but this one is already quantized ({})", name(),
            net.quantization ? net.quantization->summary() : "");
  torch::NoGradGuard no_grad;
  log_info("{}: {} ({})", name(), config_.summary(), config_.mode == PTQMode::kDeploy ? "deploy" : "quantize");
  if (config_.mode == PTQMode::kDeploy) {
    for (auto& linear : collect_linears(net)) {
      ResolvedLinearScheme scheme = resolve_linear_scheme(config_, *linear);
      if (scheme.skip)
        record_float_layer(*linear, scheme.reason, report_);
      else
        install_deploy_structure(*linear, scheme, report_);
    }
  } else {
    run_layerwise(net, helper, config_, stages(), report_, options);
  }
  // The config the checkpoint carries: with the linears the NaN/Inf guard kept in float, so that
  // DEPLOY rebuilds the same structure.
  net.quantization = config_with_float_fallbacks(config_, report_);
  applied_to_ = &net;
  step_ = Step::kApplied;
  // One line here; the tables are the caller's to print (report().summary_table(), fallback_list()).
  log_info("{}: {} of {} linear layers quantized, {} -> {}, {} not as configured", name(), report_.quantized_count(),
           report_.layers().size(), format_bytes(report_.float_bytes()), format_bytes(report_.quantized_bytes()),
           report_.fallback_count());
  log_debug("{}", report_.summary_table());
}

void Algorithm::convert(CausalLM& net) {
  PTQ_CHECK(step_ != Step::kCreated, "{}: convert() was called before apply(); call apply(net, helper) first",
            name());
  PTQ_CHECK(step_ != Step::kConverted, "{}: convert() was already called; it runs once, after apply()", name());
  PTQ_CHECK(applied_to_ == &net, "{}: convert() got a different network than the one apply() quantized", name());
  torch::NoGradGuard no_grad;
  std::vector<std::shared_ptr<LinearImpl>> quantized;
  for (auto& linear : collect_linears(net))
    if (linear->quantized) quantized.push_back(linear);
  Progress progress("converting", static_cast<int64_t>(quantized.size()), "layers");
  const std::string requested = to_string(config_.backend);
  for (auto& linear : quantized) {
    convert_linear(*linear, requested, net.compute_dtype());
    report_.set_backend(linear->path(), linear->backend_name, linear->backend_fallback_reason);
    progress.advance();
  }
  progress.finish();
  step_ = Step::kConverted;
}

// ---- registry --------------------------------------------------------------------------------------

namespace {

struct AlgorithmRegistry {
  std::mutex mutex;
  std::vector<AlgorithmInfo> entries;  // registration order
};

AlgorithmRegistry& algorithm_registry() {
  static AlgorithmRegistry r;
  return r;
}

}  // namespace

void register_algorithm(AlgorithmInfo info) {
  PTQ_CHECK(!info.name.empty(), "register_algorithm: the name is empty");
  PTQ_CHECK(static_cast<bool>(info.factory), "register_algorithm(\"{}\"): no factory", info.name);
  AlgorithmRegistry& r = algorithm_registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (auto& entry : r.entries) {
    if (entry.name != info.name) continue;
    entry = std::move(info);
    return;
  }
  r.entries.push_back(std::move(info));
}

bool unregister_algorithm(const std::string& name) {
  AlgorithmRegistry& r = algorithm_registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (auto it = r.entries.begin(); it != r.entries.end(); ++it) {
    if (it->name != name) continue;
    r.entries.erase(it);
    return true;
  }
  return false;
}

std::vector<AlgorithmInfo> available_algorithms() {
  AlgorithmRegistry& r = algorithm_registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.entries;
}

bool has_algorithm(const std::string& name) {
  for (const auto& info : available_algorithms())
    if (info.name == name) return true;
  return false;
}

std::unique_ptr<Algorithm> create_algorithm(const std::string& name, const PTQConfig& config) {
  std::vector<std::string> names;
  for (const auto& info : available_algorithms()) {
    if (info.name == name) return info.factory(config);
    names.push_back(info.name);
  }
  fail("unknown algorithm \"{}\"; registered: {}. Algorithms from plugins must be loaded first (ptq --plugin "
       "lib.so, or ptq::load_plugin); built-ins need ptq::register_builtin_algorithms()",
       name, names.empty() ? std::string("none") : fmt::format("\"{}\"", fmt::join(names, "\", \"")));
}

}  // namespace ptq
