// Run folders shared by `train` and `distill` (see run_folder.h).

#include "diffusion/run_folder.h"

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "data/plot.h"
#include "nn/atomic_file.h"
#include "tensor/error.h"

namespace diffkd::diffusion {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json_file(const fs::path& path) {
  try {
    std::ifstream in(path);
    return json::parse(in);
  } catch (const json::exception& e) {
    fail(path.string(), ": unreadable (", e.what(), ")");
  }
}

namespace {

// Keeps the metrics rows up to `step`: later ones belong to steps that will be redone.
void truncate_metrics(const fs::path& dir, int64_t step, std::vector<std::pair<double, double>>& losses) {
  for (const char* name : {"metrics.csv", "metrics.jsonl"}) {
    std::ifstream rows(dir / name);
    if (!rows) continue;
    std::string line, kept, header;
    while (std::getline(rows, line)) {
      if (line.empty()) continue;
      if (line[0] == '{') {  // a line cut short by a killed run is dropped
        const json row = json::parse(line, nullptr, false);
        if (!row.is_discarded() && row.contains("step") && row.at("step").get<int64_t>() <= step) kept += line + "\n";
        continue;
      }
      if (!std::isdigit(static_cast<unsigned char>(line[0]))) {  // the CSV header
        header = line;
        kept += line + "\n";
        continue;
      }
      if (header.empty() || std::count(line.begin(), line.end(), ',') + 1 !=
                                std::count(header.begin(), header.end(), ',') + 1 ||
          std::stoll(line) > step)
        continue;  // past the checkpoint, or cut short
      kept += line + "\n";
      // loss.png follows the "loss" column.
      std::vector<std::string> names, cells;
      std::stringstream hs(header), ls(line);
      for (std::string c; std::getline(hs, c, ',');) names.push_back(c);
      for (std::string c; std::getline(ls, c, ',');) cells.push_back(c);
      const auto at = std::find(names.begin(), names.end(), "loss");
      if (at != names.end() && static_cast<size_t>(at - names.begin()) < cells.size())
        losses.emplace_back(std::stod(cells[0]), std::stod(cells[at - names.begin()]));
    }
    write_file_atomically((dir / name).string(), kept);
  }
}

}  // namespace

void check_resumed_settings(const fs::path& path, const json& now, const std::vector<std::string>& fixed,
                            bool quiet) {
  const json was = read_json_file(path);
  for (const auto& [key, value] : now.items()) {
    if (!was.contains(key) || was.at(key) == value) continue;
    DK_CHECK(std::find(fixed.begin(), fixed.end(), key) == fixed.end(), "--resume: ", path.string(), " records ", key,
             " = ", was.at(key).dump(), ", this command gives ", value.dump(),
             "; resume with the run's settings or start a new run folder");
    if (!quiet) std::printf("resume: %s changed from %s to %s\n", key.c_str(), was.at(key).dump().c_str(), value.dump().c_str());
  }
}

void RunControl::check(const std::string& who) const {
  DK_CHECK(log_every > 0 && checkpoint_every > 0 && keep_last > 0, who,
           ": --log-every, --checkpoint-every and --keep-last must be positive (keep-last 0 would delete the "
           "checkpoint a resume needs)");
}

bool RunControl::finish_step(int64_t step, int64_t total, bool force_checkpoint, bool interrupted, const RunFolder& run,
                             const std::function<void(int64_t)>& save_checkpoint) const {
  const bool stop = interrupted || step == stop_after;
  if ((step % checkpoint_every == 0 || step == total || force_checkpoint || stop) && run.writes()) save_checkpoint(step);
  if (stop && !quiet)
    std::printf("interrupted: checkpoint saved at step %lld; continue with --resume\n", static_cast<long long>(step));
  return stop;
}

RunFolder::RunFolder(const std::string& dir, const json& settings, const std::vector<std::string>& fixed,
                     bool resume, bool quiet, dist::Communicator& comm)
    : dir_(dir), writes_(comm.rank() == 0) {
  if (writes_) prepare(settings, fixed, resume, quiet);
  // Rank 0's answer on every rank (an error on rank 0 ends them all: apps/main.cpp).
  int64_t step = latest_ ? latest_->first : -1;
  comm.broadcast(&step, sizeof step, 0);
  const std::string folder = comm.broadcast_string(latest_ ? latest_->second.string() : "");
  if (step >= 0) latest_ = {{step, fs::path(folder)}};
}

void RunFolder::prepare(const json& settings, const std::vector<std::string>& fixed, bool resume, bool quiet) {
  const fs::path latest = dir_ / "latest.json", settings_path = dir_ / "run.json";
  DK_CHECK(resume || !fs::exists(latest), dir_.string(), " already holds a run (", latest.string(),
           "); pass --resume to continue it, or choose another run folder");
  fs::create_directories(dir_ / "checkpoints");
  if (resume && fs::exists(latest)) {
    if (fs::exists(settings_path)) check_resumed_settings(settings_path, settings, fixed, quiet);
    const json j = read_json_file(latest);
    try {
      latest_ = {{j.at("step").get<int64_t>(), dir_ / "checkpoints" / j.at("checkpoint").get<std::string>()}};
    } catch (const json::exception& e) {
      fail(latest.string(), ": expected {\"step\": N, \"checkpoint\": \"step-N\"} (", e.what(), ")");
    }
    DK_CHECK(fs::is_directory(latest_->second), latest.string(), " names ", latest_->second.string(),
             ", which is missing");
    truncate_metrics(dir_, latest_->first, losses_);
  }
  write_file_atomically(settings_path.string(), settings.dump(2) + "\n");
}

fs::path RunFolder::checkpoint_folder(int64_t step) const {
  const fs::path folder = dir_ / "checkpoints" / step_folder_name(step);
  if (!writes_) return folder;
  fs::remove_all(folder);  // a half-written one from an interrupted run
  fs::create_directories(folder);
  return folder;
}

void RunFolder::checkpoint_done(int64_t step, int64_t keep_last) {
  if (!writes_) return;
  write_file_atomically((dir_ / "latest.json").string(),
                        json{{"step", step}, {"checkpoint", step_folder_name(step)}}.dump() + "\n");
  std::vector<fs::path> all;
  for (const auto& entry : fs::directory_iterator(dir_ / "checkpoints"))
    if (entry.is_directory() && entry.path().filename().string().rfind("step-", 0) == 0) all.push_back(entry.path());
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i + keep_last < all.size(); ++i) fs::remove_all(all[i]);
}

