// What the report programs (cpu_kernel_report, kv_attention_report, the CUDA reports) share: the median wall time
// of a call, and writing their rows as JSON.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

namespace ptq::bench {

// Seconds per call of `call`: one untimed warm-up call (primitive creation, page faults, caches),
// then timed calls until `min_seconds` have passed and at least `min_calls` were made; the median
// counts (robust to the odd preempted call on a shared machine).
inline double median_seconds(const std::function<void()>& call, double min_seconds, size_t min_calls) {
  call();
  std::vector<double> seconds;
  double total = 0;
  while (seconds.size() < min_calls || total < min_seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    call();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    seconds.push_back(dt);
    total += dt;
  }
  std::nth_element(seconds.begin(), seconds.begin() + seconds.size() / 2, seconds.end());
  return seconds[seconds.size() / 2];
}

// Writes `rows` (indented) to `path` and says so; does nothing when `path` is empty (no --json).
inline void write_json_rows(const std::string& path, const nlohmann::json& rows) {
  if (path.empty()) return;
  std::ofstream(path) << rows.dump(2) << "\n";
  std::cout << "wrote " << path << "\n";
}

}  // namespace ptq::bench
