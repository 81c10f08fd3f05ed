// ptq: post-training quantization for LLMs. `ptq --help` lists the subcommands; each has --help.
#include <CLI/CLI.hpp>
#include <ptq/build_config.h>

#include <iostream>

#include "framework/error.h"
#include "tools/ptq/cli_common.h"

int main(int argc, char** argv) {
  CLI::App app{"ptq " PTQ_VERSION_STRING ": post-training quantization of large language models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", PTQ_VERSION_STRING);
  ptq::cli::GlobalOptions globals;
  app.add_option("--threads", globals.threads, "CPU threads (default: all cores)")->check(CLI::NonNegativeNumber);
  app.add_flag("-q,--quiet", globals.quiet, "Only warnings and results (no progress bars)");

  ptq::cli::add_eval_command(app, globals);
  ptq::cli::add_generate_command(app, globals);
  ptq::cli::add_inspect_command(app, globals);
  ptq::cli::add_tokenize_command(app, globals);
  ptq::cli::add_convert_llama2c_command(app, globals);
  ptq::cli::add_bench_command(app, globals);
  ptq::cli::add_make_random_model_command(app, globals);

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
