// Plugins: algorithms (or backends) in a shared library, loaded at run time.
//
// A plugin is a .so that links ptq_framework and defines, with PTQ_PLUGIN(init):
//   extern "C" int  ptq_plugin_api_version();   // must equal kPluginApiVersion
//   extern "C" void ptq_plugin_init();          // registers its algorithms / backends
// load_plugin(path) dlopens it, checks the version, runs the init once, and returns what it registered.
// Because the registries live in libptq_framework.so, which the plugin and the program share, what the
// plugin registers is visible to PTQConfig's "rounding" key and to create_algorithm().
// examples/plugins/ has a complete one (RTN with MSE-searched clipping).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace ptq {

// Bump when Algorithm, LayerStage, Backend or the registry functions change incompatibly.
inline constexpr int kPluginApiVersion = 1;

struct PluginInfo {
  std::filesystem::path path;
  std::vector<std::string> algorithms;  // registered by its init
  std::vector<std::string> backends;
};

// Loads and initialises a plugin; loading the same file again returns the first load's info. Throws
// ptq::Error naming the file for: no such file, not a loadable shared library (with dlerror's text),
// a missing ptq_plugin_api_version / ptq_plugin_init, a version mismatch, or an init that throws.
PluginInfo load_plugin(const std::filesystem::path& path);
std::vector<PluginInfo> loaded_plugins();

}  // namespace ptq

#define PTQ_PLUGIN(init_function)                                                        \
  extern "C" __attribute__((visibility("default"))) int ptq_plugin_api_version() {       \
    return ::ptq::kPluginApiVersion;                                                     \
  }                                                                                      \
  extern "C" __attribute__((visibility("default"))) void ptq_plugin_init() { init_function(); }
