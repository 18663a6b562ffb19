#pragma once
// The run folder that `train` and every `distill` method write, and what makes it resumable:
//   run.json                  the settings the run was started with (checked on --resume)
//   checkpoints/step-N/       the caller's files for step N (the newest keep_last are kept)
//   latest.json               names the newest complete checkpoint; written last, atomically,
//                             so an interrupted checkpoint never becomes the one resumed
//   metrics.csv, metrics.jsonl, loss.png
// In a data-parallel run (dist/) every rank holds a RunFolder but only rank 0 touches the folder:
// it checks and writes, the others learn the checkpoint to resume from and write nothing.
// Settings fall in two kinds: those that define what is being trained (model, data, seed, ...)
// must match on --resume; the others (learning rate, step counts) may change, and each change is
// printed and recorded.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dist/communicator.h"
#include "tensor/device.h"

namespace diffkd::diffusion {

// Compares settings recorded in `path` with this invocation's; fails on a changed `fixed` key,
// prints the other changes unless quiet.
void check_resumed_settings(const std::filesystem::path& path, const nlohmann::json& now,
                            const std::vector<std::string>& fixed, bool quiet);

// How a run is driven: the same for every `distill` method.
struct RunControl {
  std::string dir;
  uint64_t seed = 0;  // every random draw of the run
  int64_t log_every = 50;
  int64_t checkpoint_every = 500;
  int64_t keep_last = 2;
  bool resume = false;
  bool quiet = false;      // no progress lines (tests)
  int64_t stop_after = 0;  // stop after this step as Ctrl-C would (tests of resuming); 0: never
  Device device = cpu();   // where the networks run (recorded in run.json; bit-identical resume: the same device and threads)
  // One line naming the bad flag (`who` is the command, e.g. "distill dkdm").
  void check(const std::string& who) const;
  // After step `step` of `total`: saves a checkpoint when one is due (every checkpoint_every, at
  // the end, when forced, or when the run stops; on the rank that writes `run`) and returns
  // whether the run stops here (`interrupted`: Ctrl-C on any rank; or stop_after), having said how
  // to continue.
  bool finish_step(int64_t step, int64_t total, bool force_checkpoint, bool interrupted, const class RunFolder& run,
                   const std::function<void(int64_t)>& save_checkpoint) const;
};

class RunFolder {
 public:
  // Without resume, a folder that already holds a run is an error (nothing a user ran is lost).
  // Collective over `comm`: rank 0 checks and prepares the folder, every rank learns latest().
  RunFolder(const std::string& dir, const nlohmann::json& settings, const std::vector<std::string>& fixed,
            bool resume, bool quiet, dist::Communicator& comm = dist::world());

  const std::filesystem::path& dir() const { return dir_; }
  bool writes() const { return writes_; }  // rank 0; the others' writes below do nothing
  // The step and folder of the checkpoint to resume from; nullopt on a fresh start.
  std::optional<std::pair<int64_t, std::filesystem::path>> latest() const { return latest_; }
  // A fresh (emptied) folder for the checkpoint of `step` (only its path where !writes()); call
  // checkpoint_done when it is written.
  std::filesystem::path checkpoint_folder(int64_t step) const;
  void checkpoint_done(int64_t step, int64_t keep_last);

  // One metrics row (CSV header from the first row's names); also feeds loss.png with `loss`.
  void log_metrics(int64_t step, const std::vector<std::pair<std::string, double>>& values);
  void write_loss_chart(const std::string& title) const;

 private:
  void prepare(const nlohmann::json& settings, const std::vector<std::string>& fixed, bool resume, bool quiet);

  std::filesystem::path dir_;
  bool writes_;
  std::optional<std::pair<int64_t, std::filesystem::path>> latest_;
  std::vector<std::pair<double, double>> losses_;
};

// "step 120/4000  loss 0.03120  lr 4.9e-05  1.32 steps/s  ETA 50m20s", measured over the steps since
// the previous line.
class ProgressLine {
 public:
  explicit ProgressLine(int64_t total) : total_(total), window_start_(std::chrono::steady_clock::now()) {}
  // Returns the rate (steps/s) over the window; prints unless quiet.
  double report(int64_t step, int64_t window_steps, const std::string& fields, bool quiet);

 private:
  int64_t total_;
  std::chrono::steady_clock::time_point window_start_;
};

// While alive, Ctrl-C (SIGINT) and SIGTERM (what mpirun sends every rank on Ctrl-C, and what
// schedulers send before a kill) only set a flag that the run polls after each step (it then
// saves a checkpoint and stops); the previous handlers are restored however the run ends.
class InterruptGuard {
 public:
  InterruptGuard();
  ~InterruptGuard();
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;
  bool requested() const;

 private:
  void (*previous_int_)(int);
  void (*previous_term_)(int);
};

std::string format_duration(double seconds);  // "1h05m", "3m07s"
// A JSON file; one-line error naming it when unreadable.
nlohmann::json read_json_file(const std::filesystem::path& path);
std::string step_folder_name(int64_t step);   // "step-0000120"

}  // namespace diffkd::diffusion
