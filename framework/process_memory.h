// This process's memory as Linux reports it (/proc/self): what `ptq bench`, the layer-streamed
// quantization log and the peak-RSS report print.
#pragma once

#include <cstdint>

namespace ptq {

struct ResidentMemory {
  int64_t now = 0;   // VmRSS, bytes
  int64_t peak = 0;  // VmHWM (the high-water mark), bytes
};

// Both from one read of /proc/self/status; 0 where it is not available.
ResidentMemory resident_memory();

// The process's peak resident set size (VmHWM), 0 when unknown.
int64_t peak_rss_bytes();

// Lowers the peak to the current resident set size (Linux: "5" into /proc/self/clear_refs), so that
// several models measured one after the other in one process each get their own peak. False when the
// kernel does not allow it (the peak then stays the process's).
bool reset_peak_rss();

}  // namespace ptq
