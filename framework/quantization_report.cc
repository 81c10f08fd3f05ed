#include "framework/quantization_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <tuple>

#include "framework/error.h"
#include "framework/table.h"

namespace ptq {

std::string format_bytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (bytes >= (int64_t{1} << 30)) return fmt::format("{:.2f} GiB", b / (1 << 30));
  if (bytes >= (int64_t{1} << 20)) return fmt::format("{:.2f} MiB", b / (1 << 20));
  if (bytes >= (int64_t{1} << 10)) return fmt::format("{:.1f} KiB", b / (1 << 10));
  return fmt::format("{} B", bytes);
}

void QuantizationReport::record(LayerRecord r) {
  for (auto& existing : layers_) {
    if (existing.name != r.name) continue;
    existing = std::move(r);
    return;
  }
  layers_.push_back(std::move(r));
}

void QuantizationReport::set_backend(const std::string& name, const std::string& backend,
                                     const std::string& fallback_reason) {
  for (auto& r : layers_) {
    if (r.name != name) continue;
    r.backend = backend;
    r.backend_fallback_reason = fallback_reason;
  }
}

const LayerRecord* QuantizationReport::find(const std::string& name) const {
  for (const auto& r : layers_)
    if (r.name == name) return &r;
  return nullptr;
}

int64_t QuantizationReport::quantized_count() const {
  return std::count_if(layers_.begin(), layers_.end(), [](const LayerRecord& r) { return r.quantized(); });
}

int64_t QuantizationReport::fallback_count() const {
  return std::count_if(layers_.begin(), layers_.end(), [](const LayerRecord& r) {
    return !r.fallback.empty() || !r.backend_fallback_reason.empty();
  });
}

int64_t QuantizationReport::non_finite_fallback_count() const {
  return std::count_if(layers_.begin(), layers_.end(), [](const LayerRecord& r) { return r.non_finite_fallback; });
}

int64_t QuantizationReport::float_bytes() const {
  int64_t total = 0;
  for (const auto& r : layers_) total += r.float_bytes;
  return total;
}

int64_t QuantizationReport::quantized_bytes() const {
  int64_t total = 0;
  for (const auto& r : layers_) total += r.quantized_bytes;
  return total;
}

std::string QuantizationReport::summary_table() const {
  struct Group {
    int64_t layers = 0, float_bytes = 0, quantized_bytes = 0, measured = 0;
    double error_sum = 0;
  };
  std::map<std::tuple<std::string, std::string, std::string>, Group> groups;
  for (const auto& r : layers_) {
    Group& g = groups[{r.scheme, r.algorithm, r.backend}];
    ++g.layers;
    g.float_bytes += r.float_bytes;
    g.quantized_bytes += r.quantized_bytes;
    if (r.relative_error >= 0) {
      ++g.measured;
      g.error_sum += r.relative_error;
    }
  }
  Table table({"scheme", "algorithm", "backend", "layers", "float", "quantized", "ratio", "mean rel. error"});
  for (const auto& [key, g] : groups) {
    const auto& [scheme, algorithm, backend] = key;
    table.add_row({scheme, algorithm.empty() ? "-" : algorithm, backend.empty() ? "-" : backend,
                   std::to_string(g.layers), format_bytes(g.float_bytes), format_bytes(g.quantized_bytes),
                   g.quantized_bytes ? fmt::format("{:.2f}x", double(g.float_bytes) / g.quantized_bytes) : "-",
                   g.measured ? fmt::format("{:.4f}", g.error_sum / g.measured) : "-"});
  }
  table.add_row({"total", "", "", std::to_string(layers_.size()), format_bytes(float_bytes()),
                 format_bytes(quantized_bytes()),
                 quantized_bytes() ? fmt::format("{:.2f}x", double(float_bytes()) / quantized_bytes()) : "-", ""});
  return table.to_string();
}

std::string QuantizationReport::fallback_list() const {
  std::string out;
  for (const auto& r : layers_) {
    if (!r.fallback.empty()) out += fmt::format("  {}: {}\n", r.name, r.fallback);
    if (!r.backend_fallback_reason.empty())
      out += fmt::format("  {}: runs on {} ({})\n", r.name, r.backend, r.backend_fallback_reason);
  }
  return out;
}

std::string QuantizationReport::layer_table() const {
  Table table({"layer", "shape", "scheme", "algorithm", "backend", "bytes", "rel. error"});
  for (const auto& r : layers_)
    table.add_row({r.name, fmt::format("{}x{}", r.out_features, r.in_features), r.scheme,
                   r.algorithm.empty() ? "-" : r.algorithm, r.backend.empty() ? "-" : r.backend,
                   format_bytes(r.quantized_bytes),
                   r.relative_error >= 0 ? fmt::format("{:.4f}", r.relative_error) : "-"});
  return table.to_string();
}

nlohmann::json QuantizationReport::to_json() const {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& r : layers_) {
    layers.push_back({{"name", r.name},
                      {"scheme", r.scheme},
                      {"algorithm", r.algorithm},
                      {"in_features", r.in_features},
                      {"out_features", r.out_features},
                      {"float_bytes", r.float_bytes},
                      {"quantized_bytes", r.quantized_bytes},
                      {"relative_error", r.relative_error >= 0 ? nlohmann::json(r.relative_error) : nlohmann::json()},
                      {"fallback", r.fallback},
                      {"non_finite_fallback", r.non_finite_fallback},
                      {"backend", r.backend},
                      {"backend_fallback_reason", r.backend_fallback_reason}});
  }
  return {{"layers", layers},
          {"quantized_layers", quantized_count()},
          {"fallbacks", fallback_count()},
          {"non_finite_fallbacks", non_finite_fallback_count()},
          {"float_bytes", float_bytes()},
          {"quantized_bytes", quantized_bytes()}};
}

QuantizationReport QuantizationReport::from_json(const nlohmann::json& j) {
  QuantizationReport report;
  try {
    for (const auto& l : j.at("layers")) {
      LayerRecord r;
      r.name = l.at("name").get<std::string>();
      r.scheme = l.at("scheme").get<std::string>();
      r.algorithm = l.at("algorithm").get<std::string>();
      r.in_features = l.at("in_features").get<int64_t>();
      r.out_features = l.at("out_features").get<int64_t>();
      r.float_bytes = l.at("float_bytes").get<int64_t>();
      r.quantized_bytes = l.at("quantized_bytes").get<int64_t>();
      r.relative_error = l.at("relative_error").is_null() ? -1.0 : l.at("relative_error").get<double>();
      r.fallback = l.at("fallback").get<std::string>();
      // Absent in the records of runs made before the guard's fallback existed.
      r.non_finite_fallback = l.value("non_finite_fallback", false);
      r.backend = l.at("backend").get<std::string>();
      r.backend_fallback_reason = l.at("backend_fallback_reason").get<std::string>();
      report.layers_.push_back(std::move(r));
    }
  } catch (const nlohmann::json::exception& e) {
    fail("quantization report: {}", e.what());
  }
  return report;
}

}  // namespace ptq
