#include "tools/ptq/cmd_quantize_stream.h"

#include <fmt/format.h>
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>

#include "algorithms/ptq.h"
#include "framework/calibration.h"
#include "framework/error.h"
#include "framework/log.h"
#include "framework/stream_quantize.h"
#include "network_helpers/llama/llama_loader.h"

namespace ptq::cli {
namespace fs = std::filesystem;

namespace {

double seconds_between(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int64_t safetensors_bytes(const fs::path& dir) {
  int64_t total = 0;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && entry.path().extension() == ".safetensors") total += entry.file_size();
  return total;
}

// PTQ_TEST_STOP_AFTER_STEP=N (tests only): once the progress of decoder layer N is recorded, the
// process stops itself with SIGSTOP, so a test can SIGKILL it at a known point
// (tests/core/test_stream_quantize.cc). -2 is the embedding step, -1 the head.
std::function<void(int64_t)> test_stop_hook() {
  const char* value = std::getenv("PTQ_TEST_STOP_AFTER_STEP");
  if (value == nullptr || *value == '\0') return {};
  const int64_t stop_at = std::strtoll(value, nullptr, 10);
  return [stop_at](int64_t step) {
    if (step != stop_at) return;
    log_info("PTQ_TEST_STOP_AFTER_STEP={}: stopping (SIGSTOP)", stop_at);
    ::raise(SIGSTOP);
  };
}

}  // namespace

void run_streamed_quantize(const StreamedQuantizeRequest& request, const GlobalOptions& globals) {
  (void)globals;
  // glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), after which
  // layer-sized tensors come from the heap, which is returned to the system only from its top: the
  // resident memory then creeps up by about one layer's quantized tensors per layer. A fixed
  // threshold keeps every block of 1 MiB or more in its own mapping, returned the moment it is freed.
  ::mallopt(M_MMAP_THRESHOLD, 1 << 20);
  LoadOptions load;
  load.compute_dtype = parse_compute_dtype(request.model.dtype);
  load.defer_weights = true;
  auto helper = std::make_shared<LlamaNetworkHelper>(request.model.model_dir, load);
  std::shared_ptr<LlamaForCausalLM> net = load_llama(request.model.model_dir, load);

  PTQ algo(request.config);
  StreamQuantizeOptions options;
  options.out = request.out;
  options.resume = request.resume;
  options.float_fallback = request.float_fallback;
  options.device = torch::Device(request.model.device);
  options.after_step_recorded = test_stop_hook();
  const auto start = std::chrono::steady_clock::now();
  const StreamQuantizeResult result = quantize_streamed(algo, *net, *helper, options);
  const double seconds = seconds_between(start);

  const QuantizationReport& report = result.report;
  const int64_t float_file = safetensors_bytes(request.model.model_dir);
  const int64_t quantized_file = safetensors_bytes(request.out);
  if (request.json) {
    print_json({{"model", request.model.model_dir},
                {"config", request.config_file},
                {"recipe", request.config.summary()},
                {"out", request.out},
                {"composition", algo.composition()},
                {"streamed", true},
                {"resumed_at_layer", result.resumed_at},
                {"seconds", {{"total", seconds}}},
                {"file_bytes", {{"float", float_file}, {"quantized", quantized_file}}},
                {"report", report.to_json()}});
    return;
  }
  std::cout << fmt::format("{} -> {}: {} (layer-streamed{})\n", request.model.model_dir, request.out,
                           request.config.summary(),
                           result.resumed_at <= 0                 ? std::string()
                           : result.resumed_at >= net->num_decoder_layers() ? std::string(", resumed after the last layer")
                                                                         : fmt::format(", resumed at layer {}", result.resumed_at));
  std::cout << report.summary_table();
  if (report.fallback_count() > 0)
    std::cout << fmt::format("{} layers not quantized as configured:\n{}", report.fallback_count(),
                             report.fallback_list());
  if (request.layers) std::cout << report.layer_table();
  std::cout << fmt::format("quantize + save {:.1f} s; weight files: float {}, quantized {}\n", seconds,
                           format_bytes(float_file), format_bytes(quantized_file));
}

}  // namespace ptq::cli
