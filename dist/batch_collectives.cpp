// Differentiable collectives (see batch_collectives.h).

#include "dist/batch_collectives.h"

#include "autograd/node.h"
#include "autograd/ops.h"
#include "tensor/backend.h"
#include "tensor/creation.h"

namespace diffkd::dist {

Tensor sum_over_ranks(const Tensor& x, Communicator& comm) {
  if (comm.size() == 1) return x;
  DK_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::F64, "sum_over_ranks: an f32 or f64 tensor, got ",
           dtype_name(x.dtype()));
  Tensor buffer = Tensor::empty(x.shape(), x.dtype(), comm.buffer_device(x.device()));
  copy_tensor(x, buffer);
  comm.all_reduce_sum(buffer);
  Tensor out = buffer;
  if (buffer.device() != x.device()) {
    out = Tensor::empty(x.shape(), x.dtype(), x.device());
    copy_tensor(buffer, out);
  }
  // d(sum_s l_s)/dx_r = sum_s dl_s/dy: the same collective on the gradient.
  Communicator* c = &comm;
  return record("sum_over_ranks", {x}, out,
                [c](const GradContext& ctx) { return TensorList{sum_over_ranks(ctx.grad, *c)}; });
}

Tensor gather_batch(const Tensor& rows, const BatchShard& shard, Communicator& comm) {
  DK_CHECK(rows.dim() >= 1 && rows.size(0) == shard.count, "gather_batch: rank ", comm.rank(), " holds ",
           rows.dim() >= 1 ? rows.size(0) : 0, " rows, its slice of the batch of ", shard.total, " has ", shard.count);
  if (comm.size() == 1) return rows;
  // This rank's rows in place, zeros elsewhere: the sum over the ranks is the whole batch.
  TensorList parts;
  auto zero_rows = [&](int64_t n) {
    Shape s = rows.shape();
    s[0] = n;
    parts.push_back(zeros(s, rows.dtype(), rows.device()));
  };
  if (shard.first > 0) zero_rows(shard.first);
  if (shard.count > 0) parts.push_back(rows);
  if (shard.first + shard.count < shard.total) zero_rows(shard.total - shard.first - shard.count);
  return sum_over_ranks(parts.size() == 1 ? parts[0] : concat(parts, 0), comm);
}

Tensor rank_share(const Tensor& loss, const BatchShard& shard) {
  return shard.count == shard.total ? loss : loss * shard.weight();
}

}  // namespace diffkd::dist
