// Private to the ptq_config*.cc files: the one list of config keys and the members they fill, the
// values each key allows, and the message helpers that make every format's errors read alike.
//
// The JSON reader, the JSON writer and the INI/XML/INFO converter are visitors over visit_fields,
// so a new key is one line here and every format learns it at once.
#pragma once

#include <optional>
#include <regex>
#include <string>
#include <type_traits>
#include <vector>

#include "framework/ptq_config.h"

namespace ptq::config_detail {

// ---- enum values ------------------------------------------------------------------------------
// Spellings are to_string(value) (ptq_config.h, quant_types.h); a key's allowed values are listed
// below, so parsing a name is a search of that list and the error can print it.

template <class E>
std::optional<E> enum_parse(const std::string& name, const std::vector<E>& allowed) {
  for (E value : allowed)
    if (to_string(value) == name) return value;
  return std::nullopt;
}

// The values each key allows (several keys share an enum but not its whole range).
inline const std::vector<PTQMode> kModes = {PTQMode::kQuantize, PTQMode::kDeploy};
inline const std::vector<BackendTarget> kBackends = {BackendTarget::kReference, BackendTarget::kCpu,
                                                     BackendTarget::kCuda, BackendTarget::kAuto};
inline const std::vector<QuantDtype> kWeightDTypes = {QuantDtype::kInt8, QuantDtype::kInt4,
                                                      QuantDtype::kInt3, QuantDtype::kNone};
inline const std::vector<QuantDtype> kActDTypes = {QuantDtype::kInt8, QuantDtype::kNone};
inline const std::vector<QuantGranularity> kWeightGranularities = {QuantGranularity::kPerChannel,
                                                                   QuantGranularity::kPerGroup};
inline const std::vector<QuantGranularity> kActGranularities = {QuantGranularity::kPerTensor,
                                                                QuantGranularity::kPerToken};
inline const std::vector<QuantGranularity> kKVGranularities = {QuantGranularity::kPerChannel,
                                                               QuantGranularity::kPerToken};
inline const std::vector<ActObserver> kObservers = {ActObserver::kMinMax, ActObserver::kPercentile,
                                                    ActObserver::kMse};
inline const std::vector<OutliersSuppressionType> kOutliersSuppressions = {
    OutliersSuppressionType::kNone, OutliersSuppressionType::kSmooth,
    OutliersSuppressionType::kAwq};
inline const std::vector<PrecisionRecovery> kPrecisionRecoveries = {PrecisionRecovery::kNone,
                                                                    PrecisionRecovery::kGptq};

// Layer-policy members are optional (unset: the config-wide value applies).
template <class T>
struct IsOptional : std::false_type {};
template <class T>
struct IsOptional<std::optional<T>> : std::true_type {};

// ---- the keys ----------------------------------------------------------------------------------
// A visitor is called as v(key, member) or, for enum members, v(key, member, allowed_values).
// `Self` is the struct or its const version, so readers and writers share these lists.

template <class Self>
using IfConfig = std::enable_if_t<std::is_same_v<std::remove_const_t<Self>, PTQConfig>>;
template <class Self>
using IfCalibration =
    std::enable_if_t<std::is_same_v<std::remove_const_t<Self>, CalibrationConfig>>;
template <class Self>
using IfPolicy = std::enable_if_t<std::is_same_v<std::remove_const_t<Self>, LayerPolicy>>;

template <class Self, class Visitor, IfConfig<Self>* = nullptr>
void visit_fields(Self& c, Visitor& v) {
  v("version", c.version);
  v("mode", c.mode, kModes);
  v("backend", c.backend, kBackends);
  v("opname_blacklist", c.opname_blacklist);
  v("weight_quant_dtype", c.weight_quant_dtype, kWeightDTypes);
  v("weight_quant_granularity", c.weight_quant_granularity, kWeightGranularities);
  v("group_size", c.group_size);
  v("weight_symmetric", c.weight_symmetric);
  v("act_quant_dtype", c.act_quant_dtype, kActDTypes);
  v("act_quant_granularity", c.act_quant_granularity, kActGranularities);
  v("act_symmetric", c.act_symmetric);
  v("act_observer", c.act_observer, kObservers);
  v("act_percentile", c.act_percentile);
  v("kvcache_quant_dtype", c.kvcache_quant_dtype, kActDTypes);
  v("kvcache_quant_granularity", c.kvcache_quant_granularity, kKVGranularities);
  v("outliers_suppression", c.outliers_suppression, kOutliersSuppressions);
  v("precision_recovery", c.precision_recovery, kPrecisionRecoveries);
  v("rounding", c.rounding);
  v("algo_args", c.algo_args);
  v("calibration", c.calibration);
  v("layer_policies", c.layer_policies);
}

template <class Self, class Visitor, IfCalibration<Self>* = nullptr>
void visit_fields(Self& c, Visitor& v) {
  v("dataset", c.dataset);
  v("samples", c.samples);
  v("seq_len", c.seq_len);
  v("seed", c.seed);
}

template <class Self, class Visitor, IfPolicy<Self>* = nullptr>
void visit_fields(Self& p, Visitor& v) {
  v("pattern", p.pattern);
  v("weight_quant_dtype", p.weight_quant_dtype, kWeightDTypes);
  v("weight_quant_granularity", p.weight_quant_granularity, kWeightGranularities);
  v("group_size", p.group_size);
  v("weight_symmetric", p.weight_symmetric);
  v("act_quant_dtype", p.act_quant_dtype, kActDTypes);
  v("act_quant_granularity", p.act_quant_granularity, kActGranularities);
  v("act_symmetric", p.act_symmetric);
  v("skip", p.skip);
}

// ---- messages ----------------------------------------------------------------------------------

// "calibration" + "samples" -> "calibration.samples"; "" + "mode" -> "mode".
std::string key_path(const std::string& parent, const std::string& key);
// `"a", "b", "c"`.
std::string quoted_list(const std::vector<std::string>& words);
// A JSON value as it appears in a message, cut to a readable length.
std::string short_dump(const nlohmann::json& value);
// The candidate closest to `word` by edit distance when it is close enough to be a likely typo.
std::optional<std::string> closest_match(const std::string& word,
                                         const std::vector<std::string>& candidates);

// key "group_size" in cfg.json: expected an integer, got "128"
[[noreturn]] void fail_type(const std::string& source, const std::string& path,
                            const std::string& expected, const std::string& got);
// unknown key "weight_quant_dtyp" in cfg.json; did you mean "weight_quant_dtype"?
[[noreturn]] void fail_unknown_key(const std::string& source, const std::string& parent,
                                   const std::string& key, const std::vector<std::string>& known);
// key "weight_quant_dtype" in cfg.json: "int2" is not allowed; allowed values: "int8", ... ; did
// you mean ..?
[[noreturn]] void fail_value(const std::string& source, const std::string& path,
                             const std::string& got, const std::vector<std::string>& allowed);

template <class E>
std::vector<std::string> enum_names(const std::vector<E>& values) {
  std::vector<std::string> names;
  for (E value : values) names.push_back(to_string(value));
  return names;
}

// The version check comes before any other, so a newer file is refused with the right reason rather
// than for a key this build does not know.
void check_version(int64_t version, const std::string& source);

// ---- shared pieces of resolution and validation -------------------------------------------------

// `base` with the fields that `policy` sets on top (skip is not a scheme field; callers handle it).
LayerScheme apply_policy(LayerScheme base, const LayerPolicy& policy, int index);
// Compiles layer_policies[index].pattern; a bad regex throws ptq::Error naming the pattern.
std::regex compile_policy_pattern(const LayerPolicy& policy, size_t index,
                                  const std::string& source);
// default_algo_args() with `user` on top, algorithm by algorithm (plugin entries copied as they
// are).
nlohmann::json merge_algo_args(const nlohmann::json& user);

// ---- INI / XML / INFO ---------------------------------------------------------------------------

// Parses `text` with Boost.PropertyTree (`format`: "ini", "xml" or "info") and converts the tree to
// the JSON that from_json reads, typing each value by its key. Values of unknown keys are typed by
// their look (true/false, integer, number, else string) so that from_json reports the key itself.
nlohmann::json property_tree_to_json(const std::string& text, const std::string& format,
                                     const std::string& source);

}  // namespace ptq::config_detail
