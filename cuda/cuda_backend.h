#pragma once
// The CUDA backend: the kernel interface of tensor/backend.h on a GPU. GEMM on cuBLAS,
// convolutions on cuDNN, everything else as our own kernels (one .cu file per family), all on
// one stream (cuda/runtime.h). The per-element math is the CPU backend's (tensor/scalar_ops.h,
// tensor/philox.h, tensor/optimizer_math.h), so the CPU tests check the arithmetic of both.
// f32 and f64 (gradchecks) throughout; i64 where the CPU backend has it.
// This header has no CUDA types: .cpp and .cu files of cuda/ share it.

#include "tensor/backend.h"

namespace diffkd::cuda {


class CudaBackend final : public Backend {
 public:
  Allocator& allocator() override;

  void copy(const Tensor& src, const Tensor& dst) override;
  void fill(const Tensor& dst, double value) override;
  void arange(const Tensor& dst, double start, double step) override;
  void random(const Tensor& dst, RandomKind kind, uint64_t seed, uint64_t offset, double a,
              double b) override;

  void unary(UnaryOp op, const Tensor& x, const Tensor& out, double a, double b) override;
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) override;
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) override;

  void reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims,
              const Tensor& out) override;
  void softmax(const Tensor& x, int64_t dim, bool log, const Tensor& out) override;

  void group_norm(const Tensor& x, const Tensor& w, const Tensor& b, int64_t groups, double eps,
                  const Tensor& y, const Tensor& mean, const Tensor& rstd) override;
  void group_norm_backward(const Tensor& gy, const Tensor& x, const Tensor& w, const Tensor& mean,
                           const Tensor& rstd, int64_t groups, const Tensor& gx, const Tensor& gw,
                           const Tensor& gb) override;

  void gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b,
            double beta, const Tensor& c) override;

  void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out,
                      const Conv2dParams& p) override;
  void conv2d_backward_input(const Tensor& grad_out, const Tensor& w, const Tensor& grad_x,
                             const Conv2dParams& p) override;
  void conv2d_backward_weight(const Tensor& x, const Tensor& grad_out, const Tensor& grad_w,
                              const Conv2dParams& p) override;

  void avg_pool2d(const Tensor& x, const Tensor& out, const Pool2dParams& p) override;
  void avg_pool2d_backward(const Tensor& grad_out, const Tensor& grad_x,
                           const Pool2dParams& p) override;
  void max_pool2d(const Tensor& x, const Tensor& out, const Tensor& indices,
                  const Pool2dParams& p) override;
  void max_pool2d_backward(const Tensor& grad_out, const Tensor& indices,
                           const Tensor& grad_x, const Pool2dParams& p) override;
  void upsample_nearest(const Tensor& x, const Tensor& out) override;
  void upsample_nearest_backward(const Tensor& grad_out, const Tensor& grad_x) override;
  void resize_bilinear(const Tensor& x, const Tensor& out) override;
  void resize_bilinear_backward(const Tensor& grad_out, const Tensor& grad_x) override;

  void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) override;
  void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) override;

  void adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                   const Tensor& exp_avg_sq, const AdamHyper& h) override;
  void axpby(double a, const Tensor& x, double b, const Tensor& y) override;
};

CudaBackend& cuda_backend();

// dst = src with both on the GPU, any strides, converting dtype (elementwise.cu).
void copy_on_device(const Tensor& src, const Tensor& dst);
// t itself when contiguous, else a contiguous copy on its device.
Tensor contiguous_on_device(const Tensor& t);

}  // namespace diffkd::cuda
