#pragma once
// Learning-rate schedules as a pure function of the step, so a resumed run gets the same rates:
//   constant, linear anneal to 0 (Progressive Distillation), or cosine to min_lr,
// each after an optional linear warm-up from 0 (Denoising Student, DDPM).

#include <cstdint>
#include <string>

namespace diffkd::nn {

struct LrSchedule {
  enum class Kind { Constant, Linear, Cosine } kind = Kind::Constant;
  double base_lr = 1e-4;
  double min_lr = 0.0;        // cosine only
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;    // linear and cosine: the step at which the anneal ends

  // The rate for optimiser step `step` (1-based).
  double at(int64_t step) const;
  static Kind parse_kind(const std::string& name);  // "constant", "linear", "cosine"
};

}  // namespace diffkd::nn
