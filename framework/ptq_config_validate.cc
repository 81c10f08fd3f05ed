// PTQConfig::validate: value ranges, layer policies, algorithm arguments, and the combinations that
// cannot work (Golden Stick's rules plus ours). Each message names the key, the value received and
// what would be accepted; docs/CONFIG.md lists the same rules with their reasons.
#include <cmath>
#include <limits>

#include "framework/error.h"
#include "framework/log.h"
#include "framework/ptq_config.h"
#include "framework/ptq_config_fields.h"

namespace ptq {

using nlohmann::json;
using namespace config_detail;

namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

// Smallest group: below 16 the scales and zero points cost more than the bits they save.
constexpr int64_t kMinGroupSize = 16;

template <class E>
std::string quoted(E value) {
  return fmt::format("\"{}\"", to_string(value));
}

bool is_power_of_two(int64_t value) { return value > 0 && (value & (value - 1)) == 0; }

void check_positive(int64_t value, const std::string& path, const std::string& source) {
  if (value < 1) fail_type(source, path, "a positive integer", std::to_string(value));
}

// ---- single keys -------------------------------------------------------------------------------

void check_single_keys(const PTQConfig& c, const std::string& source) {
  check_positive(c.group_size, "group_size", source);
  if (!(c.act_percentile > 50.0 && c.act_percentile <= 100.0))
    fail_type(source, "act_percentile", "a percentile in (50, 100]",
              fmt::format("{}", c.act_percentile));
  check_positive(c.calibration.samples, "calibration.samples", source);
  check_positive(c.calibration.seq_len, "calibration.seq_len", source);
  if (c.calibration.seed < 0)
    fail_type(source, "calibration.seed", "an integer >= 0", std::to_string(c.calibration.seed));
  for (size_t i = 0; i < c.opname_blacklist.size(); ++i)
    PTQ_CHECK(
        !c.opname_blacklist[i].empty(),
        "key \"opname_blacklist[{}]\" in {}: an empty entry would match every layer; remove it", i,
        source);
}

// ---- layer policies ----------------------------------------------------------------------------

void check_policies(const PTQConfig& c, const std::string& source) {
  for (size_t i = 0; i < c.layer_policies.size(); ++i) {
    const LayerPolicy& policy = c.layer_policies[i];
    PTQ_CHECK(
        !policy.pattern.empty(),
        "key \"layer_policies[{}].pattern\" in {}: missing or empty; every layer policy needs a "
        "pattern (an ECMAScript regex searched in the layer name)",
        i, source);
    compile_policy_pattern(policy, i, source);
    if (policy.group_size)
      check_positive(*policy.group_size, fmt::format("layer_policies[{}].group_size", i), source);
    PTQ_CHECK(
        !(policy.skips() && policy.overrides_scheme()),
        "{}: layer_policies[{}] (pattern \"{}\") sets skip and scheme fields; a skipped layer "
        "stays in float, so drop either \"skip\" or the other fields",
        source, i, policy.pattern);
    PTQ_CHECK(policy.skips() || policy.overrides_scheme(),
              "{}: layer_policies[{}] (pattern \"{}\") sets nothing besides its pattern; add "
              "\"skip\": true or the fields to override (weight_quant_dtype, "
              "weight_quant_granularity, group_size, weight_symmetric, act_quant_dtype, "
              "act_quant_granularity, act_symmetric)",
              source, i, policy.pattern);
    for (size_t j = 0; j < i; ++j)
      PTQ_CHECK(
          c.layer_policies[j].pattern != policy.pattern,
          "{}: layer_policies[{}] and layer_policies[{}] have the same pattern \"{}\"; a layer "
          "may match one policy only, so merge them",
          source, j, i, policy.pattern);
  }
}

// ---- algorithm arguments -----------------------------------------------------------------------

// Allowed ranges of the numeric parameters of the built-in algorithms.
struct ArgRange {
  const char* algorithm;
  const char* key;
  double min;
  double max;
  bool min_open;
  bool max_open;
};
constexpr ArgRange kArgRanges[] = {
    {"smooth_quant", "alpha", 0.0, 1.0, false, false},  // migration strength: 0 = none, 1 = all
    {"awq", "grid", 1.0, kInfinity, false, false},      // scale candidates tried per group
    {"awq", "clip_max_shrink", 0.0, 1.0, false, true},  // shrinking the range by 100% zeroes it
    {"awq", "clip_tokens", 1.0, kInfinity, false, false},
    {"gptq", "damp_percent", 0.0, 1.0, true, false},  // > 0 keeps the Hessian invertible
    {"gptq", "block_size", 1.0, kInfinity, false, false},
    {"rtn", "clip_ratio", 0.0, 1.0, true, false},
};

std::string interval_text(const ArgRange& range) {
  if (range.max == kInfinity) return fmt::format("{} {}", range.min_open ? ">" : ">=", range.min);
  return fmt::format("{}{}, {}{}", range.min_open ? "(" : "[", range.min, range.max,
                     range.max_open ? ")" : "]");
}

void check_known_algorithm_args(const std::string& name, const json& given, const json& expected,
                                const std::string& source) {
  const std::string path = key_path("algo_args", name);
  std::vector<std::string> keys;
  for (const auto& item : expected.items()) keys.push_back(item.key());
  for (const auto& [key, value] : given.items()) {
    if (!expected.contains(key)) fail_unknown_key(source, path, key, keys);
    const json& fallback = expected.at(key);
    const std::string key_name = key_path(path, key);
    if (fallback.is_boolean() && !value.is_boolean())
      fail_type(source, key_name, "true or false", short_dump(value));
    if (fallback.is_number_integer() && !value.is_number_integer())
      fail_type(source, key_name, "an integer", short_dump(value));
    if (fallback.is_number_float() && !value.is_number())
      fail_type(source, key_name, "a number", short_dump(value));
  }
}

void check_algo_args(const json& args, const std::string& source) {
  if (!args.is_object()) fail_type(source, "algo_args", "an object", short_dump(args));
  const json& defaults = PTQConfig::default_algo_args();
  std::vector<std::string> builtin;
  for (const auto& item : defaults.items()) builtin.push_back(item.key());
  for (const auto& [name, given] : args.items()) {
    if (!given.is_object())
      fail_type(source, key_path("algo_args", name), "an object of parameters", short_dump(given));
    if (defaults.contains(name)) {
      check_known_algorithm_args(name, given, defaults.at(name), source);
    } else if (const auto near = closest_match(name, builtin)) {
      // Plugins may use any name, so a near miss is only a warning.
      log_warning(
          "{}: algo_args.{} is not a built-in algorithm (a plugin's?); did you mean \"{}\"?",
          source, name, *near);
    }
  }
  const json merged = merge_algo_args(args);
  for (const ArgRange& range : kArgRanges) {
    const json& value = merged.at(range.algorithm).at(range.key);
    const double v = value.get<double>();
    const bool ok = (range.min_open ? v > range.min : v >= range.min) &&
                    (range.max_open ? v < range.max : v <= range.max);
    if (!ok)
      fail_type(source, fmt::format("algo_args.{}.{}", range.algorithm, range.key),
                fmt::format("a value in {}", interval_text(range)), value.dump());
  }
}

// ---- combinations ------------------------------------------------------------------------------

// The rules one layer's scheme must satisfy; `where` starts every message ("cfg.json: " or
// "cfg.json: layer_policies[1] (pattern "..."), with the config-wide keys: ").
void check_scheme(const LayerScheme& s, const PTQConfig& c, const std::string& where) {
  const QuantDtype w = s.weight_quant_dtype;
  const bool act_int8 = s.act_quant_dtype == QuantDtype::kInt8;
  const bool per_token = s.act_quant_granularity == QuantGranularity::kPerToken;

  PTQ_CHECK(
      !per_token || act_int8,
      "{}act_quant_granularity \"per_token\" (dynamic) needs act_quant_dtype \"int8\", got {}; set "
      "act_quant_dtype to \"int8\" or act_quant_granularity to \"per_tensor\"",
      where, quoted(s.act_quant_dtype));
  PTQ_CHECK(!act_int8 || w != QuantDtype::kNone,
            "{}act_quant_dtype \"int8\" with weight_quant_dtype \"none\" is activation-only "
            "quantization, which is not supported; quantize the weights too (weight_quant_dtype "
            "\"int8\") or set act_quant_dtype to \"none\"",
            where);
  PTQ_CHECK(
      !(act_int8 && per_token) || s.act_symmetric,
      "{}act_quant_granularity \"per_token\" (dynamic) is symmetric only: act_symmetric must be "
      "true, got false (static \"per_tensor\" activations may be asymmetric)",
      where);
  if (w == QuantDtype::kNone) return;

  PTQ_CHECK(
      w != QuantDtype::kInt3 || s.weight_quant_granularity == QuantGranularity::kPerGroup,
      "{}weight_quant_dtype \"int3\" needs weight_quant_granularity \"per_group\", got {}; 3-bit "
      "weights are only usable with small groups",
      where, quoted(s.weight_quant_granularity));
  PTQ_CHECK(
      s.weight_quant_granularity != QuantGranularity::kPerGroup ||
          (is_power_of_two(s.group_size) && s.group_size >= kMinGroupSize),
      "{}weight_quant_granularity \"per_group\" needs group_size to be a power of two >= {} (16, "
      "32, 64, 128, 256, ...), got {}",
      where, kMinGroupSize, s.group_size);
  PTQ_CHECK(w != QuantDtype::kInt3 || !act_int8,
            "{}weight_quant_dtype \"int3\" is weight-only: act_quant_dtype must be \"none\", got "
            "\"int8\"",
            where);
  PTQ_CHECK(
      !(w == QuantDtype::kInt8 && act_int8) ||
          s.weight_quant_granularity == QuantGranularity::kPerChannel,
      "{}W8A8 (weight_quant_dtype \"int8\", act_quant_dtype \"int8\") needs "
      "weight_quant_granularity \"per_channel\", got {}; int8 GEMM kernels scale whole output "
      "channels",
      where, quoted(s.weight_quant_granularity));
  PTQ_CHECK(
      !act_int8 || s.weight_symmetric,
      "{}int8 activations need weight_symmetric true, got false; integer GEMM kernels take no "
      "weight zero point",
      where);
  if (w == QuantDtype::kInt4 && act_int8) {
    PTQ_CHECK(per_token,
              "{}W4A8 (weight_quant_dtype \"int4\", act_quant_dtype \"int8\") needs "
              "act_quant_granularity \"per_token\", got {}",
              where, quoted(s.act_quant_granularity));
    PTQ_CHECK(
        c.precision_recovery == PrecisionRecovery::kGptq,
        "{}W4A8 (weight_quant_dtype \"int4\", act_quant_dtype \"int8\") needs precision_recovery "
        "\"gptq\", got {}; round-to-nearest loses too much accuracy there",
        where, quoted(c.precision_recovery));
  }
  PTQ_CHECK(!(c.outliers_suppression == OutliersSuppressionType::kAwq && act_int8),
            "{}outliers_suppression \"awq\" is for weight-only quantization (W8A16, W4A16, W3A16): "
            "act_quant_dtype must be \"none\", got \"int8\"; use \"smooth\" with int8 activations",
            where);
  PTQ_CHECK(
      !(c.precision_recovery == PrecisionRecovery::kGptq && act_int8 && w == QuantDtype::kInt8),
      "{}precision_recovery \"gptq\" with W8A8 (weight_quant_dtype \"int8\", act_quant_dtype "
      "\"int8\") is not supported; GPTQ serves weight-only schemes and W4A8",
      where);
}

// Rules on the config-wide keys only.
void check_config_wide(const PTQConfig& c, const std::string& source) {
  PTQ_CHECK(
      c.kvcache_quant_granularity != QuantGranularity::kPerToken ||
          c.kvcache_quant_dtype == QuantDtype::kInt8,
      "{}: kvcache_quant_granularity \"per_token\" (dynamic) needs kvcache_quant_dtype \"int8\", "
      "got {}",
      source, quoted(c.kvcache_quant_dtype));
  // SmoothQuant divides activations by per-channel scales and multiplies them into the weights: it
  // flattens activation outliers at the weights' expense, a loss when activations stay in float.
  PTQ_CHECK(
      c.outliers_suppression != OutliersSuppressionType::kSmooth ||
          c.act_quant_dtype == QuantDtype::kInt8,
      "{}: outliers_suppression \"smooth\" needs act_quant_dtype \"int8\", got {}; SmoothQuant "
      "only helps quantized activations; use \"awq\" for weight-only quantization",
      source, quoted(c.act_quant_dtype));
  PTQ_CHECK(c.outliers_suppression != OutliersSuppressionType::kAwq ||
                c.weight_quant_dtype != QuantDtype::kNone,
            "{}: outliers_suppression \"awq\" needs quantized weights, but weight_quant_dtype is "
            "\"none\"",
            source);
  PTQ_CHECK(
      c.precision_recovery != PrecisionRecovery::kGptq || c.weight_quant_dtype != QuantDtype::kNone,
      "{}: precision_recovery \"gptq\" needs quantized weights, but weight_quant_dtype is "
      "\"none\"",
      source);
  PTQ_CHECK(!c.rounding.empty(), "{}: key \"rounding\" is empty; expected \"rtn\" or a plugin algorithm's name",
            source);
  PTQ_CHECK(c.precision_recovery != PrecisionRecovery::kGptq || c.rounding == "rtn",
            "{}: precision_recovery \"gptq\" rounds the weights itself, so \"rounding\" must be \"rtn\" "
            "(got \"{}\")",
            source, c.rounding);
}

// NaN and infinity have no JSON spelling (dump() writes null), so a config holding one would not
// survive being saved into a checkpoint. Plugin arguments are free-form, hence the walk.
void check_finite_numbers(const json& value, const std::string& path, const std::string& source) {
  if (value.is_number_float() && !std::isfinite(value.get<double>()))
    fail_type(source, path, "a finite number", fmt::format("{}", value.get<double>()));
  if (value.is_object())
    for (const auto& [key, item] : value.items())
      check_finite_numbers(item, key_path(path, key), source);
  if (value.is_array())
    for (size_t i = 0; i < value.size(); ++i)
      check_finite_numbers(value[i], fmt::format("{}[{}]", path, i), source);
}

}  // namespace

void PTQConfig::validate(const std::string& source) const {
  check_version(version, source);
  check_finite_numbers(algo_args, "algo_args", source);
  check_single_keys(*this, source);
  check_policies(*this, source);
  check_algo_args(algo_args, source);
  check_config_wide(*this, source);
  check_scheme(default_scheme(), *this, source + ": ");
  // A policy's fields combine with the config-wide ones; the combination must hold up as well.
  // DEPLOY mode checks the same: it must build the structure a QUANTIZE run produced.
  for (size_t i = 0; i < layer_policies.size(); ++i) {
    const LayerPolicy& policy = layer_policies[i];
    if (policy.skips()) continue;
    check_scheme(apply_policy(default_scheme(), policy, static_cast<int>(i)), *this,
                 fmt::format("{}: layer_policies[{}] (pattern \"{}\"), with the config-wide keys: ",
                             source, i, policy.pattern));
  }
}

}  // namespace ptq
