#include "tensor/tensor.h"

#include <sstream>

#include "tensor/backend.h"

namespace diffkd {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? "," : "") << shape[i];
  os << ']';
  return os.str();
}

std::string dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F64: return "f64";
    case DType::I64: return "i64";
  }
  return "?";
}

void throw_dtype_error(const char* op, DType t) {
  fail(op, ": dtype ", dtype_name(t), " is not supported here");
}

std::string Device::str() const {
  return type == DeviceType::CPU ? "cpu" : "cuda:" + std::to_string(index);
}

Device parse_device(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda_device(0);
  if (text.rfind("cuda:", 0) == 0 && text.size() > 5 &&
      text.find_first_not_of("0123456789", 5) == std::string::npos && text.size() < 9)
    return cuda_device(std::stoi(text.substr(5)));
  fail("unknown device '", text, "' (expected cpu, cuda or cuda:N)");
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

int64_t numel_of(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t s : shape) DK_CHECK(s >= 0, "empty: negative size in shape ", shape_str(shape));
  Tensor t;
  Backend& be = backend(device);
  t.storage_ = std::make_shared<Storage>(numel_of(shape) * itemsize(dtype), device, &be.allocator());
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  return t;
}

int64_t Tensor::numel() const { return numel_of(shape_); }

Device Tensor::device() const { return storage_ ? storage_->device() : cpu(); }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] == 1) continue;  // the stride of a size-1 dim never matters
    if (strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

int64_t Tensor::wrap_dim(int64_t d) const {
  const int64_t n = dim();
  DK_CHECK(d >= -n && d < n, "dimension ", d, " out of range for tensor of shape ",
           shape_str(shape_));
  return d < 0 ? d + n : d;
}

void* Tensor::raw_data() const {
  DK_CHECK(defined(), "raw_data: tensor is undefined");
  storage_->bump_version();  // the caller may write through the pointer
  return static_cast<char*>(storage_->data()) + offset_ * static_cast<int64_t>(itemsize(dtype_));
}

const void* Tensor::raw_data_for_reading() const {
  DK_CHECK(defined(), "raw_data_for_reading: tensor is undefined");
  return static_cast<const char*>(storage_->data()) + offset_ * static_cast<int64_t>(itemsize(dtype_));
}

Tensor Tensor::as_strided(const Shape& shape, const Shape& strides, int64_t offset) const {
  DK_CHECK(defined(), "as_strided: tensor is undefined");
  DK_CHECK(shape.size() == strides.size(), "as_strided: shape ", shape_str(shape), " and strides ",
           shape_str(strides), " differ in rank");
  Tensor t;
  t.storage_ = storage_;
  t.shape_ = shape;
  t.strides_ = strides;
  t.offset_ = offset;
  t.dtype_ = dtype_;
  return t;
}

Tensor Tensor::clone_data() const {
  Tensor t = empty(shape_, dtype_, device());
  backend(device()).copy(*this, t);
  return t;
}

double Tensor::item() const {
  DK_CHECK(numel() == 1, "item: tensor of shape ", shape_str(shape_), " has ", numel(),
           " elements, expected 1");
  return to_vector()[0];
}

std::vector<double> Tensor::to_vector() const {
  DK_CHECK(defined(), "to_vector: tensor is undefined");
  // A device tensor is copied to the host first (the copy waits for the device).
  Tensor f64 = empty(shape_, DType::F64, cpu());
  backend(device()).copy(*this, f64);
  const double* p = f64.data<double>();
  return std::vector<double>(p, p + f64.numel());
}

}  // namespace diffkd