void RunFolder::log_metrics(int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  if (!writes_) return;
  const bool fresh = !fs::exists(dir_ / "metrics.csv");
  std::ofstream csv(dir_ / "metrics.csv", std::ios::app);
  if (fresh) {
    csv << "step";
    for (const auto& [name, value] : values) csv << ',' << name;
    csv << '\n';
  }
  csv << step;
  json row = {{"step", step}};
  for (const auto& [name, value] : values) {
    csv << ',' << value;
    row[name] = value;
    if (name == "loss") losses_.emplace_back(static_cast<double>(step), value);
  }
  csv << '\n';
  std::ofstream(dir_ / "metrics.jsonl", std::ios::app) << row.dump() << '\n';
}

void RunFolder::write_loss_chart(const std::string& title) const {
  if (writes_ && !losses_.empty()) data::write_line_chart((dir_ / "loss.png").string(), losses_, title, "step");
}

double ProgressLine::report(int64_t step, int64_t window_steps, const std::string& fields, bool quiet) {
  const auto now = std::chrono::steady_clock::now();
  const double rate = window_steps / std::max(1e-9, std::chrono::duration<double>(now - window_start_).count());
  window_start_ = now;
  if (!quiet) {
    std::printf("step %lld/%lld  %s  %.2f steps/s  ETA %s\n", static_cast<long long>(step),
                static_cast<long long>(total_), fields.c_str(), rate, format_duration((total_ - step) / rate).c_str());
    std::fflush(stdout);
  }
  return rate;
}

namespace {
std::atomic<bool> g_interrupted{false};
extern "C" void on_interrupt(int) { g_interrupted = true; }
}  // namespace

InterruptGuard::InterruptGuard()
    : previous_int_(std::signal(SIGINT, on_interrupt)), previous_term_(std::signal(SIGTERM, on_interrupt)) {
  g_interrupted = false;
}
InterruptGuard::~InterruptGuard() {
  std::signal(SIGINT, previous_int_);
  std::signal(SIGTERM, previous_term_);
}
bool InterruptGuard::requested() const { return g_interrupted.load(); }

std::string format_duration(double seconds) {
  char s[32];
  const long total = static_cast<long>(seconds);
  if (total >= 3600) std::snprintf(s, sizeof s, "%ldh%02ldm", total / 3600, (total / 60) % 60);
  else std::snprintf(s, sizeof s, "%ldm%02lds", total / 60, total % 60);
  return s;
}

std::string step_folder_name(int64_t step) {
  char s[32];
  std::snprintf(s, sizeof s, "step-%07lld", static_cast<long long>(step));
  return s;
}

}  // namespace diffkd::diffusion
