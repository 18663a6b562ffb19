#pragma once
// Reader for the golden files written by tests/golden/make_goldens.py (PyTorch 1.13):
//   "DKGOLD01", u32 count, then per tensor: u32 name_len, name, u32 dtype (0 f32, 1 f64, 2 i64),
//   u32 ndim, i64 shape[ndim], raw little-endian row-major data.
// Parameters of a case are tensors named "param.*".

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "tensor/creation.h"
#include "tensor/tensor.h"
#include "tests/test_paths.h"

namespace diffkd::testing {

class GoldenFile {
 public:
  explicit GoldenFile(const std::string& name) : path_(diffkd::testing::golden_dir() + "/" + name) {
    std::ifstream in(path_, std::ios::binary);
    DK_CHECK(in.good(), "golden file ", path_, " not found (run /usr/bin/python3 ",
             "tests/golden/make_goldens.py)");
    char magic[8];
    read(in, magic, 8);
    DK_CHECK(std::memcmp(magic, "DKGOLD01", 8) == 0, path_, ": bad magic, expected DKGOLD01");
    const uint32_t count = read_u32(in);
    for (uint32_t i = 0; i < count; ++i) {
      std::string name(read_u32(in), '\0');
      read(in, name.data(), name.size());
      const uint32_t code = read_u32(in);
      DK_CHECK(code <= 2, path_, ": tensor ", name, " has unknown dtype code ", code);
      const DType dtype = code == 0 ? DType::F32 : (code == 1 ? DType::F64 : DType::I64);
      Shape shape(read_u32(in));
      for (auto& s : shape) read(in, reinterpret_cast<char*>(&s), 8);
      Tensor t = Tensor::empty(shape, dtype);
      read(in, static_cast<char*>(t.raw_data()), t.numel() * itemsize(dtype));
      tensors_[name] = t;
    }
  }

  bool has(const std::string& name) const { return tensors_.count(name) > 0; }
  const Tensor& operator[](const std::string& name) const {
    auto it = tensors_.find(name);
    DK_CHECK(it != tensors_.end(), path_, ": no tensor named ", name);
    return it->second;
  }
  double scalar(const std::string& name) const { return (*this)[name].item(); }
  std::vector<int64_t> ints(const std::string& name) const {
    std::vector<int64_t> out;
    for (double v : (*this)[name].to_vector()) out.push_back(static_cast<int64_t>(v));
    return out;
  }
  const std::string& path() const { return path_; }

 private:
  void read(std::ifstream& in, char* dst, size_t n) {
    in.read(dst, static_cast<std::streamsize>(n));
    DK_CHECK(in.gcount() == static_cast<std::streamsize>(n), path_, ": truncated");
  }
  uint32_t read_u32(std::ifstream& in) {
    uint32_t v;
    read(in, reinterpret_cast<char*>(&v), 4);
    return v;
  }

  std::string path_;
  std::map<std::string, Tensor> tensors_;
};

// Largest |a - b| / (atol + rtol * |b|) over elements; <= 1 means within tolerance.
inline double tolerance_ratio(const Tensor& a, const Tensor& b, double atol, double rtol) {
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i]) != std::isnan(y[i])) return INFINITY;  // NaN on one side only fails
    if (std::isnan(x[i])) continue;                              // NaN in both agrees
    if (std::isinf(x[i]) || std::isinf(y[i])) {
      if (x[i] != y[i]) return INFINITY;
      continue;
    }
    worst = std::max(worst, std::abs(x[i] - y[i]) / (atol + rtol * std::abs(y[i])));
  }
  return worst;
}

}  // namespace diffkd::testing

// Expects tensors a (ours) and b (PyTorch's) to agree in shape and within atol + rtol * |b|.
#define DK_EXPECT_CLOSE(a, b, atol, rtol, what)                                                  \
  do {                                                                                           \
    const ::diffkd::Tensor& dk_a = (a);                                                          \
    const ::diffkd::Tensor& dk_b = (b);                                                          \
    ASSERT_EQ(dk_a.shape(), dk_b.shape()) << what << ": shape";                                  \
    const double dk_r = ::diffkd::testing::tolerance_ratio(dk_a, dk_b, atol, rtol);             \
    EXPECT_LE(dk_r, 1.0) << what << ": worst error is " << dk_r << "x the tolerance";           \
  } while (0)
