// Batch slices and the bucketed gradient all-reduce (see data_parallel.h).

#include "dist/data_parallel.h"

#include <algorithm>

#include "autograd/grad_mode.h"
#include "tensor/backend.h"
#include "tensor/error.h"

namespace diffkd::dist {

BatchShard shard_of(int64_t global_batch, int rank, int size) {
  DK_CHECK(global_batch > 0 && size > 0 && rank >= 0 && rank < size, "shard_of: rank ", rank,
           " of ", size, " of a batch of ", global_batch);
  const int64_t base = global_batch / size, extra = global_batch % size;
  BatchShard s;
  s.count = base + (rank < extra ? 1 : 0);
  s.first = rank * base + std::min<int64_t>(rank, extra);
  s.total = global_batch;
  return s;
}

namespace {

// A contiguous view of elements [offset, offset + numel(shape)) of a flat tensor.
Tensor view_of(const Tensor& flat, int64_t offset, const Shape& shape) {
  return flat.as_strided(shape, contiguous_strides(shape), flat.offset() + offset);
}

// Reduces grads[begin, end) (their numels summing to `elements`) through one flat bucket.
void reduce_bucket(const std::vector<Tensor>& grads, size_t begin, size_t end, int64_t elements,
                   double weight, Communicator& comm) {
  const Tensor& first = grads[begin];
  Tensor flat = Tensor::empty({elements}, first.dtype(), comm.buffer_device(first.device()));
  int64_t at = 0;
  for (size_t i = begin; i < end; ++i) {
    copy_tensor(grads[i], view_of(flat, at, grads[i].shape()));
    at += grads[i].numel();
  }
  if (weight != 1.0) backend(flat.device()).unary(UnaryOp::Affine, flat, flat, weight, 0.0);
  comm.all_reduce_sum(flat);
  at = 0;
  for (size_t i = begin; i < end; ++i) {
    copy_tensor(view_of(flat, at, grads[i].shape()), grads[i]);
    at += grads[i].numel();
  }
}

}  // namespace

void all_reduce_gradients(const TensorList& params, double weight, Communicator& comm,
                          int64_t bucket_bytes) {
  if (comm.size() == 1 && weight == 1.0) return;
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  for (const Tensor& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  // A parameter with a gradient on one rank only would shift every later bucket.
  const double here = static_cast<double>(grads.size());
  DK_CHECK(comm.sum(here) == here * comm.size(), "all_reduce_gradients: rank ", comm.rank(), " has ",
           grads.size(), " gradients, another rank a different number (every rank must run the same model)");
  size_t begin = 0;
  int64_t elements = 0, bytes = 0;
  for (size_t i = 0; i < grads.size(); ++i) {
    DK_CHECK(grads[i].is_contiguous(), "all_reduce_gradients: gradient ", i, " is not contiguous");
    // A bucket holds one dtype on one device.
    if (i > begin && (bytes >= bucket_bytes || grads[i].dtype() != grads[begin].dtype() ||
                      grads[i].device() != grads[begin].device())) {
      reduce_bucket(grads, begin, i, elements, weight, comm);
      begin = i;
      elements = bytes = 0;
    }
    elements += grads[i].numel();
    bytes += grads[i].numel() * static_cast<int64_t>(itemsize(grads[i].dtype()));
  }
  if (begin < grads.size()) reduce_bucket(grads, begin, grads.size(), elements, weight, comm);
}

void broadcast_tensors(const TensorList& tensors, Communicator& comm) {
  if (comm.size() == 1) return;
  for (const Tensor& t : tensors) {
    DK_CHECK(t.is_contiguous(), "broadcast_tensors: a tensor of ", t.numel(), " elements is not contiguous");
    Tensor host = t.device().type == DeviceType::CPU ? t : Tensor::empty(t.shape(), t.dtype(), cpu());
    if (t.device().type != DeviceType::CPU) copy_tensor(t, host);
    comm.broadcast(host.raw_data(), t.numel() * static_cast<int64_t>(itemsize(t.dtype())), 0);
    if (t.device().type != DeviceType::CPU) copy_tensor(host, t);
  }
}

bool sum_step_scalars(std::vector<double>& shares, bool flag, Communicator& comm) {
  if (comm.size() == 1) return flag;
  Tensor all = Tensor::empty({static_cast<int64_t>(shares.size()) + 1}, DType::F64);
  std::copy(shares.begin(), shares.end(), all.data<double>());
  all.data<double>()[shares.size()] = flag ? 1.0 : 0.0;
  comm.all_reduce_sum(all);
  std::copy(all.data<double>(), all.data<double>() + shares.size(), shares.begin());
  return all.data<double>()[shares.size()] > 0;
}

}  // namespace diffkd::dist
