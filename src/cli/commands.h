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
void add_train_command(CLI::App& app);
// `bench train` and `bench generate`, under the bench command.
void add_model_bench_commands(CLI::App* bench);

}  // namespace wick::cli
