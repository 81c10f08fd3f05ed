// Errors of ptq: one exception type, and a check macro whose message says what was received and what
// was expected. The library never aborts; callers (the CLI, tests) decide what to do with the message.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace ptq {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Formats with fmt and throws ptq::Error.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace ptq

// PTQ_CHECK(cond, "format {}", args...): throws ptq::Error with the formatted message when cond is false.
#define PTQ_CHECK(cond, ...)      \
  do {                            \
    if (!(cond)) {                \
      ::ptq::fail(__VA_ARGS__);   \
    }                             \
  } while (false)
