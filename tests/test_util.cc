#include "test_util.h"

#include <ptq/build_config.h>
#include <unistd.h>

#include <cstdlib>

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

}  // namespace ptq::testing
