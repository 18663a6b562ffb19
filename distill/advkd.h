#pragma once
// Adv-KD: adversarial knowledge distillation of a diffusion teacher into a one-pass staged
// generator (Amde Mekonnen et al. 2024; METHODS.md 2). Stage k's head must produce the teacher's
// trajectory state at stage k's timestep and resolution; each stage is trained adversarially only,
// against a discriminator that sees (image, the noise it came from):
//   L_D = softplus(-D(y, z)) + softplus(D(G(z), z)) + 10 GP,   then every D weight clipped to +-0.1
//   GP  = (||grad_x^ D(x^, z)||_2 - 1)^2,  x^ = a y + (1 - a) G(z),  a ~ U(0, 1) per sample (WGAN-GP)
//   L_G = softplus(-D(G(z), z))   (non-saturating; a fresh generator pass after the D step)
// all batch means. The logistic loss (or a Wasserstein one), the penalty and the clipping are each
// switchable.

#include <string>

#include "nn/adversarial.h"

namespace diffkd::distill {

struct AdversarialOptions {
  std::string gan = "logistic";  // or "wgan": -D(y) + D(G(z)) and -D(G(z))
  double gp_weight = 10.0;       // 0: no penalty
  double clip = 0.1;             // 0: no weight clipping
};

// The WGAN-GP penalty; its gradient w.r.t. D's weights goes through a double backward.
Tensor gradient_penalty(nn::ConditionalDiscriminator& d, const Tensor& real, const Tensor& fake, const Tensor& noise,
                        const Tensor& alpha);

struct DiscriminatorLossParts {
  double real = 0, fake = 0, gp = 0;
};
// fake is treated as a constant (the D step).
Tensor discriminator_loss(nn::ConditionalDiscriminator& d, const Tensor& real, const Tensor& fake, const Tensor& noise,
                          const Tensor& alpha, const AdversarialOptions& options, DiscriminatorLossParts* parts = nullptr);
Tensor generator_loss(nn::ConditionalDiscriminator& d, const Tensor& fake, const Tensor& noise,
                      const AdversarialOptions& options);

}  // namespace diffkd::distill
