#pragma once
// Subcommands of the diffkd CLI, one file each in apps/. Each add_*_command registers its flags
// and the function that runs it; run_selected runs the one the user chose.

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "tensor/device.h"

namespace diffkd::apps {

// The global --device flag: "auto" (cuda when a GPU is usable, else cpu), "cpu", "cuda" or
// "cuda:N". Set by main before the subcommand runs.
void set_device_flag(const std::string& text);
// The device the flag names ("auto" resolved); a named GPU that is not usable is an error.
Device selected_device();

// --schedule, --timesteps and --prediction for a command that loads diffusion models: checked
// against what each file records, or used for a file that records nothing
// (diffusion::set_diffusion_flags, set before the command runs).
void add_diffusion_flags(CLI::App* command);

// Registers `run` as what the subcommand `command` does.
void on_run(CLI::App* command, std::function<int()> run);

void add_demo_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_sample_command(CLI::App& app);
void add_train_classifier_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_report_command(CLI::App& app);
void add_distill_command(CLI::App& app);
void add_forward_command(CLI::App& app);
void add_convert_command(CLI::App& app);

// Runs whichever subcommand was selected; returns the exit code.
int run_selected(CLI::App& app);

}  // namespace diffkd::apps
