#include "network_helpers/tokenizer/sentencepiece_bridge_loader.h"

#include <dlfcn.h>

#include <filesystem>
#include <string>
#include <vector>

#include "framework/error.h"

namespace ptq::tok {
namespace {
namespace fs = std::filesystem;

constexpr const char* kModuleName = "libptq_sentencepiece.so";

// RTLD_DEEPBIND is what keeps sentencepiece on its own protobuf; AddressSanitizer refuses it (it must
// see every allocation), and the sanitized programs never load LibTorch's protobuf, so they do without.
#if defined(__SANITIZE_ADDRESS__)
constexpr int kOpenFlags = RTLD_NOW | RTLD_LOCAL;
#else
constexpr int kOpenFlags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#endif

std::vector<fs::path> candidate_paths() {
  std::vector<fs::path> paths;
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&sentencepiece_bridge), &info) != 0 && info.dli_fname != nullptr) {
    const fs::path holder = fs::path(info.dli_fname).parent_path();
    paths.push_back(holder / kModuleName);
    paths.push_back(holder.parent_path() / "lib" / kModuleName);  // an installed program in bin/
  }
#ifdef PTQ_SENTENCEPIECE_BRIDGE_PATHS
  for (const char* path : {PTQ_SENTENCEPIECE_BRIDGE_PATHS}) paths.emplace_back(path);
#endif
  return paths;
}

const PtqSentencePieceBridge* open_bridge() {
  std::string tried;
  for (const fs::path& path : candidate_paths()) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
      tried += "\n  " + path.string() + ": not there";
      continue;
    }
    void* handle = dlopen(path.c_str(), kOpenFlags);  // kept open for the life of the process
    if (handle == nullptr) {
      const char* reason = dlerror();
      tried += "\n  " + path.string() + ": " + (reason != nullptr ? reason : "dlopen failed");
      continue;
    }
    using Entry = const PtqSentencePieceBridge* (*)();
    auto entry = reinterpret_cast<Entry>(dlsym(handle, "ptq_sentencepiece_bridge"));
    const PtqSentencePieceBridge* bridge = entry != nullptr ? entry() : nullptr;
    if (bridge == nullptr || bridge->version != PTQ_SENTENCEPIECE_BRIDGE_VERSION) {
      tried += "\n  " + path.string() + ": not a ptq sentencepiece module of version " +
               std::to_string(PTQ_SENTENCEPIECE_BRIDGE_VERSION);
      continue;
    }
    return bridge;
  }
  fail("SentencePiece tokenizers (tokenizer.model) need {}, which ptq builds next to its libraries; "
       "none could be loaded:{}",
       kModuleName, tried);
}

}  // namespace

const PtqSentencePieceBridge& sentencepiece_bridge() {
  static const PtqSentencePieceBridge* bridge = open_bridge();  // a failed load throws and is retried
  return *bridge;
}

}  // namespace ptq::tok
