// Progress of long work (calibration, evaluation, conversion) on stderr. On a terminal it redraws one
// line; elsewhere (CI logs, pipes) it prints a line at most every few seconds so logs stay short.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace ptq {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit = "it");
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void advance(int64_t n = 1, const std::string& note = "");
  void finish();

  // Globally silences progress output (--json runs, tests).
  static void set_enabled(bool enabled);

 private:
  void draw(bool final_line);
  std::string label_;
  std::string unit_;
  std::string note_;
  int64_t total_;
  int64_t done_ = 0;
  bool finished_ = false;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace ptq
