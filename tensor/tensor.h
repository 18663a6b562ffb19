#pragma once
// Tensor: a strided view of a Storage, in PyTorch's dimension order (NCHW, row-major).
//
//   element (i0, ..., ik) lives at  data + offset + sum_d i_d * strides[d]   (strides in elements)
//
// Copying a Tensor is shallow: both copies share storage and autograd history, as in PyTorch.
// Views (reshape, permute, narrow, expand; autograd/ops/view.cpp) share the storage and only
// change shape/strides/offset. A stride of 0 is a broadcast dimension.
//
// The autograd fields (requires_grad, grad, grad_fn) are held here so that every tensor can take
// part in a graph; their behaviour is implemented in autograd/.
//
// Example:
//   Tensor x = randn({2, 3}, gen).requires_grad_();
//   Tensor y = sum(x * x);
//   y.backward();            // x.grad() == 2 * x

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <vector>

#include "tensor/device.h"
#include "tensor/dtype.h"
#include "tensor/error.h"
#include "tensor/storage.h"

namespace diffkd {

using Shape = std::vector<int64_t>;

struct AutogradMeta;  // autograd/node.h
class Node;

class Tensor {
 public:
  Tensor() = default;  // undefined tensor: no storage, defined() == false

  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = cpu());

  // --- metadata -------------------------------------------------------------------------------
  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t d) const { return shape_[wrap_dim(d)]; }
  int64_t stride(int64_t d) const { return strides_[wrap_dim(d)]; }
  int64_t offset() const { return offset_; }
  int64_t numel() const;
  DType dtype() const { return dtype_; }
  Device device() const;
  bool is_contiguous() const;
  // Maps a possibly negative dim into [0, dim()), naming the tensor's shape when out of range.
  int64_t wrap_dim(int64_t d) const;

  // --- data -----------------------------------------------------------------------------------
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  // Pointer to element (0, ..., 0); advances the storage's version (storage.h), as the caller
  // may write through it.
  void* raw_data() const;
  template <typename T> T* data() const {
    DK_CHECK(dtype_of<T>::value == dtype_, "Tensor::data: tensor is ", dtype_name(dtype_),
             ", requested ", dtype_name(dtype_of<T>::value));
    return static_cast<T*>(raw_data());
  }
  // The same pointer for reading only: the version is left as it is.
  const void* raw_data_for_reading() const;
  template <typename T> const T* data_for_reading() const {
    DK_CHECK(dtype_of<T>::value == dtype_, "Tensor::data_for_reading: tensor is ",
             dtype_name(dtype_), ", requested ", dtype_name(dtype_of<T>::value));
    return static_cast<const T*>(raw_data_for_reading());
  }
  double item() const;  // value of a one-element tensor, as double
  std::vector<double> to_vector() const;  // all elements in row-major order

  // A view of the same storage with other metadata; no autograd history (see autograd/ops/view).
  Tensor as_strided(const Shape& shape, const Shape& strides, int64_t offset) const;
  // Same data, fresh contiguous storage, no autograd history.
  Tensor clone_data() const;

  // --- autograd (implemented in autograd/) ----------------------------------------------------
  bool requires_grad() const;
  Tensor& requires_grad_(bool value = true);  // only on leaves
  Tensor grad() const;                        // accumulated gradient of a leaf (undefined if none)
  void zero_grad();                           // drops the accumulated gradient
  bool is_leaf() const;
  const std::shared_ptr<Node>& grad_fn() const;
  Tensor detach() const;  // same data, no history
  // Reverse-mode gradient of this (scalar, or with an explicit grad) w.r.t. all leaves.
  // An undefined grad means ones (for a one-element tensor).
  void backward() const;
  // create_graph implies retain_graph.
  void backward(const Tensor& grad, bool retain_graph = false, bool create_graph = false) const;

  const std::shared_ptr<AutogradMeta>& autograd_meta() const { return autograd_; }
  void set_autograd_meta(std::shared_ptr<AutogradMeta> meta) { autograd_ = std::move(meta); }

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Shape strides_;
  int64_t offset_ = 0;  // in elements
  DType dtype_ = DType::F32;
  std::shared_ptr<AutogradMeta> autograd_;
};

Shape contiguous_strides(const Shape& shape);
int64_t numel_of(const Shape& shape);

std::ostream& operator<<(std::ostream& os, const Tensor& t);

}  // namespace diffkd
