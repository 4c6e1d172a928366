// Subcommands of the wick binary.
#pragma once

#include <CLI/CLI.hpp>

namespace wick::cli {

void add_info_command(CLI::App& app);
void add_selfcheck_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_embed_command(CLI::App& app);
void add_generate_command(CLI::App& app);

}  // namespace wick::cli
