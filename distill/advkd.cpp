// Adv-KD (see advkd.h).

#include "distill/advkd.h"

#include "autograd/engine.h"

namespace diffkd::distill {

Tensor gradient_penalty(nn::ConditionalDiscriminator& d, const Tensor& real, const Tensor& fake, const Tensor& noise,
                        const Tensor& alpha) {
  const Shape per_sample{alpha.size(0), 1, 1, 1};
  Tensor x_hat = (reshape(alpha, per_sample) * real + (1.0 - reshape(alpha, per_sample)) * fake.detach()).detach();
  x_hat.requires_grad_();
  // d sum(D(x^)) / d x^ with create_graph, so the penalty itself can be differentiated.
  const Tensor g = grad({sum(d.forward(x_hat, noise))}, {x_hat}, {}, true, true)[0];
  const Tensor norm = sqrt(sum(square(flatten(g, 1)), {1}));
  return mean(square(norm - 1.0));
}

Tensor discriminator_loss(nn::ConditionalDiscriminator& d, const Tensor& real, const Tensor& fake, const Tensor& noise,
                          const Tensor& alpha, const AdversarialOptions& o, DiscriminatorLossParts* parts) {
  // Separate passes (and BatchNorm statistics) for real and fake, as the official code.
  const Tensor d_real = d.forward(real, noise), d_fake = d.forward(fake.detach(), noise);
  const bool logistic = o.gan == "logistic";
  DK_CHECK(logistic || o.gan == "wgan", "adv-kd: unknown GAN loss '", o.gan, "' (expected logistic or wgan)");
  const Tensor real_term = logistic ? mean(softplus(-d_real)) : -mean(d_real);
  const Tensor fake_term = logistic ? mean(softplus(d_fake)) : mean(d_fake);
  Tensor total = real_term + fake_term;
  double gp_value = 0;
  if (o.gp_weight > 0) {
    const Tensor gp = gradient_penalty(d, real, fake, noise, alpha);
    gp_value = gp.item();
    total = total + o.gp_weight * gp;
  }
  if (parts) *parts = {real_term.item(), fake_term.item(), gp_value};
  return total;
}

Tensor generator_loss(nn::ConditionalDiscriminator& d, const Tensor& fake, const Tensor& noise, const AdversarialOptions& o) {
  const Tensor d_fake = d.forward(fake, noise);
  return o.gan == "logistic" ? mean(softplus(-d_fake)) : -mean(d_fake);
}

}  // namespace diffkd::distill
