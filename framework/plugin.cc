// load_plugin: dlopen + symbol lookup + version check + one init per file, with what the init
// registered found by diffing the registries around it.
#include "framework/plugin.h"

#include <dlfcn.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include "framework/algorithm.h"
#include "framework/backend.h"
#include "framework/error.h"
#include "framework/log.h"

namespace ptq {
namespace fs = std::filesystem;

namespace {

using ApiVersionFn = int (*)();
using InitFn = void (*)();

// Loaded plugins by canonical path (so "./p.so" and "/abs/p.so" are one plugin), plus the load order
// for loaded_plugins(). One mutex serialises whole loads: two threads loading the same file must not
// both run its init, and the registry diff is only meaningful when no other plugin inits meanwhile.
struct PluginTable {
  std::mutex mutex;
  std::map<fs::path, PluginInfo> by_path;
  std::vector<fs::path> order;
};
PluginTable& table() {
  static PluginTable t;
  return t;
}

// Set while a plugin's init runs on this thread. An init that calls load_plugin would deadlock on the
// table mutex; this turns that into an error that says what to do instead.
thread_local const fs::path* g_initialising = nullptr;

std::vector<std::string> algorithm_names() {
  std::vector<std::string> names;
  for (const auto& info : available_algorithms()) names.push_back(info.name);
  return names;
}

// Names in `after` not in `before`, in `after`'s order. (A plugin that replaces an existing name is not
// listed: the registries keep one entry per name and the entries carry nothing to compare.)
std::vector<std::string> added(const std::vector<std::string>& before, const std::vector<std::string>& after) {
  std::vector<std::string> out;
  for (const auto& name : after)
    if (std::find(before.begin(), before.end(), name) == before.end()) out.push_back(name);
  return out;
}

std::string dl_error_text() {
  const char* text = dlerror();
  return text ? text : "unknown dlopen error";
}

// The library handle, closed on scope exit unless released (failures before init leave nothing loaded).
struct Handle {
  void* h = nullptr;
  ~Handle() {
    if (h) dlclose(h);
  }
  void* release() { return std::exchange(h, nullptr); }
};

template <typename Fn>
Fn find_symbol(void* handle, const char* symbol, const fs::path& path) {
  dlerror();  // clear a stale error: a null symbol value is only an error when dlerror says so
  void* address = dlsym(handle, symbol);
  if (!address) {
    fail("plugin {}: no symbol {} ({}); a ptq plugin defines it with PTQ_PLUGIN(init) from framework/plugin.h",
         path.string(), symbol, dl_error_text());
  }
  return reinterpret_cast<Fn>(address);
}

PluginInfo load_locked(const fs::path& path, const fs::path& canonical) {
  Handle handle;
  dlerror();
  // RTLD_NOW: an unresolved symbol (a plugin built against another ptq) fails here, with the symbol's
  // name, instead of at the first call. RTLD_LOCAL: two plugins may define the same internal names;
  // they still share the registries because both resolve them from the one loaded libptq_framework.so.
  handle.h = dlopen(canonical.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle.h)
    fail("plugin {}: not a loadable shared library: {}", path.string(), dl_error_text());

  auto api_version = find_symbol<ApiVersionFn>(handle.h, "ptq_plugin_api_version", path);
  auto init = find_symbol<InitFn>(handle.h, "ptq_plugin_init", path);
  const int version = api_version();
  if (version != kPluginApiVersion)
    fail("plugin {}: built for plugin API version {}, but this ptq has version {}; rebuild the plugin "
         "against this ptq's headers",
         path.string(), version, kPluginApiVersion);

  const auto algorithms_before = algorithm_names();
  const auto backends_before = available_backends();
  // From here on the library stays loaded whatever happens: the init may have stored function objects
  // whose code lives in it (registrations, static objects with destructors), and unloading under them
  // would crash later instead of failing now.
  handle.release();
  std::optional<std::string> init_error;
  g_initialising = &canonical;
  try {
    init();
  } catch (const std::exception& e) {
    init_error = e.what();
  } catch (...) {
    init_error = "an exception that is not a std::exception";
  }
  g_initialising = nullptr;

  PluginInfo info;
  info.path = canonical;
  info.algorithms = added(algorithms_before, algorithm_names());
  info.backends = added(backends_before, available_backends());
  if (init_error) {
    // Undo a half-done init so that no algorithm of a failed plugin is usable.
    for (const auto& name : info.algorithms) unregister_algorithm(name);
    for (const auto& name : info.backends) unregister_backend(name);
    fail("plugin {}: ptq_plugin_init failed: {}", path.string(), *init_error);
  }
  return info;
}

}  // namespace

PluginInfo load_plugin(const fs::path& path) {
  if (g_initialising)
    fail("plugin {}: ptq_plugin_init called load_plugin({}); a plugin cannot load another one, load {} first "
         "(e.g. --plugin {} --plugin {})",
         g_initialising->string(), path.string(), path.string(), path.string(), g_initialising->string());
  std::error_code ec;
  if (!fs::exists(path, ec)) fail("plugin {}: no such file", path.string());
  if (fs::is_directory(path, ec)) fail("plugin {}: is a folder, expected a shared library (.so)", path.string());
  const fs::path canonical = fs::canonical(path);

  PluginTable& t = table();
  std::lock_guard<std::mutex> lock(t.mutex);
  if (auto it = t.by_path.find(canonical); it != t.by_path.end()) return it->second;
  PluginInfo info = load_locked(path, canonical);
  t.by_path.emplace(canonical, info);
  t.order.push_back(canonical);
  log_debug("plugin {}: registered {} algorithm(s), {} backend(s)", canonical.string(), info.algorithms.size(),
            info.backends.size());
  return info;
}

std::vector<PluginInfo> loaded_plugins() {
  PluginTable& t = table();
  std::lock_guard<std::mutex> lock(t.mutex);
  std::vector<PluginInfo> out;
  for (const auto& path : t.order) out.push_back(t.by_path.at(path));
  return out;
}

}  // namespace ptq
