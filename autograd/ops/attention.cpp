// Scaled dot-product attention (Vaswani et al. 2017, eq. 1), composed:
//   attention(q, k, v) = softmax(q k^T * scale) v,  scale = 1 / sqrt(d) by default
// q [..., Lq, d], k [..., Lk, d], v [..., Lk, dv]. Gradients come from matmul and softmax.

#include <cmath>

#include "autograd/op_helpers.h"

namespace diffkd {

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    std::optional<double> scale) {
  DK_CHECK(q.dim() >= 2 && k.dim() == q.dim() && v.dim() == q.dim() && q.size(-1) == k.size(-1) &&
               k.size(-2) == v.size(-2),
           "attention: q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ",
           shape_str(v.shape()), " do not agree (expected [..., Lq, d], [..., Lk, d], [..., Lk, dv])");
  const double s = scale.value_or(1.0 / std::sqrt(static_cast<double>(q.size(-1))));
  Tensor scores = matmul(q, transpose(k, -2, -1)) * s;  // [..., Lq, Lk]
  return matmul(softmax(scores, -1), v);                // [..., Lq, dv]
}

}  // namespace diffkd
