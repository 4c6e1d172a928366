#include <fmt/core.h>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "wick/error.h"

int main(int argc, char** argv) {
  CLI::App app{"wick: LoRA fine-tuning and inference of transformer models on NVIDIA GPUs and CPUs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", WICK_VERSION);
  wick::cli::add_info_command(app);
  wick::cli::add_selfcheck_command(app);
  wick::cli::add_bench_command(app);
  wick::cli::add_inspect_command(app);
  wick::cli::add_embed_command(app);
  wick::cli::add_generate_command(app);
  wick::cli::add_train_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const wick::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
