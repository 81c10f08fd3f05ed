// What an apply/convert did to each linear layer: its scheme, the algorithm that rounded it, the
// weight error, the bytes before and after, the backend that runs it, and every fallback (a layer kept
// in float, a group size that did not fit, a backend that declined). Printed as tables after apply and
// convert, and as JSON for scripts.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace ptq {

struct LayerRecord {
  std::string name;       // "model.layers.3.mlp.down_proj"
  std::string scheme;     // "W4A16 g128 asym", or "float"
  std::string algorithm;  // "rtn", "gptq", ... ("" for float layers)
  int64_t in_features = 0;
  int64_t out_features = 0;
  int64_t float_bytes = 0;      // the weight in the compute dtype
  int64_t quantized_bytes = 0;  // data + scales + zero points (= float_bytes when kept in float)
  // ||W - W_q||_F / ||W||_F; negative when not measured (DEPLOY).
  double relative_error = -1.0;
  // Why the layer is not quantized as the config asked ("" when it is): blacklist, policy, group size.
  std::string fallback;
  // Kept in float by the NaN/Inf guard because its quantized outputs were not finite (`fallback` says
  // which scheme failed); the saved config lists it in opname_blacklist (framework/non_finite_fallback.h).
  bool non_finite_fallback = false;
  std::string backend;                  // set by convert
  std::string backend_fallback_reason;  // set by convert when the requested backend declined
  bool quantized() const { return scheme != "float"; }
};

class QuantizationReport {
 public:
  // Adds or replaces the record of r.name (a later stage re-quantizing a layer replaces its row).
  void record(LayerRecord r);
  void set_backend(const std::string& name, const std::string& backend, const std::string& fallback_reason);
  const std::vector<LayerRecord>& layers() const { return layers_; }
  const LayerRecord* find(const std::string& name) const;

  int64_t quantized_count() const;
  int64_t fallback_count() const;  // layers with a fallback note, backend fallbacks included
  int64_t non_finite_fallback_count() const;  // of which kept in float by the NaN/Inf guard
  int64_t float_bytes() const;
  int64_t quantized_bytes() const;

  // One row per distinct (scheme, algorithm, backend): layers, bytes before/after, mean error.
  std::string summary_table() const;
  // Every fallback, one line each ("" when there is none).
  std::string fallback_list() const;
  // One row per layer.
  std::string layer_table() const;
  nlohmann::json to_json() const;
  // The report to_json() wrote (a resumed run restores its report from it); throws on a malformed one.
  static QuantizationReport from_json(const nlohmann::json& j);

 private:
  std::vector<LayerRecord> layers_;
};

// "12.3 MiB" / "812 KiB" / "96 B".
std::string format_bytes(int64_t bytes);

}  // namespace ptq
