// PTQConfig: the quantization recipe a user writes (what gets quantized to which type, by which
// algorithms, calibrated on what), in MindSpore Golden Stick's vocabulary. The same keys load from
// JSON, INI, XML and INFO files and go through one validation, so every format gives the same
// errors. docs/CONFIG.md is the user's reference; configs/ holds ready recipes.
//
// No LibTorch here on purpose: the CLI, reports and tests read and check configs without a network.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "framework/quant_types.h"

namespace ptq {

// The newest config format this build reads (the "version" key). Bump it when a key changes
// meaning, so an older ptq refuses a newer file instead of misreading it.
constexpr int kPTQConfigVersion = 1;

// The enums carry Golden Stick's names (PTQMode, BackendTarget, QuantGranularity,
// OutliersSuppressionType, PrecisionRecovery). Dtypes are framework/quant_types.h's QuantDtype
// (none | int8 | int4 | int3; int3 is for AWQ/GPTQ 3-bit weights, stored in 4-bit containers).

// QUANTIZE calibrates and quantizes a float network; DEPLOY only builds the quantized structure (no
// calibration) so that a quantized checkpoint can be loaded into it.
enum class PTQMode { kQuantize, kDeploy };
// Which kernels convert() asks for; to_string() gives the name the backend registry
// (framework/backend.h: select_backend) takes.
enum class BackendTarget { kReference, kCpu, kCuda, kAuto };
// One enum for every tensor kind; each key allows a subset (weights: per_channel | per_group;
// activations: per_tensor (static) | per_token (dynamic); KV cache: per_channel (static) |
// per_token).
enum class QuantGranularity { kPerTensor, kPerChannel, kPerGroup, kPerToken };
// How static activation (and static KV-cache) ranges are taken from calibration data.
enum class ActObserver { kMinMax, kPercentile, kMse };
enum class OutliersSuppressionType { kNone, kSmooth, kAwq };
enum class PrecisionRecovery { kNone, kGptq };

// The JSON spelling of each value: "quantize", "cuda", "per_group", "minmax", "smooth", "gptq".
// (to_string(QuantDtype) is in quant_types.h: "int4", "none", ...)
std::string to_string(PTQMode value);
std::string to_string(BackendTarget value);
std::string to_string(QuantGranularity value);
std::string to_string(ActObserver value);
std::string to_string(OutliersSuppressionType value);
std::string to_string(PrecisionRecovery value);

struct CalibrationConfig {
  // A text file. "" means: the CLI's --calib option, else ../shared/data/corpus/train_00.txt.
  std::string dataset;
  int64_t samples = 128;  // sequences
  int64_t seq_len = 512;  // tokens per sequence
  int64_t seed = 0;       // picks the samples, so two runs calibrate on the same text
};

// One entry of "layer_policies": layers whose name the regex `pattern` matches (std::regex_search,
// ECMAScript; anchor with ^ and $ for whole names) get the fields that are set here instead of the
// config-wide ones, or are skipped. A layer may match at most one policy.
struct LayerPolicy {
  std::string pattern;
  std::optional<QuantDtype> weight_quant_dtype;
  std::optional<QuantGranularity> weight_quant_granularity;
  std::optional<int64_t> group_size;
  std::optional<bool> weight_symmetric;
  std::optional<QuantDtype> act_quant_dtype;
  std::optional<QuantGranularity> act_quant_granularity;
  std::optional<bool> act_symmetric;
  std::optional<bool> skip;

  bool skips() const { return skip.value_or(false); }
  // Whether any field besides pattern and skip is set.
  bool overrides_scheme() const;
};

// The effective scheme of one linear layer, as PTQConfig::scheme_for resolves it. Field names are
// the config keys they come from.
struct LayerScheme {
  // Skipped layers stay in float; skip_reason says why, for the run summary (which reports every
  // fallback): `opname_blacklist entry "lm_head"` or `layer_policies[2] (pattern "...") sets skip`.
  bool skip = false;
  std::string skip_reason;
  // The layer policy that shaped this scheme: index into layer_policies and its pattern; -1 and ""
  // when the config-wide fields apply.
  int policy_index = -1;
  std::string policy_pattern;

  QuantDtype weight_quant_dtype = QuantDtype::kInt8;
  QuantGranularity weight_quant_granularity = QuantGranularity::kPerChannel;
  int64_t group_size = 128;  // only meaningful with kPerGroup
  bool weight_symmetric = true;
  QuantDtype act_quant_dtype = QuantDtype::kNone;
  QuantGranularity act_quant_granularity = QuantGranularity::kPerTensor;
  bool act_symmetric = true;

  // Not skipped, and weights or activations are quantized.
  bool quantized() const;
  // Whether a layer with this many input features can use the scheme: with per_group weights the
  // group size must divide it; any size fits otherwise.
  bool group_size_fits(int64_t in_features) const;
  // "W4A16 g128 asym", "W8A8 per-channel sym, static act", "skipped (opname_blacklist entry ...)".
  std::string summary() const;
};

struct PTQConfig {
  int version = kPTQConfigVersion;
  PTQMode mode = PTQMode::kQuantize;
  BackendTarget backend = BackendTarget::kAuto;
  // Substrings: a layer whose name contains one stays in float. lm_head is kept by default because
  // quantizing it costs the most accuracy per byte saved; set [] to quantize it.
  std::vector<std::string> opname_blacklist = {"lm_head"};

