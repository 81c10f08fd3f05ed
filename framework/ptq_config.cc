// PTQConfig: enum spellings, per-layer resolution (blacklist, layer policies), algorithm arguments
// and the one-line summary. Loading and writing are in ptq_config_json.cc and
// ptq_config_property_tree.cc, the checks in ptq_config_validate.cc.
#include "framework/ptq_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join

#include <cctype>

#include "framework/error.h"
#include "framework/ptq_config_fields.h"

namespace ptq {

using nlohmann::json;
using namespace config_detail;

// Switches rather than tables so that the compiler flags a value added to an enum and not named
// here.
std::string to_string(PTQMode value) {
  switch (value) {
    case PTQMode::kQuantize:
      return "quantize";
    case PTQMode::kDeploy:
      return "deploy";
  }
  return "invalid";
}

std::string to_string(BackendTarget value) {
  switch (value) {
    case BackendTarget::kReference:
      return "reference";
    case BackendTarget::kCpu:
      return "cpu";
    case BackendTarget::kCuda:
      return "cuda";
    case BackendTarget::kAuto:
      return "auto";
  }
  return "invalid";
}

std::string to_string(QuantGranularity value) {
  switch (value) {
    case QuantGranularity::kPerTensor:
      return "per_tensor";
    case QuantGranularity::kPerChannel:
      return "per_channel";
    case QuantGranularity::kPerGroup:
      return "per_group";
    case QuantGranularity::kPerToken:
      return "per_token";
  }
  return "invalid";
}

std::string to_string(ActObserver value) {
  switch (value) {
    case ActObserver::kMinMax:
      return "minmax";
    case ActObserver::kPercentile:
      return "percentile";
    case ActObserver::kMse:
      return "mse";
  }
  return "invalid";
}

std::string to_string(OutliersSuppressionType value) {
  switch (value) {
    case OutliersSuppressionType::kNone:
      return "none";
    case OutliersSuppressionType::kSmooth:
      return "smooth";
    case OutliersSuppressionType::kAwq:
      return "awq";
  }
  return "invalid";
}

std::string to_string(PrecisionRecovery value) {
  switch (value) {
    case PrecisionRecovery::kNone:
      return "none";
    case PrecisionRecovery::kGptq:
      return "gptq";
  }
  return "invalid";
}

// ---- LayerPolicy / LayerScheme -----------------------------------------------------------------

bool LayerPolicy::overrides_scheme() const {
  return weight_quant_dtype || weight_quant_granularity || group_size || weight_symmetric ||
         act_quant_dtype || act_quant_granularity || act_symmetric;
}

bool LayerScheme::quantized() const {
  return !skip && (weight_quant_dtype != QuantDtype::kNone || act_quant_dtype != QuantDtype::kNone);
}

bool LayerScheme::group_size_fits(int64_t in_features) const {
  if (in_features <= 0) return false;
  if (weight_quant_dtype == QuantDtype::kNone ||
      weight_quant_granularity != QuantGranularity::kPerGroup)
    return true;
  return group_size > 0 && in_features % group_size == 0;
}

std::string LayerScheme::summary() const {
  if (skip) return fmt::format("skipped ({})", skip_reason);
  // Unquantized tensors count as 16-bit, the usual WxAy shorthand (W4A16).
  const auto shown_bits = [](QuantDtype dtype) {
    return dtype == QuantDtype::kNone ? 16 : bits(dtype);
  };
  std::string text =
      fmt::format("W{}A{}", shown_bits(weight_quant_dtype), shown_bits(act_quant_dtype));
  if (weight_quant_dtype != QuantDtype::kNone) {
    text += weight_quant_granularity == QuantGranularity::kPerGroup
                ? fmt::format(" g{}", group_size)
                : std::string(" per-channel");
    text += weight_symmetric ? " sym" : " asym";
  }
  if (act_quant_dtype != QuantDtype::kNone) {
    text += act_quant_granularity == QuantGranularity::kPerToken
                ? ", dynamic act"
                : (act_symmetric ? ", static act" : ", static asym act");
  }
  return text;
}

namespace config_detail {

LayerScheme apply_policy(LayerScheme base, const LayerPolicy& policy, int index) {
  base.policy_index = index;
  base.policy_pattern = policy.pattern;
  if (policy.weight_quant_dtype) base.weight_quant_dtype = *policy.weight_quant_dtype;
  if (policy.weight_quant_granularity)
    base.weight_quant_granularity = *policy.weight_quant_granularity;
  if (policy.group_size) base.group_size = *policy.group_size;
  if (policy.weight_symmetric) base.weight_symmetric = *policy.weight_symmetric;
  if (policy.act_quant_dtype) base.act_quant_dtype = *policy.act_quant_dtype;
  if (policy.act_quant_granularity) base.act_quant_granularity = *policy.act_quant_granularity;
  if (policy.act_symmetric) base.act_symmetric = *policy.act_symmetric;
  return base;
}

std::regex compile_policy_pattern(const LayerPolicy& policy, size_t index,
                                  const std::string& source) {
  // std::regex compiles by recursive descent and expands counted repetitions into copies of the
  // automaton, so a hostile pattern ("((((..." or "a{99999999}") could exhaust the stack or memory.
  // Layer patterns are short; these bounds are far above any real one.
  constexpr size_t kMaxPatternChars = 1024;
  constexpr unsigned long kMaxRepeat = 10000;
  PTQ_CHECK(policy.pattern.size() <= kMaxPatternChars,
            "key \"layer_policies[{}].pattern\" in {}: {} characters, more than the {} allowed",
            index, source, policy.pattern.size(), kMaxPatternChars);
  const std::string& p = policy.pattern;
  // Nested counts multiply ("(a{100}){100}"): bound their product, which over-counts sequential
  // ones.
  unsigned long product = 1;
  const auto digit = [&](size_t i) {
    return i < p.size() && std::isdigit(static_cast<unsigned char>(p[i]));
  };
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] != '{') continue;
    for (size_t j = i + 1; digit(j) || (j < p.size() && p[j] == ',');) {  // "{n}", "{n,}", "{n,m}"
      if (!digit(j)) {
        ++j;
        continue;
      }
      size_t k = j;
      while (digit(k)) ++k;
      const unsigned long count = k - j <= 4 ? std::stoul(p.substr(j, k - j)) : kMaxRepeat + 1;
      product *= std::max(count, 1UL);
      PTQ_CHECK(product <= kMaxRepeat,
                "key \"layer_policies[{}].pattern\" in {}: \"{}\" repeats more than {} times",
                index, source, p, kMaxRepeat);
      j = k;
    }
  }
  try {
    return std::regex(policy.pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    fail("key \"layer_policies[{}].pattern\" in {}: \"{}\" is not a valid ECMAScript regex ({})",
         index, source, policy.pattern, e.what());
  }
}

