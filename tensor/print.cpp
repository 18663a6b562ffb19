// Printing, in PyTorch's style: tensor([[1.0000, 2.0000], ...], shape=[2,2], dtype=f32).
// Long dims are summarised with "..." (first and last 3 entries).

#include <iomanip>
#include <ostream>

#include "tensor/tensor.h"

namespace diffkd {

namespace {
void print_dim(std::ostream& os, const std::vector<double>& v, const Shape& shape,
               const Shape& strides, int64_t d, int64_t base) {
  if (shape.empty()) {
    os << v[base];
    return;
  }
  os << '[';
  const int64_t n = shape[d];
  for (int64_t i = 0; i < n; ++i) {
    if (n > 6 && i == 3) {
      os << "..., ";
      i = n - 3;
    }
    if (d + 1 == static_cast<int64_t>(shape.size())) os << v[base + i * strides[d]];
    else print_dim(os, v, shape, strides, d + 1, base + i * strides[d]);
    if (i + 1 < n) os << (d + 1 == static_cast<int64_t>(shape.size()) ? ", " : ",\n ");
  }
  os << ']';
}
}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  const std::vector<double> v = t.to_vector();
  const auto flags = os.flags();
  const auto precision = os.precision();
  os << "tensor(" << std::fixed << std::setprecision(t.dtype() == DType::I64 ? 0 : 4);
  print_dim(os, v, t.shape(), contiguous_strides(t.shape()), 0, 0);
  os.flags(flags);
  os.precision(precision);
  return os << ", shape=" << shape_str(t.shape()) << ", dtype=" << dtype_name(t.dtype())
            << (t.device().type == DeviceType::CPU ? "" : ", device=" + t.device().str()) << ")";
}

}  // namespace diffkd
