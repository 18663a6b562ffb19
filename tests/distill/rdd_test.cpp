// RDD's losses, memory bank and projection head against the independent PyTorch golden
// (tests/golden/make_distill_goldens.py, written from METHODS.md 4.3): values and gradients in
// float64, both queue flattenings and both pointer branches.

#include "distill/rdd.h"

#include <gtest/gtest.h>

#include "tests/distill/distill_fixtures.h"

namespace diffkd::testing {
namespace {

using namespace distill;

// A memory bank holding the golden's queue, in float64.
MemoryBank golden_bank(const safetensors::Contents& g, const std::string& queue, const std::string& ptr, bool faithful) {
  MemoryBank bank(g.at(queue).size(0), g.at(queue).size(1), 4, faithful, 0);
  bank.queue = g.at(queue).clone_data();
  bank.pointer = static_cast<int64_t>(g.at(ptr).item());
  return bank;
}

TEST(RddGolden, QueueEnqueueBothFlatteningsAndBothPointerBranches) {
  const auto g = distill_golden("distill_rdd.safetensors");
  const Tensor units = pixel_unit_vectors(g.at("F_T"));
  const std::vector<int64_t> columns = as_ints(g.at("enqueue_columns"));
  for (const bool faithful : {false, true}) {
    const std::string mode = faithful ? "faithful" : "clean";
    MemoryBank bank = golden_bank(g, "queue_before", "ptr_before", faithful);
    bank.enqueue(units, columns);
    expect_all_close(bank.queue.to_vector(), g.at("queue_after_" + mode).to_vector(), 1e-12, 1e-14, "queue " + mode);
    EXPECT_EQ(bank.pointer, static_cast<int64_t>(g.at("ptr_after").item()));
    MemoryBank second = golden_bank(g, "queue2_before", "ptr2_before", faithful);
    second.enqueue(units, columns);
    expect_all_close(second.queue.to_vector(), g.at("queue2_after_" + mode).to_vector(), 1e-12, 1e-14, "queue2 " + mode);
    EXPECT_EQ(second.pointer, static_cast<int64_t>(g.at("ptr2_after").item()));
  }
  EXPECT_EQ(MemoryBank(10, 6, 4, false, 0).contrast_index, as_ints(g.at("contrast_index")));
  // round(linspace(0, 4095, 512)) as numpy rounds (halves to even).
  const MemoryBank big(4096, 2, 512, false, 0);
  EXPECT_EQ(big.contrast_index[1], 8);  // 8.0137
  EXPECT_EQ(big.contrast_index.back(), 4095);
}

TEST(RddGolden, LossesAndGradientsMatchPyTorch) {
  const auto g = distill_golden("distill_rdd.safetensors");
  const double tau_cfd = g.at("tau_cfd").item(), tau_isp2p = g.at("tau_isp2p").item();
  const double tau_contrast = g.at("tau_contrast").item(), tau_kd = g.at("tau_kd").item();
  const Tensor f_t = g.at("F_T");
  ProjectionHead head(6, 0);
  head.conv1->weight = g.at("head.w1").clone_data();
  head.conv2->weight = g.at("head.w2").clone_data();
  head.bn->weight = g.at("head.bn_weight").clone_data();
  head.bn->bias = g.at("head.bn_bias").clone_data();
  head.bn->running_mean = zeros({6}, DType::F64);
  head.bn->running_var = ones({6}, DType::F64);
  for (Tensor* p : {&head.conv1->weight, &head.conv2->weight, &head.bn->weight, &head.bn->bias}) p->requires_grad_();
  head.train();

  // Each term alone, then the total with the head's gradients.
  auto student = [&] {
    Tensor s = g.at("F_S").clone_data();
    s.requires_grad_();
    return s;
  };
  Tensor s1 = student();
  Tensor cfd = rcfd_loss(f_t, s1, tau_cfd);
  cfd.backward();
  expect_all_close({cfd.item()}, {g.at("loss_cfd").item()}, 1e-10, 1e-14, "cfd");
  expect_all_close(s1.grad().to_vector(), g.at("grad_F_S_cfd").to_vector(), 1e-9, 1e-13, "grad cfd");
  Tensor s2 = student();
  Tensor isp2p = pixel_relation_loss(f_t, s2, tau_isp2p);
  isp2p.backward();
  expect_all_close({isp2p.item()}, {g.at("loss_isp2p").item()}, 1e-10, 1e-14, "isp2p");
  expect_all_close(s2.grad().to_vector(), g.at("grad_F_S_isp2p").to_vector(), 1e-9, 1e-13, "grad isp2p");

  const Tensor teacher_units = pixel_unit_vectors(f_t);
  for (const bool faithful : {false, true}) {
    MemoryBank bank = golden_bank(g, "queue_before", "ptr_before", faithful);
    bank.enqueue(teacher_units, as_ints(g.at("enqueue_columns")));
    Tensor s3 = student();
    Tensor mp2p = memory_relation_loss(teacher_units, pixel_unit_vectors(head.forward(s3)), bank.contrast_rows(),
                                       tau_contrast, tau_kd);
    const std::string mode = faithful ? "faithful" : "clean";
    expect_all_close({mp2p.item()}, {g.at("loss_mp2p_" + mode).item()}, 1e-10, 1e-14, "mp2p " + mode);
    if (faithful) continue;
    head.zero_grad();
    mp2p.backward();
    expect_all_close(s3.grad().to_vector(), g.at("grad_F_S_mp2p_clean").to_vector(), 1e-9, 1e-13, "grad mp2p");
  }

  MemoryBank bank = golden_bank(g, "queue_before", "ptr_before", false);
  bank.enqueue(teacher_units, as_ints(g.at("enqueue_columns")));
  head.zero_grad();
  Tensor s4 = student();
  Tensor total = rcfd_loss(f_t, s4, tau_cfd) + pixel_relation_loss(f_t, s4, tau_isp2p) +
                 g.at("mp2p_weight").item() * memory_relation_loss(teacher_units, pixel_unit_vectors(head.forward(s4)),
                                                                   bank.contrast_rows(), tau_contrast, tau_kd);
  total.backward();
  expect_all_close({total.item()}, {g.at("loss_total_clean").item()}, 1e-10, 1e-14, "total");
  expect_all_close(s4.grad().to_vector(), g.at("grad_F_S").to_vector(), 1e-9, 1e-13, "grad F_S");
  expect_all_close(head.conv1->weight.grad().to_vector(), g.at("grad_head.w1").to_vector(), 1e-9, 1e-13, "grad w1");
  expect_all_close(head.conv2->weight.grad().to_vector(), g.at("grad_head.w2").to_vector(), 1e-9, 1e-13, "grad w2");
  expect_all_close(head.bn->weight.grad().to_vector(), g.at("grad_head.bn_weight").to_vector(), 1e-9, 1e-13, "grad bn w");
  expect_all_close(head.bn->bias.grad().to_vector(), g.at("grad_head.bn_bias").to_vector(), 1e-9, 1e-13, "grad bn b");
}

}  // namespace
}  // namespace diffkd::testing
