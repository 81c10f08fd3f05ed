// ptq: post-training quantization for LLMs. `ptq --help` lists the subcommands; each has --help.
#include <CLI/CLI.hpp>
#include <ptq/build_config.h>

#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "framework/algorithm.h"
#include "framework/backend.h"
#include "framework/error.h"
#include "tools/ptq/cli_common.h"

namespace {

// LibTorch's OpenMP workers spin-wait between parallel regions while OpenBLAS runs each GEMM on its own
// threads; on the 2-core machines we target, that oversubscription made float decode 3x and prefill 1.4x
// slower (docs/PERFORMANCE.md). libgomp reads OMP_WAIT_POLICY only when it is loaded, before main, so the
// CLI re-executes itself once with the passive policy unless the user chose a policy.
void relaunch_with_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: carry on with the default policy
}

}  // namespace

int main(int argc, char** argv) {
  relaunch_with_passive_openmp(argv);
  // Built-ins first, so that --plugin libraries can see (and deliberately replace) them.
  ptq::register_builtin_backends();
  ptq::register_builtin_algorithms();
  CLI::App app{"ptq " PTQ_VERSION_STRING ": post-training quantization of large language models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", PTQ_VERSION_STRING);
  ptq::cli::GlobalOptions globals;
  app.add_option("--threads", globals.threads, "CPU threads (default: all cores)")->check(CLI::NonNegativeNumber);
  app.add_flag("-q,--quiet", globals.quiet, "Only warnings and results (no progress bars)");
  // One file per occurrence (allow_extra_args(false)), so `--plugin a.so quantize` never reads the
  // subcommand as a second file.
  app.add_option("--plugin", globals.plugins,
                 "Load a plugin library (.so) that registers algorithms or backends; repeatable (docs/PLUGINS.md)")
      ->allow_extra_args(false);
  // The main app's parse-complete callback runs after all options are stored and before any subcommand's
  // callback, so plugin algorithms are registered by the time a subcommand reads its config.
  app.parse_complete_callback([&globals] { ptq::cli::load_plugins(globals); });

  ptq::cli::add_quantize_command(app, globals);
  ptq::cli::add_eval_command(app, globals);
  ptq::cli::add_compare_command(app, globals);
  ptq::cli::add_generate_command(app, globals);
  ptq::cli::add_inspect_command(app, globals);
  ptq::cli::add_tokenize_command(app, globals);
  ptq::cli::add_convert_llama2c_command(app, globals);
  ptq::cli::add_bench_command(app, globals);
  ptq::cli::add_make_random_model_command(app, globals);
  ptq::cli::add_algorithms_command(app, globals);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const ptq::Error& e) {
    std::cerr << "ptq: error: " << e.what() << std::endl;
    return 1;
  } catch (const c10::Error& e) {
    std::cerr << "ptq: error (LibTorch): " << e.what_without_backtrace() << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "ptq: error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
