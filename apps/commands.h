#pragma once
// Subcommands of the diffkd CLI, one file each in apps/.

#include <CLI/CLI.hpp>

namespace diffkd::apps {

void add_demo_command(CLI::App& app);
// Runs whichever subcommand was selected; returns the exit code.
int run_selected(CLI::App& app);

}  // namespace diffkd::apps
