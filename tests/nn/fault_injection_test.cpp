// A crash or a full disk loses nothing (nn/atomic_file.h's fault injection, through the command
// line): `diffkd train` and `diffkd distill --method progressive` killed with SIGKILL in the
// middle of a checkpoint's files, or of latest.json, or of the final model, resume to the same
// bytes as an uninterrupted run; a write failing part way as on a full disk stops the run with
// one line and leaves the previous checkpoint to resume from; an unwritable run folder is one line.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/cuda/require_gpu.h"
#include "tests/test_paths.h"

namespace diffkd {
namespace {

namespace fs = std::filesystem;

fs::path folder(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / "faults" / name;
  fs::remove_all(dir);
  fs::create_directories(dir.parent_path());
  return dir;
}

// Runs a shell command with its output in `log`; its wait status.
int run(const std::string& command, const fs::path& log) {
  return std::system((command + " > " + log.string() + " 2>&1").c_str());
}

bool killed(int status) {  // by SIGKILL, seen directly or through the shell
  return (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
         (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL);
}

std::string contents(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// Whether a write was cut short: a temp file left under dir.
bool left_a_temp_file(const fs::path& dir) {
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    if (entry.path().filename().string().find(".tmp.") != std::string::npos) return true;
  return false;
}

const std::string kCli = std::string("OMP_NUM_THREADS=1 ") + diffkd::testing::cli_path();
const std::string kTrain = kCli + " train --data synthetic --model " + diffkd::testing::test_configs_dir() +
                           "/tiny-unet-28.json --steps 6 --batch 4 --warmup 1 --sample-every 0"
                           " --checkpoint-every 2 --log-every 1 --run-dir ";

TEST(FaultInjection, TrainKilledMidWriteResumesToTheSameBytes) {
  const fs::path straight = folder("train-straight");
  ASSERT_EQ(run(kTrain + straight.string(), straight.string() + ".log"), 0);
  // The atomic writes of this run: run.json (1); per checkpoint at steps 2, 4, 6 the model, EMA,
  // state, latest.json and loss.png (2-6, 7-11, 12-16); model-raw and model at the end (17, 18).
  for (const int write : {3, 5, 9, 17}) {
    const fs::path dir = folder("train-kill-" + std::to_string(write));
    const int status = run("DIFFKD_FAULT=kill:" + std::to_string(write) + " " + kTrain + dir.string(),
                           dir.string() + ".log");
    ASSERT_TRUE(killed(status)) << "write " << write << ": status " << status;
    EXPECT_TRUE(left_a_temp_file(dir)) << "write " << write << " was not cut short";
    ASSERT_EQ(run(kTrain + dir.string() + " --resume", dir.string() + ".resume.log"), 0) << "write " << write;
    for (const char* file : {"model.safetensors", "model-raw.safetensors"})
      EXPECT_TRUE(contents(dir / file) == contents(straight / file)) << file << " after a kill in write " << write;
  }
}

// The same on the GPU (`--device cuda`): the resumed run's weights are the uninterrupted run's
// bytes, which needs the GPU's step to be deterministic and its state to round-trip exactly.
TEST(FaultInjection, CudaTrainKilledMidWriteResumesToTheSameBytes) {
  DIFFKD_SKIP_UNLESS_GPUS(1, testing::no_gpu_reason());
  const std::string train = kCli + " --device cuda" + kTrain.substr(kCli.size());
  const fs::path straight = folder("cuda-train-straight"), dir = folder("cuda-train-kill");
  ASSERT_EQ(run(train + straight.string(), straight.string() + ".log"), 0) << contents(straight.string() + ".log");
  ASSERT_TRUE(killed(run("DIFFKD_FAULT=kill:9 " + train + dir.string(), dir.string() + ".log")));
  ASSERT_EQ(run(train + dir.string() + " --resume", dir.string() + ".resume.log"), 0);
  for (const char* file : {"model.safetensors", "model-raw.safetensors"})
    EXPECT_TRUE(contents(dir / file) == contents(straight / file)) << file;
}

TEST(FaultInjection, DiskFullStopsInOneLineAndTheLastCheckpointResumes) {
  const fs::path straight = folder("full-straight"), dir = folder("full");
  ASSERT_EQ(run(kTrain + straight.string(), straight.string() + ".log"), 0);
  // Write 9: step 4's training state.
  const fs::path log = dir.string() + ".log";
  const int status = run("DIFFKD_FAULT=full:9 " + kTrain + dir.string(), log);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << "status " << status;
  const std::string output = contents(log);
  const size_t error = output.find("diffkd: error: ");
  ASSERT_NE(error, std::string::npos) << output;
  const std::string line = output.substr(error, output.find('\n', error) - error);
  EXPECT_NE(line.find("step-0000004/state.safetensors"), std::string::npos) << line;
  EXPECT_NE(line.find("No space left on device"), std::string::npos) << line;
  EXPECT_FALSE(left_a_temp_file(dir));  // the failed write cleaned up after itself
  EXPECT_NE(contents(dir / "latest.json").find("step-0000002"), std::string::npos);
  ASSERT_EQ(run(kTrain + dir.string() + " --resume", dir.string() + ".resume.log"), 0);
  EXPECT_TRUE(contents(dir / "model.safetensors") == contents(straight / "model.safetensors"));
}

TEST(FaultInjection, UnwritableRunFolderIsOneLine) {
  const fs::path dir = folder("unwritable");
  fs::create_directories(dir);
  std::ofstream(dir / "a-file") << "not a folder";
  // (As root, permission bits do not stop a write: a run folder inside a plain file does.)
  const fs::path log = dir.string() + ".log";
  const int status = run(kTrain + (dir / "a-file" / "run").string(), log);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << "status " << status;
  const std::string output = contents(log);
  const size_t error = output.find("diffkd: error: ");
  ASSERT_NE(error, std::string::npos) << output;
  EXPECT_NE(output.find("a-file/run", error), std::string::npos) << output;
  EXPECT_EQ(output.find("diffkd:", error + 1), std::string::npos) << output;  // one error line
}

TEST(FaultInjection, BadFaultSpecIsOneLine) {
  const fs::path dir = folder("bad-spec");
  const fs::path log = dir.string() + ".log";
  EXPECT_NE(run("DIFFKD_FAULT=kill " + kTrain + dir.string(), log), 0);
  EXPECT_NE(contents(log).find("DIFFKD_FAULT='kill': expected kill:N or full:N"), std::string::npos) << contents(log);
}

TEST(FaultInjection, ProgressiveKilledMidWriteResumesToTheSameBytes) {
  const fs::path teacher = folder("pd-teacher");
  ASSERT_EQ(run(kCli + " train --data synthetic --model " + diffkd::testing::test_configs_dir() +
                    "/tiny-unet-28.json --steps 2 --batch 4 --warmup 1 --timesteps 100 --sample-every 0 --run-dir " +
                    teacher.string(),
                teacher.string() + ".log"),
            0);
  const std::string distill = kCli + " distill --method progressive --teacher " + (teacher / "model.safetensors").string() +
                              " --data synthetic:64 --start-steps 4 --updates 2 --batch 4 --checkpoint-every 1"
                              " --log-every 1 --run-dir ";
  const fs::path straight = folder("pd-straight");
  ASSERT_EQ(run(distill + straight.string(), straight.string() + ".log"), 0);
  // Writes: run.json (1), then per step the model, the state and latest.json, the stage's student
  // before step 2's and step 4's checkpoints: 2-4 (step 1), 5 (student), 6-8 (step 2), ...
  for (const int write : {3, 5, 7}) {
    const fs::path dir = folder("pd-kill-" + std::to_string(write));
    const int status = run("DIFFKD_FAULT=kill:" + std::to_string(write) + " " + distill + dir.string(),
                           dir.string() + ".log");
    ASSERT_TRUE(killed(status)) << "write " << write << ": status " << status;
    ASSERT_EQ(run(distill + dir.string() + " --resume", dir.string() + ".resume.log"), 0) << "write " << write;
    for (const char* file : {"students/steps-0002.safetensors", "students/steps-0001.safetensors"})
      EXPECT_TRUE(contents(dir / file) == contents(straight / file)) << file << " after a kill in write " << write;
  }
}

}  // namespace
}  // namespace diffkd
