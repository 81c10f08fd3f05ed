// Shared helpers of the test suites: where ../shared is, temporary folders, skipping.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ptq::testing {

// ../shared/data (or $PTQ_SHARED_DIR/data); empty path when absent.
std::filesystem::path shared_data_dir();

// A fresh, empty temporary folder removed at the end of the process.
std::filesystem::path temp_dir(const std::string& name);

// The build tree (for finding the ptq binary and plugins).
std::filesystem::path build_dir();

// The message of the ptq::Error that `action` throws; records a test failure (and returns "") when it
// throws none.
std::string error_of(const std::function<void()>& action);
// Expects a ptq::Error from `action` whose message contains every one of `fragments`.
void expect_error(const std::function<void()>& action, const std::vector<std::string>& fragments);

// Whether `text` contains `part`; the failure message shows both.
::testing::AssertionResult contains(const std::string& text, const std::string& part);

// A file's bytes; writing replaces the file.
std::string read_bytes(const std::filesystem::path& path);
void write_bytes(const std::filesystem::path& path, const std::string& bytes);

// dir/config.json as JSON, and writing it back (tests that tamper with a checkpoint's config).
nlohmann::json read_config(const std::filesystem::path& dir);
void write_config(const std::filesystem::path& dir, const nlohmann::json& config);

// What a command printed and how it exited (-1: it did not exit normally, or could not start).
struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs `command` through /bin/sh, capturing stdout and stderr separately (CLI tests of the ptq binary).
CommandResult run_command(const std::string& command);
// Runs the ptq binary of this build (PTQ_TEST_PTQ_BINARY, tests/CMakeLists.txt) as
// `ptq --threads 1 ARGUMENTS` (one thread: test processes run side by side under ctest -j).
CommandResult run_ptq(const std::string& arguments);

}  // namespace ptq::testing

#define EXPECT_CONTAINS(text, part) EXPECT_TRUE(::ptq::testing::contains(text, part))

// Skips the current test with a clear message when ../shared/data is absent.
#define PTQ_REQUIRE_SHARED_DATA()                                                                   \
  do {                                                                                              \
    if (::ptq::testing::shared_data_dir().empty())                                                  \
      GTEST_SKIP() << "../shared/data not found (set PTQ_SHARED_DIR to the shared folder to run)";   \
  } while (false)
