// Saving distilled students (see common.h).

#include "distill/common.h"

#include <algorithm>

#include "autograd/ops.h"
#include "tensor/creation.h"
#include "tensor/philox.h"

namespace diffkd::distill {

std::vector<int64_t> keyed_permutation(int64_t n, int64_t k, uint64_t key, uint64_t counter) {
  DK_CHECK(k >= 0 && k <= n, "keyed_permutation: the first ", k, " of ", n);
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  for (int64_t i = 0; i < k && i < n - 1; ++i) {
    const double u = philox::uniform_at(key, counter, static_cast<uint64_t>(i));
    std::swap(order[i], order[i + std::min<int64_t>(n - 1 - i, static_cast<int64_t>(u * (n - i)))]);
  }
  order.resize(k);
  return order;
}

Tensor rows_on(const Tensor& all, const std::vector<int64_t>& indices, Device device) {
  const std::vector<double> idx(indices.begin(), indices.end());
  return to_device(index_select(all, 0, from_vector(idx, {static_cast<int64_t>(idx.size())}, DType::I64)), device);
}

void save_distilled_model(const std::string& path, const nn::UNet& net, const diffusion::DiffusionSpec& spec,
                          const std::string& sampler, nn::Metadata extra) {
  extra["diffusion"] = spec.to_json();
  extra["sampler"] = sampler;
  nn::save_model(path, net, net.config().to_json(), std::move(extra));
}

}  // namespace diffkd::distill
