// fmt formatters for the LibTorch types that error messages print: shapes ([2, 3]) and dtypes (BFloat16).
#pragma once

#include <c10/core/ScalarType.h>
#include <c10/util/ArrayRef.h>
#include <fmt/format.h>

#include <sstream>

template <>
struct fmt::formatter<c10::IntArrayRef> : fmt::formatter<std::string> {
  template <typename Context>
  auto format(c10::IntArrayRef shape, Context& ctx) const {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return fmt::formatter<std::string>::format(s + "]", ctx);
  }
};

template <>
struct fmt::formatter<c10::ScalarType> : fmt::formatter<std::string> {
  template <typename Context>
  auto format(c10::ScalarType dtype, Context& ctx) const {
    return fmt::formatter<std::string>::format(std::string(c10::toString(dtype)), ctx);
  }
};
