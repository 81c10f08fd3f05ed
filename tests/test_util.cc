#include "test_util.h"

#include <fmt/format.h>
#include <ptq/build_config.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "framework/error.h"

namespace ptq::testing {
namespace fs = std::filesystem;

fs::path shared_data_dir() {
  const char* env = std::getenv("PTQ_SHARED_DIR");
  fs::path root = env ? fs::path(env) : fs::path(PTQ_DEFAULT_SHARED_DIR);
  fs::path data = root / "data";
  return fs::is_directory(data) ? fs::canonical(data) : fs::path();
}

namespace {
struct TempRoot {
  fs::path path;
  TempRoot() {
    path = fs::temp_directory_path() / ("ptq_test_" + std::to_string(::getpid()));
    fs::create_directories(path);
  }
  ~TempRoot() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};
}  // namespace

fs::path temp_dir(const std::string& name) {
  static TempRoot root;
  fs::path dir = root.path / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

fs::path build_dir() {
  const char* env = std::getenv("PTQ_BUILD_DIR");
  return env ? fs::path(env) : fs::current_path();
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a ptq::Error";
  return "";
}

void expect_error(const std::function<void()>& action, const std::vector<std::string>& fragments) {
  const std::string message = error_of(action);
  for (const auto& fragment : fragments)
    EXPECT_NE(message.find(fragment), std::string::npos)
        << "message \"" << message << "\" lacks \"" << fragment << "\"";
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

nlohmann::json read_config(const fs::path& dir) {
  nlohmann::json config;
  std::ifstream(dir / "config.json") >> config;
  return config;
}

void write_config(const fs::path& dir, const nlohmann::json& config) {
  std::ofstream(dir / "config.json") << config.dump(2);
}

CommandResult run_command(const std::string& command) {
  const fs::path err_file = temp_dir("command_stderr") / "stderr.txt";
  CommandResult result;
  FILE* pipe = popen((command + " 2>'" + err_file.string() + "'").c_str(), "r");
  if (!pipe) return result;
  char buffer[4096];
  for (size_t n; (n = fread(buffer, 1, sizeof buffer, pipe)) > 0;) result.out.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::stringstream err;
  err << std::ifstream(err_file).rdbuf();
  result.err = err.str();
  return result;
}

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\"\ndoes not contain\n\"" << part << "\"";
}

CommandResult run_ptq(const std::string& arguments) {
#ifdef PTQ_TEST_PTQ_BINARY
  return run_command(fmt::format("'{}' --threads 1 {}", PTQ_TEST_PTQ_BINARY, arguments));
#else
  ADD_FAILURE() << "this test program was built without PTQ_TEST_PTQ_BINARY (tests/CMakeLists.txt)";
  return {};
#endif
}

}  // namespace ptq::testing
