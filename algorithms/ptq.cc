#include "algorithms/ptq.h"

#include "algorithms/builtin_algorithms.h"
#include "algorithms/round_to_nearest.h"
#include "framework/error.h"

namespace ptq {
PTQ::PTQ(PTQConfig config) : Algorithm(std::move(config)) { ensure_builtins_registered(); }

std::vector<std::string> PTQ::composition() const {
  std::vector<std::string> names;
  if (config_.outliers_suppression == OutliersSuppressionType::kSmooth) names.push_back("smooth_quant");
  if (config_.outliers_suppression == OutliersSuppressionType::kAwq) names.push_back("awq");
  if (config_.weight_quant_dtype != QuantDtype::kNone || !config_.layer_policies.empty())
    names.push_back(config_.precision_recovery == PrecisionRecovery::kGptq ? "gptq" : config_.rounding);
  if (config_.uses_static_activations()) names.push_back("act_calibration");
  if (config_.kvcache_quant_dtype != QuantDtype::kNone) names.push_back("kv_cache_int8");
  return names;
}

std::vector<std::shared_ptr<LayerStage>> PTQ::stages() const {
  std::vector<std::shared_ptr<LayerStage>> all;
  for (const std::string& name : composition()) {
    if (name == "rtn") {
      all.push_back(make_round_to_nearest_stage());
      continue;
    }
    if (!has_algorithm(name))
      fail("the config needs algorithm \"{}\" ({}), which is not registered in this build{}", name,
           config_.summary(), name == config_.rounding ? "; load the plugin that provides it (ptq --plugin lib.so)" : "");
    for (auto& stage : create_algorithm(name, config_)->stages()) all.push_back(stage);
  }
  return all;
}

}  // namespace ptq
