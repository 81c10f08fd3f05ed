// ptq quantize --stream / --resume: layer-streamed quantization (framework/stream_quantize.h) from the
// command line.
#pragma once

#include <string>

#include "framework/ptq_config.h"
#include "tools/ptq/cli_common.h"

namespace ptq::cli {

struct StreamedQuantizeRequest {
  ModelOptions model;
  std::string config_file;  // for messages and --json
  PTQConfig config;         // the recipe with --calib / --backend applied
  std::string out;
  bool resume = false;
  bool layers = false;  // --layers: one row per linear
  bool json = false;
  bool float_fallback = true;  // false: --no-float-fallback
};

// Builds the network without its weights, quantizes it layer by layer and writes the checkpoint; the
// same output as the in-memory path. Prints what `ptq quantize` prints (no backend column: the
// checkpoint does not depend on convert()).
void run_streamed_quantize(const StreamedQuantizeRequest& request, const GlobalOptions& globals);

}  // namespace ptq::cli
