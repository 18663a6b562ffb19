// Tensor basics: strided views sharing storage, contiguity, creation, dtype conversion,
// printing, and clear errors.

#include <gtest/gtest.h>

#include <sstream>

#include "autograd/ops.h"
#include "tensor/backend.h"
#include "tensor/cuda_support.h"

namespace diffkd {
namespace {

TEST(Tensor, ViewsShareStorageAndOnlyChangeMetadata) {
  Tensor x = arange(0, 24, 1, DType::F32);
  Tensor r = reshape(x, {2, 3, 4});
  Tensor p = permute(r, {2, 0, 1});
  Tensor n = narrow(r, 2, 1, 2);
  Tensor e = expand(reshape(arange(3), {3, 1}), {3, 5});
  EXPECT_EQ(r.storage(), x.storage());
  EXPECT_EQ(p.storage(), x.storage());
  EXPECT_EQ(n.storage(), x.storage());
  EXPECT_EQ(r.strides(), (Shape{12, 4, 1}));
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.strides(), (Shape{1, 12, 4}));
  EXPECT_EQ(n.offset(), 1);
  EXPECT_EQ(e.strides(), (Shape{1, 0}));
  EXPECT_TRUE(r.is_contiguous());
  EXPECT_FALSE(p.is_contiguous());
  EXPECT_FALSE(n.is_contiguous());
  // Element (i, j, k) of the permuted view is r[j, k, i].
  EXPECT_EQ(p.to_vector()[1 * 6 + 1 * 3 + 2], 1 * 12 + 2 * 4 + 1);
}

TEST(Tensor, ContiguousCopiesOnlyWhenNeeded) {
  Tensor x = reshape(arange(0, 6, 1), {2, 3});
  EXPECT_EQ(contiguous(x).storage(), x.storage());
  Tensor t = transpose(x, 0, 1);
  Tensor c = contiguous(t);
  EXPECT_NE(c.storage(), x.storage());
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.to_vector(), (std::vector<double>{0, 3, 1, 4, 2, 5}));
}

TEST(Tensor, ReshapeOfNonViewableLayoutCopies) {
  Tensor t = transpose(reshape(arange(0, 6, 1), {2, 3}), 0, 1);  // [3, 2], strides [1, 3]
  Tensor r = reshape(t, {6});
  EXPECT_NE(r.storage(), t.storage());
  EXPECT_EQ(r.to_vector(), (std::vector<double>{0, 3, 1, 4, 2, 5}));
  EXPECT_THROW(view(t, {6}), Error);
}

TEST(Tensor, SliceWithStepIsAView) {
  Tensor x = arange(0, 10, 1);
  Tensor s = slice(x, 0, 1, 9, 3);  // 1, 4, 7
  EXPECT_EQ(s.storage(), x.storage());
  EXPECT_EQ(s.to_vector(), (std::vector<double>{1, 4, 7}));
  EXPECT_EQ(slice(x, 0, -3, 10).to_vector(), (std::vector<double>{7, 8, 9}));
}

TEST(Tensor, CreationFunctions) {
  EXPECT_EQ(zeros({2, 2}).to_vector(), (std::vector<double>(4, 0.0)));
  EXPECT_EQ(full({3}, 2.5, DType::F64).to_vector(), (std::vector<double>(3, 2.5)));
  EXPECT_EQ(arange(1, 2, 0.25).to_vector(), (std::vector<double>{1, 1.25, 1.5, 1.75}));
  EXPECT_EQ(scalar_tensor(3).dim(), 0);
  EXPECT_EQ(scalar_tensor(3).numel(), 1);
  EXPECT_EQ(Tensor::empty({0, 3}).numel(), 0);
}

TEST(Tensor, CopyConvertsDtypes) {
  Tensor d = from_vector({1.5, -2.25, 3}, {3}, DType::F64);
  Tensor f = Tensor::empty({3}, DType::F32);
  backend(cpu()).copy(d, f);
  EXPECT_EQ(f.to_vector(), (std::vector<double>{1.5, -2.25, 3}));
  Tensor i = from_vector({4, 7}, {2}, DType::I64);
  EXPECT_EQ(i.data<int64_t>()[1], 7);
  EXPECT_THROW(i.data<float>(), Error);
}

TEST(Tensor, PrintsLikePyTorch) {
  std::ostringstream os;
  os << reshape(arange(0, 4, 1), {2, 2});
  EXPECT_EQ(os.str(), "tensor([[0.0000, 1.0000],\n [2.0000, 3.0000]], shape=[2,2], dtype=f32)");
  std::ostringstream long_row;
  long_row << arange(0, 10, 1, DType::I64);
  EXPECT_EQ(long_row.str(), "tensor([0, 1, 2, ..., 7, 8, 9], shape=[10], dtype=i64)");
}

TEST(TensorErrors, ShapeMismatchNamesTheOpAndShapes) {
  try {
    add(zeros({2, 3}), zeros({4}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("add"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2,3]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[4]"), std::string::npos) << msg;
  }
  try {
    conv2d(zeros({2, 3, 8, 8}), zeros({4, 5, 3, 3}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "conv2d: input [2,3,8,8] has 3 channels, weight [4,5,3,3] expects 5");
  }
  EXPECT_THROW(matmul(zeros({2, 3}), zeros({4, 2})), Error);
  EXPECT_THROW(reshape(zeros({2, 3}), {4, 2}), Error);
  EXPECT_THROW(mul(zeros({2}), zeros({2}, DType::F64)), Error);
  EXPECT_THROW(zeros({2}).item(), Error);
  EXPECT_THROW(sum(zeros({2, 2}), {2}), Error);
  EXPECT_THROW(cross_entropy(zeros({2, 3}), from_vector({0, 3}, {2}, DType::I64)), Error);
  EXPECT_THROW(group_norm(zeros({1, 6, 2, 2}), 4), Error);
  // A device tensor without a GPU (or without CUDA in the build) is an error, not a crash; the
  // message is checked in tests/cuda (CudaSupport.NoDeviceIsAClearError).
  if (cuda_device_count() == 0) {
    EXPECT_THROW(zeros({2}, DType::F32, cuda_device()), Error);
  }
}

}  // namespace
}  // namespace diffkd
