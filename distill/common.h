#pragma once
// What every distillation method shares: writing a student that `diffkd sample`, `eval` and
// `report` load like any model. Its metadata carries the diffusion settings, the sampler it was
// distilled for (the default when sampling it) and the method.

#include <cstdint>
#include <string>
#include <vector>

#include "diffusion/trainer.h"
#include "nn/checkpoint.h"
#include "nn/unet.h"

namespace diffkd::distill {

// The first k entries of a random permutation of 0..n-1 (a partial Fisher-Yates shuffle; k = n for
// a whole one), keyed by (key, counter): a resumed run redraws exactly the same batches.
std::vector<int64_t> keyed_permutation(int64_t n, int64_t k, uint64_t key, uint64_t counter);

// Rows `indices` of a [N, ...] store on the host, placed on `device` (a training batch).
Tensor rows_on(const Tensor& all, const std::vector<int64_t>& indices, Device device);

// RNG stream keys of the distillation methods (xor-ed with the run's seed), one per kind of draw.
namespace streams {
constexpr uint64_t kStudentEpochOrder = 0x5701, kRddEnqueue = 0x4dd, kAdvKdEpochOrder = 0xadf,
                   kAdvKdGpMix = 0xa1f, kDkdmPick = 8103;
}

// sampler: a spec as `diffkd report --samplers` takes it, e.g. "ddim:4:trailing" or "student".
void save_distilled_model(const std::string& path, const nn::UNet& net, const diffusion::DiffusionSpec& spec,
                          const std::string& sampler, nn::Metadata extra);

}  // namespace diffkd::distill
