// The `diffkd` command line. Thin by design: parse flags (CLI11), call the library, print
// progress, and turn any diffkd::Error into one line on stderr and a non-zero exit.

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>
#include <omp.h>

#include "apps/commands.h"
#include "diffkd_version.h"
#include "dist/communicator.h"
#include "tensor/error.h"

namespace {

// One GPU per rank: the rank's index on its machine picks one of the GPUs CUDA_VISIBLE_DEVICES
// lists (all of them when unset), before the CUDA runtime starts. A rank past the GPUs sees none
// and `--device cuda` says so.
void pick_gpu_of_local_rank(int local_rank) {
  std::vector<std::string> visible;
  if (const char* list = std::getenv("CUDA_VISIBLE_DEVICES")) {
    std::stringstream in(list);
    for (std::string id; std::getline(in, id, ',');) visible.push_back(id);
  }
  const std::string mine = visible.empty() ? std::to_string(local_rank)
                           : local_rank < static_cast<int>(visible.size()) ? visible[local_rank] : "-1";
  setenv("CUDA_VISIBLE_DEVICES", mine.c_str(), 1);
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines reach a log file as they happen
  CLI::App app{"diffkd: train diffusion models and distil them into fast students"};
  app.set_version_flag("--version", std::string("diffkd ") + DIFFKD_VERSION);
  app.require_subcommand(0, 1);
  app.fallthrough();  // global options such as --threads may follow the subcommand
  int threads = 0;
  app.add_option("--threads", threads,
                 "CPU threads for every kernel (default: OMP_NUM_THREADS or all cores)")
      ->check(CLI::NonNegativeNumber);
  std::string device = "auto";
  app.add_option("--device", device,
                 "where models run: auto (cuda when a GPU is usable, else cpu), cpu, cuda (one GPU per process: pick it with CUDA_VISIBLE_DEVICES; under mpirun each rank takes its own)")
      ->capture_default_str();
  diffkd::apps::add_demo_command(app);
  diffkd::apps::add_info_command(app);
  diffkd::apps::add_train_command(app);
  diffkd::apps::add_sample_command(app);
  diffkd::apps::add_train_classifier_command(app);
  diffkd::apps::add_eval_command(app);
  diffkd::apps::add_report_command(app);
  diffkd::apps::add_distill_command(app);
  diffkd::apps::add_forward_command(app);
  diffkd::apps::add_convert_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // One line naming the subcommand and the flag, as for every other bad input.
    std::string where;
    for (const CLI::App* sub : app.get_subcommands()) where = sub->get_name() + ": ";
    std::fprintf(stderr, "diffkd: error: %s%s (see --help)\n", where.c_str(), e.what());
    return 2;
  }
  if (app.get_subcommands().empty()) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  }
  if (threads > 0) omp_set_num_threads(threads);
  diffkd::apps::set_device_flag(device);
  // Under mpirun an error on one rank would leave the others waiting in a collective: it ends
  // them all, after saying which rank failed.
  std::string rank_label;
  const auto failed = [&](const char* kind, const char* what, int code) {
    std::fprintf(stderr, "diffkd: %s%s: %s\n", kind, rank_label.c_str(), what);
    diffkd::dist::abort_all(code);
    return code;
  };
  try {
    diffkd::dist::Communicator& world = diffkd::dist::world();
    if (world.size() > 1) {
      rank_label = " (rank " + std::to_string(world.rank()) + " of " + std::to_string(world.size()) + ")";
      const std::string command = app.get_subcommands().front()->get_name();
      DK_CHECK(command == "train" || command == "distill", command,
               " runs in one process; of the commands train and distill run data-parallel under mpirun");
      pick_gpu_of_local_rank(world.local_rank());
    }
    return diffkd::apps::run_selected(app);
  } catch (const diffkd::Error& e) {
    return failed("error", e.what(), 1);
  } catch (const std::filesystem::filesystem_error& e) {
    // A folder that cannot be made or a file that cannot be moved is bad input, not a bug:
    // "cannot create directories: Not a directory [runs/x/checkpoints]" names the path and why.
    std::string what = e.what();
    if (what.rfind("filesystem error: ", 0) == 0) what.erase(0, 18);
    return failed("error", what.c_str(), 1);
  } catch (const std::exception& e) {
    return failed("internal error", e.what(), 2);
  }
}
