// The subcommand registry (see commands.h).

#include "apps/commands.h"

#include <utility>
#include <vector>

namespace diffkd::apps {

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
  for (auto& [command, run] : registry())
    if (command->parsed()) return run();
  return 0;
}

}  // namespace diffkd::apps
