// Plugins that break (or probe) the plugin contract one way each, for tests/core/test_plugin.cc. One
// source, one MODULE library per PTQ_FAKE_PLUGIN_<kind> definition (tests/CMakeLists.txt). They need no
// LibTorch and no ptq library: framework/plugin.h's macro only needs kPluginApiVersion.
#include <stdexcept>

#include "framework/plugin.h"

#if defined(PTQ_FAKE_PLUGIN_no_symbols)
// A valid shared library that is not a ptq plugin.
extern "C" __attribute__((visibility("default"))) int ptq_fake_plugin_something_else() { return 42; }

#elif defined(PTQ_FAKE_PLUGIN_wrong_version)
// Built against a future plugin API.
extern "C" __attribute__((visibility("default"))) int ptq_plugin_api_version() { return ptq::kPluginApiVersion + 1000; }
extern "C" __attribute__((visibility("default"))) void ptq_plugin_init() {}

#elif defined(PTQ_FAKE_PLUGIN_throwing_init)
static void init() { throw std::runtime_error("fake plugin init failure"); }
PTQ_PLUGIN(init)

#elif defined(PTQ_FAKE_PLUGIN_counting)
// Counts its init calls; the test reads the count through dlsym to check that loading twice inits once.
static int g_init_count = 0;
static void init() { ++g_init_count; }
PTQ_PLUGIN(init)
extern "C" __attribute__((visibility("default"))) int ptq_fake_plugin_init_count() { return g_init_count; }

#else
#error "define one PTQ_FAKE_PLUGIN_<kind>"
#endif
