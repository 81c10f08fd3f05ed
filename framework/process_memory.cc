#include "framework/process_memory.h"

#include <fstream>
#include <string>

namespace ptq {

ResidentMemory resident_memory() {
  std::ifstream status("/proc/self/status");
  std::string line;
  ResidentMemory memory;
  while (std::getline(status, line)) {  // values are in kB
    if (line.rfind("VmRSS:", 0) == 0) memory.now = std::stoll(line.substr(6)) * 1024;
    if (line.rfind("VmHWM:", 0) == 0) memory.peak = std::stoll(line.substr(6)) * 1024;
  }
  return memory;
}

int64_t peak_rss_bytes() { return resident_memory().peak; }

bool reset_peak_rss() {
  std::ofstream clear_refs("/proc/self/clear_refs");
  clear_refs << "5";
  clear_refs.flush();
  return static_cast<bool>(clear_refs);
}

}  // namespace ptq
