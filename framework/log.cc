#include "framework/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace ptq {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::mutex g_mutex;
const char* prefix(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "[ptq debug] ";
    case LogLevel::kInfo: return "[ptq] ";
    case LogLevel::kWarning: return "[ptq warning] ";
    default: return "[ptq error] ";
  }
}
}  // namespace

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }

void log_message(LogLevel level, const std::string& message) {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::fprintf(stderr, "%s%s\n", prefix(level), message.c_str());
  std::fflush(stderr);
}

}  // namespace ptq
