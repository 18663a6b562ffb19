// Learning-rate schedules (see lr_schedule.h).

#include "nn/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "tensor/error.h"

namespace diffkd::nn {

double LrSchedule::at(int64_t step) const {
  if (warmup_steps > 0 && step <= warmup_steps)
    return base_lr * static_cast<double>(step) / static_cast<double>(warmup_steps);
  if (kind == Kind::Constant) return base_lr;
  DK_CHECK(total_steps > warmup_steps, "LrSchedule: total_steps ", total_steps,
           " must exceed warmup_steps ", warmup_steps);
  const double progress =
      std::clamp(static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps),
                 0.0, 1.0);
  if (kind == Kind::Linear) return base_lr * (1.0 - progress);
  return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + std::cos(M_PI * progress));
}

LrSchedule::Kind LrSchedule::parse_kind(const std::string& name) {
  if (name == "constant") return Kind::Constant;
  if (name == "linear") return Kind::Linear;
  if (name == "cosine") return Kind::Cosine;
  fail("unknown learning-rate schedule '", name, "' (expected constant, linear or cosine)");
}

}  // namespace diffkd::nn
