// The subcommand registry and the global --device flag (see commands.h).

#include "apps/commands.h"

#include <utility>
#include <vector>

#include "diffusion/generate.h"
#include "tensor/cuda_support.h"
#include "tensor/error.h"

namespace diffkd::apps {

namespace {
std::string device_flag = "auto";
}  // namespace

void set_device_flag(const std::string& text) { device_flag = text; }

Device selected_device() {
  if (device_flag == "auto") return cuda_device_count() > 0 ? cuda_device(0) : cpu();
  const Device d = parse_device(device_flag);
  if (d.type == DeviceType::CUDA)  // (an index past 0 is refused by the backend: one GPU per process)
    DK_CHECK(d.index < cuda_device_count(), "--device ", device_flag, ": no such usable GPU (",
             cuda_device_count() == 0 ? cuda_unavailable_reason() : std::to_string(cuda_device_count()) + " found", ")");
  return d;
}

namespace {
diffusion::DiffusionFlags diffusion_flags;
}  // namespace

void add_diffusion_flags(CLI::App* command) {
  const char* why = " (files record theirs: a different value is refused; a file without settings takes it)";
  command->add_option("--schedule", diffusion_flags.schedule,
                      std::string("the models' noise schedule: linear, cosine, rdd-cosine") + why);
  command->add_option("--timesteps", diffusion_flags.timesteps, std::string("the models' T (default 1000)") + why)
      ->check(CLI::PositiveNumber);
  command->add_option("--prediction", diffusion_flags.prediction, std::string("the networks' target: eps, x0, v") + why);
}

namespace {
std::vector<std::pair<CLI::App*, std::function<int()>>>& registry() {
  static std::vector<std::pair<CLI::App*, std::function<int()>>> commands;
  return commands;
}
}  // namespace

void on_run(CLI::App* command, std::function<int()> run) {
  registry().emplace_back(command, std::move(run));
}

int run_selected(CLI::App&) {
  diffusion::set_diffusion_flags(diffusion_flags);
  for (auto& [command, run] : registry())
    if (command->parsed()) return run();
  return 0;
}

}  // namespace diffkd::apps
