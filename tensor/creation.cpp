#include "tensor/creation.h"

#include <cmath>

#include "tensor/backend.h"
#include "tensor/philox.h"

namespace diffkd {

uint64_t Generator::reserve(int64_t n) {
  const uint64_t first = offset;
  offset += philox::blocks_for(static_cast<uint64_t>(n));
  return first;
}

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}

void manual_seed(uint64_t seed) { default_generator() = Generator(seed); }

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = Tensor::empty(shape, dtype, device);
  backend(device).fill(t, value);
  return t;
}
Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor scalar_tensor(double value, DType dtype, Device device) { return full({}, value, dtype, device); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype(), t.device()); }
Tensor full_like(const Tensor& t, double value) { return full(t.shape(), value, t.dtype(), t.device()); }

Tensor arange(double start, double end, double step, DType dtype, Device device) {
  DK_CHECK(step != 0, "arange: step must be non-zero");
  const double span = (end - start) / step;
  const int64_t n = span > 0 ? static_cast<int64_t>(std::ceil(span)) : 0;
  Tensor t = Tensor::empty({n}, dtype, device);
  backend(device).arange(t, start, step);
  return t;
}

Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype,
                   Device device) {
  DK_CHECK(static_cast<int64_t>(values.size()) == numel_of(shape), "from_vector: ", values.size(),
           " values do not fill shape ", shape_str(shape));
  Tensor host = Tensor::empty(shape, DType::F64, cpu());
  std::copy(values.begin(), values.end(), host.data<double>());
  Tensor t = Tensor::empty(shape, dtype, device);
  backend(device).copy(host, t);
  return t;
}

namespace {
Tensor draw(const Shape& shape, RandomKind kind, uint64_t seed, uint64_t offset, double a,
            double b, DType dtype, Device device) {
  Tensor t = Tensor::empty(shape, dtype, device);
  backend(device).random(t, kind, seed, offset, a, b);
  return t;
}
}  // namespace

Tensor rand(const Shape& shape, Generator& gen, DType dtype, Device device) {
  return uniform(shape, 0.0, 1.0, gen, dtype, device);
}
Tensor uniform(const Shape& shape, double low, double high, Generator& gen, DType dtype,
               Device device) {
  return draw(shape, RandomKind::Uniform, gen.seed, gen.reserve(numel_of(shape)), low, high, dtype,
              device);
}
Tensor randn(const Shape& shape, Generator& gen, DType dtype, Device device) {
  return draw(shape, RandomKind::Normal, gen.seed, gen.reserve(numel_of(shape)), 0.0, 1.0, dtype,
              device);
}
Tensor rand_at(const Shape& shape, uint64_t seed, uint64_t offset, DType dtype, Device device) {
  return draw(shape, RandomKind::Uniform, seed, offset, 0.0, 1.0, dtype, device);
}
Tensor randn_at(const Shape& shape, uint64_t seed, uint64_t offset, DType dtype, Device device) {
  return draw(shape, RandomKind::Normal, seed, offset, 0.0, 1.0, dtype, device);
}

}  // namespace diffkd
