// `diffkd demo`: the main job until the diffusion pipeline lands. Trains a small MLP with the
// autograd on a built-in two-spirals classification set (generated from a seed, no files) and
// prints the loss falling, with steps/s and ETA, then the final accuracy.

#include <chrono>
#include <cmath>
#include <cstdio>

#include "apps/commands.h"
#include "autograd/ops.h"
#include "tensor/backend.h"

namespace diffkd::apps {

namespace {

struct DemoOptions {
  int64_t steps = 2000;
  int64_t hidden = 64;
  double lr = 0.3;
  uint64_t seed = 0;
  int64_t points = 512;
};
DemoOptions demo_options;

// Two interleaved spirals, classes 0 and 1, radius growing with the angle, plus a little noise.
void spirals(int64_t n, uint64_t seed, Tensor& x, Tensor& y) {
  Generator gen(seed);
  const std::vector<double> u = rand({n}, gen, DType::F64).to_vector();
  const std::vector<double> noise = randn({n, 2}, gen, DType::F64).to_vector();
  std::vector<double> xs(2 * n), ys(n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t cls = i % 2;
    const double t = 0.25 + 2.75 * u[i];  // turns
    const double angle = 2 * M_PI * t + M_PI * cls;
    const double r = t / 3.0;
    xs[2 * i] = r * std::cos(angle) + 0.02 * noise[2 * i];
    xs[2 * i + 1] = r * std::sin(angle) + 0.02 * noise[2 * i + 1];
    ys[i] = static_cast<double>(cls);
  }
  x = from_vector(xs, {n, 2});
  y = from_vector(ys, {n}, DType::I64);
}

int run_demo() {
  const DemoOptions& o = demo_options;
  DK_CHECK(o.steps > 0 && o.hidden > 0 && o.points > 1 && o.lr > 0,
           "demo: --steps, --hidden, --points and --lr must be positive");
  Tensor x, y;
  spirals(o.points, o.seed, x, y);
  Generator gen(o.seed + 1);
  // Kaiming-uniform-like initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  auto param = [&](Shape shape, int64_t fan_in) {
    const double b = 1.0 / std::sqrt(static_cast<double>(fan_in));
    return uniform(shape, -b, b, gen).requires_grad_();
  };
  std::vector<Tensor> params = {param({o.hidden, 2}, 2),         param({o.hidden}, 2),
                                param({o.hidden, o.hidden}, o.hidden), param({o.hidden}, o.hidden),
                                param({2, o.hidden}, o.hidden),  param({2}, o.hidden)};
  auto forward = [&](const Tensor& in) {
    Tensor h = tanh(linear(in, params[0], params[1]));
    h = tanh(linear(h, params[2], params[3]));
    return linear(h, params[4], params[5]);
  };
  std::vector<Tensor> velocity;
  for (const Tensor& p : params) velocity.push_back(zeros_like(p));

  std::printf("demo: MLP 2-%ld-%ld-2 on %ld two-spiral points, SGD momentum 0.9, lr %.3g\n",
              static_cast<long>(o.hidden), static_cast<long>(o.hidden),
              static_cast<long>(o.points), o.lr);
  const auto start = std::chrono::steady_clock::now();
  double first_loss = 0, loss_value = 0;
  for (int64_t step = 1; step <= o.steps; ++step) {
    Tensor loss = cross_entropy(forward(x), y);
    loss.backward();
    loss_value = loss.item();
    if (step == 1) first_loss = loss_value;
    {
      NoGradGuard no_grad;
      for (size_t i = 0; i < params.size(); ++i) {
        velocity[i] = velocity[i] * 0.9 + params[i].grad();
        Tensor updated = params[i] - velocity[i] * o.lr;
        backend(updated.device()).copy(updated, params[i]);  // in place: keeps the leaf
        params[i].zero_grad();
      }
    }
    if (step % 200 == 0 || step == o.steps) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const double rate = step / secs;
      std::printf("step %5ld/%ld  loss %.4f  %.1f steps/s  ETA %.1fs\n", static_cast<long>(step),
                  static_cast<long>(o.steps), loss_value, rate, (o.steps - step) / rate);
      std::fflush(stdout);
    }
  }
  NoGradGuard no_grad;
  const std::vector<double> logits = forward(x).to_vector();
  const std::vector<double> labels = y.to_vector();
  int64_t correct = 0;
  for (int64_t i = 0; i < o.points; ++i)
    correct += ((logits[2 * i + 1] > logits[2 * i]) ? 1.0 : 0.0) == labels[i];
  std::printf("loss %.4f -> %.4f, training accuracy %.1f%%\n", first_loss, loss_value,
              100.0 * correct / o.points);
  return 0;
}

}  // namespace

void add_demo_command(CLI::App& app) {
  CLI::App* demo = app.add_subcommand(
      "demo", "Train a small MLP on built-in two-spirals data and show the loss falling");
  demo->add_option("--steps", demo_options.steps, "training steps")->capture_default_str();
  demo->add_option("--hidden", demo_options.hidden, "hidden width")->capture_default_str();
  demo->add_option("--lr", demo_options.lr, "learning rate")->capture_default_str();
  demo->add_option("--points", demo_options.points, "number of data points")->capture_default_str();
  demo->add_option("--seed", demo_options.seed, "random seed")->capture_default_str();
  on_run(demo, run_demo);
}

}  // namespace diffkd::apps
