// Finds and loads libptq_sentencepiece.so (sentencepiece_bridge.h says why sentencepiece lives in a
// module of its own), once per process.
#pragma once

#include "network_helpers/tokenizer/sentencepiece_bridge.h"

namespace ptq::tok {

// The loaded module's interface. Looks, in order, next to the library or program that holds this code
// (the build tree and an installed tree both keep the module there), then at the paths the build
// recorded. Throws ptq::Error listing every place tried and the loader's reason when none loads.
const PtqSentencePieceBridge& sentencepiece_bridge();

}  // namespace ptq::tok