  QuantDtype weight_quant_dtype = QuantDtype::kInt8;
  QuantGranularity weight_quant_granularity = QuantGranularity::kPerChannel;
  int64_t group_size = 128;  // per_group only: any power of two >= 16
  // Symmetric by default for every dtype (no zero points; what the int8 GEMM kernels need). The
  // 4-bit recipes in configs/ set false: a zero point buys back much of int4's accuracy at no
  // kernel cost.
  bool weight_symmetric = true;

  QuantDtype act_quant_dtype = QuantDtype::kNone;
  QuantGranularity act_quant_granularity = QuantGranularity::kPerTensor;
  bool act_symmetric = true;  // only static per-tensor activations may be asymmetric
  ActObserver act_observer = ActObserver::kMinMax;
  double act_percentile = 99.99;  // act_observer "percentile" only; in (50, 100]

  QuantDtype kvcache_quant_dtype = QuantDtype::kNone;
  QuantGranularity kvcache_quant_granularity = QuantGranularity::kPerChannel;

  OutliersSuppressionType outliers_suppression = OutliersSuppressionType::kNone;
  PrecisionRecovery precision_recovery = PrecisionRecovery::kNone;
  // The algorithm that turns (possibly smoothed) float weights into codes: "rtn" (round to nearest)
  // or the name of a registered plugin algorithm (e.g. "rtn_mse" from examples/plugins). GPTQ, when
  // precision_recovery asks for it, does the rounding itself, so this must stay "rtn" then.
  std::string rounding = "rtn";
  // Per-algorithm parameters keyed by algorithm name ("smooth_quant", "awq", "gptq", "rtn": checked
  // against default_algo_args(); any other name is a plugin's and carries free-form args). Entries
  // may be partial: algo_args_for() fills in the defaults.
  nlohmann::json algo_args = nlohmann::json::object();

  CalibrationConfig calibration;  // ignored in DEPLOY mode
  std::vector<LayerPolicy> layer_policies;

  // ---- loading and writing ---------------------------------------------------------------------

  // Reads and validates a config. `source` names the input in error messages (a file name). Keys
  // left out keep their defaults; unknown keys, wrong types, bad values and impossible combinations
  // throw ptq::Error naming the key, the value received and what is allowed.
  static PTQConfig from_json(const nlohmann::json& json, const std::string& source = "config");
  // `format`: "json", "ini", "xml" or "info" (docs/CONFIG.md gives the INI/XML/INFO conventions).
  static PTQConfig from_string(const std::string& text, const std::string& format,
                               const std::string& source = "config");
  // Dispatches on the extension: .json, .ini, .xml, .info.
  static PTQConfig from_file(const std::filesystem::path& path);

  // Every field, with defaults filled in (algo_args too): the canonical form. Two configs are equal
  // when their to_json() are, and from_json(to_json()) gives an equal config.
  nlohmann::json to_json() const;
  // Writes to_json() atomically (temporary file in the same folder, then rename).
  void save(const std::filesystem::path& path) const;

  // The checks from_json runs, for configs built or edited in code. Throws ptq::Error.
  void validate(const std::string& source = "config") const;

  // ---- resolution ------------------------------------------------------------------------------

  // The config-wide scheme (no blacklist, no policy).
  LayerScheme default_scheme() const;
  // The effective scheme of the linear layer named `layer_name` (e.g.
  // "model.layers.3.mlp.up_proj"): skipped when a blacklist entry is a substring of it or a policy
  // with skip matches; otherwise the config-wide fields with the matching policy's fields on top.
  // Throws ptq::Error when two policies match the layer, or when a blacklisted layer matches a
  // policy that sets a scheme.
  LayerScheme scheme_for(const std::string& layer_name) const;
  // default_scheme().group_size_fits(in_features); per-layer checks use scheme_for(name).
  bool group_size_fits(int64_t in_features) const;
  // Whether QUANTIZE needs calibration data (static activation or KV-cache scales, SmoothQuant,
  // AWQ, GPTQ); always false in DEPLOY mode.
  bool needs_calibration() const;
  // Whether some layer may get static activations (int8 per-tensor, scales from calibration): the
  // config-wide scheme, or any policy that does not skip, resolved as scheme_for resolves it.
  bool uses_static_activations() const;

  // The parameters of one algorithm: default_algo_args()[name] with algo_args[name] on top; for a
  // plugin name, algo_args[name] or an empty object.
  nlohmann::json algo_args_for(const std::string& algorithm) const;
  // {"smooth_quant": {...}, "awq": {...}, "gptq": {...}, "rtn": {...}} with every known key's
  // default.
  static const nlohmann::json& default_algo_args();

  // One line for logs and reports: "W4A16 g128 asym, AWQ, KV int8 static".
  std::string summary() const;
};

bool operator==(const PTQConfig& a, const PTQConfig& b);
bool operator!=(const PTQConfig& a, const PTQConfig& b);

}  // namespace ptq