json merge_algo_args(const json& user) {
  json merged = PTQConfig::default_algo_args();
  if (!user.is_object()) return merged;
  for (const auto& [name, args] : user.items()) {
    if (!merged.contains(name) || !args.is_object()) {
      merged[name] = args;
      continue;
    }
    for (const auto& [key, value] : args.items()) {
      // Keep the canonical form stable: a float parameter written as 1 is stored as 1.0.
      const json& fallback = merged[name].contains(key) ? merged[name][key] : value;
      merged[name][key] =
          fallback.is_number_float() && value.is_number() ? json(value.get<double>()) : value;
    }
  }
  return merged;
}

}  // namespace config_detail

// ---- PTQConfig: resolution ---------------------------------------------------------------------

LayerScheme PTQConfig::default_scheme() const {
  LayerScheme scheme;
  scheme.weight_quant_dtype = weight_quant_dtype;
  scheme.weight_quant_granularity = weight_quant_granularity;
  scheme.group_size = group_size;
  scheme.weight_symmetric = weight_symmetric;
  scheme.act_quant_dtype = act_quant_dtype;
  scheme.act_quant_granularity = act_quant_granularity;
  scheme.act_symmetric = act_symmetric;
  return scheme;
}

LayerScheme PTQConfig::scheme_for(const std::string& layer_name) const {
  // Every matching policy, so that an ambiguous config fails on the layer that shows it.
  int match = -1;
  for (size_t i = 0; i < layer_policies.size(); ++i) {
    if (!std::regex_search(layer_name, compile_policy_pattern(layer_policies[i], i, "PTQConfig")))
      continue;
    PTQ_CHECK(
        match < 0,
        "layer \"{}\" matches two layer_policies: [{}] pattern \"{}\" and [{}] pattern \"{}\"; a "
        "layer may match one pattern only (make the patterns disjoint, e.g. anchor them with ^ "
        "and $)",
        layer_name, match, layer_policies[match].pattern, i, layer_policies[i].pattern);
    match = static_cast<int>(i);
  }

  LayerScheme scheme = default_scheme();
  for (const std::string& entry : opname_blacklist) {
    if (entry.empty() || layer_name.find(entry) == std::string::npos) continue;
    // A policy that sets a scheme for a blacklisted layer is a contradiction, not a preference.
    PTQ_CHECK(
        match < 0 || !layer_policies[match].overrides_scheme(),
        "layer \"{}\" is in opname_blacklist (entry \"{}\") but layer_policies[{}] pattern "
        "\"{}\" sets its scheme; remove the entry from opname_blacklist to quantize the layer "
        "(opname_blacklist: [] quantizes lm_head too), or drop the policy",
        layer_name, entry, match, match >= 0 ? layer_policies[match].pattern : "");
    scheme.skip = true;
    scheme.skip_reason = fmt::format("opname_blacklist entry \"{}\"", entry);
    return scheme;
  }
  if (match < 0) return scheme;
  const LayerPolicy& policy = layer_policies[match];
  if (policy.skips()) {
    scheme.skip = true;
    scheme.policy_index = match;
    scheme.policy_pattern = policy.pattern;
    scheme.skip_reason =
        fmt::format("layer_policies[{}] (pattern \"{}\") sets skip", match, policy.pattern);
    return scheme;
  }
  return apply_policy(scheme, policy, match);
}

bool PTQConfig::group_size_fits(int64_t in_features) const {
  return default_scheme().group_size_fits(in_features);
}

bool PTQConfig::needs_calibration() const {
  if (mode == PTQMode::kDeploy) return false;
  if (outliers_suppression != OutliersSuppressionType::kNone ||
      precision_recovery != PrecisionRecovery::kNone)
    return true;
  if (kvcache_quant_dtype != QuantDtype::kNone &&
      kvcache_quant_granularity != QuantGranularity::kPerToken)
    return true;
  // Static activation scales come from calibration.
  return uses_static_activations();
}

bool PTQConfig::uses_static_activations() const {
  // int8 is the only activation dtype validate() accepts; per-tensor is the static granularity.
  const auto is_static_act = [](const LayerScheme& s) {
    return s.act_quant_dtype == QuantDtype::kInt8 &&
           s.act_quant_granularity == QuantGranularity::kPerTensor;
  };
  if (is_static_act(default_scheme())) return true;
  // Layer names are not known here: every policy that does not skip may match some layer, and
  // resolves the way scheme_for resolves it (apply_policy on the config-wide scheme).
  for (size_t i = 0; i < layer_policies.size(); ++i)
    if (!layer_policies[i].skips() &&
        is_static_act(apply_policy(default_scheme(), layer_policies[i], static_cast<int>(i))))
      return true;
  return false;
}

// ---- PTQConfig: algorithm arguments ------------------------------------------------------------

const json& PTQConfig::default_algo_args() {
  // The defaults follow the reference implementations: SmoothQuant's alpha 0.5; AutoAWQ's 20-point
  // scale grid, duo scaling and clip search (shrinking the range by up to 45%, on 512 tokens);
  // AutoGPTQ's 1% dampening and 128-column blocks. rtn.clip_ratio scales the min/max range before
  // rounding (1.0: no clipping).
  static const json defaults = {
      {"smooth_quant", {{"alpha", 0.5}, {"smooth_vo", false}, {"smooth_up_down", false}}},
      {"awq",
       {{"grid", 20},
        {"duo_scaling", true},
        {"clip_search", true},
        {"clip_max_shrink", 0.45},
        {"clip_tokens", 512}}},
      {"gptq",
       {{"damp_percent", 0.01},
        {"block_size", 128},
        {"act_order", false},
        {"static_groups", false},
        {"mse", true}}},
      {"rtn", {{"clip_ratio", 1.0}}},
  };
  return defaults;
}

json PTQConfig::algo_args_for(const std::string& algorithm) const {
  const json merged = merge_algo_args(algo_args);
  return merged.contains(algorithm) ? merged.at(algorithm) : json::object();
}

// ---- PTQConfig: summary and equality -----------------------------------------------------------

std::string PTQConfig::summary() const {
  std::vector<std::string> parts;
  const LayerScheme scheme = default_scheme();
  if (scheme.quantized()) parts.push_back(scheme.summary());
  if (outliers_suppression == OutliersSuppressionType::kSmooth)
    parts.push_back(
        fmt::format("SmoothQuant alpha={}", algo_args_for("smooth_quant").at("alpha").dump()));
  if (outliers_suppression == OutliersSuppressionType::kAwq) parts.push_back("AWQ");
  if (precision_recovery == PrecisionRecovery::kGptq) parts.push_back("GPTQ");
  if (weight_quant_dtype != QuantDtype::kNone &&
      outliers_suppression == OutliersSuppressionType::kNone &&
      precision_recovery == PrecisionRecovery::kNone)
    parts.push_back(rounding == "rtn" ? "RTN" : rounding);
  if (kvcache_quant_dtype != QuantDtype::kNone)
    parts.push_back(fmt::format(
        "KV {} {}", to_string(kvcache_quant_dtype),
        kvcache_quant_granularity == QuantGranularity::kPerToken ? "dynamic" : "static"));
  if (!layer_policies.empty())
    parts.push_back(fmt::format("{} layer {}", layer_policies.size(),
                                layer_policies.size() == 1 ? "policy" : "policies"));
  if (parts.empty()) parts.push_back("no quantization");
  if (mode == PTQMode::kDeploy) parts.push_back("deploy");
  return fmt::format("{}", fmt::join(parts, ", "));
}

bool operator==(const PTQConfig& a, const PTQConfig& b) { return a.to_json() == b.to_json(); }
bool operator!=(const PTQConfig& a, const PTQConfig& b) { return !(a == b); }

}  // namespace ptq
