// `diffkd forward`: the network's raw output for a given input and timestep, written as
// safetensors, so that our UNet can be compared with another framework's on the same tensors.

#include <cstdio>
#include <vector>

#include "apps/commands.h"
#include "diffusion/gaussian.h"
#include "diffusion/generate.h"
#include "nn/safetensors.h"

namespace diffkd::apps {

namespace {

struct {
  std::string model, input, out = "forward.safetensors";
  int64_t t = 0;
} opts;

int run_forward() {
  diffusion::LoadedModel model = diffusion::load_diffusion_model(opts.model, selected_device());
  DK_CHECK(model.net, opts.model, ": forward runs a diffusion network; this file holds an Adv-KD generator");
  const safetensors::Contents file = safetensors::load(opts.input);
  DK_CHECK(file.contains("x") || file.tensors.size() == 1, opts.input,
           ": --input expects a tensor named x, or a single tensor; the file has ", file.tensors.size());
  const Tensor x = file.contains("x") ? file.at("x") : file.tensors[0].second;
  const nn::UNetConfig& c = model.net->config();
  DK_CHECK(x.dim() == 4 && x.size(1) == c.in_channels && x.size(2) == c.image_size && x.size(3) == c.image_size &&
               is_floating(x.dtype()),
           opts.input, ": x of shape ", shape_str(x.shape()), " (", dtype_name(x.dtype()), "), expected [N,",
           c.in_channels, ",", c.image_size, ",", c.image_size, "] floating point for ", opts.model);
  const int64_t steps = model.schedule.steps();
  DK_CHECK(opts.t >= 0 && opts.t < steps, "forward: --t ", opts.t, " outside the schedule's 0..", steps - 1);
  NoGradGuard no_grad;
  model.net->eval();
  const std::vector<int64_t> t(static_cast<size_t>(x.size(0)), opts.t);
  const Tensor out = to_device(model.net->forward(to_device(to_dtype(x, DType::F32), model.net->device()),
                                                  diffusion::model_time(model.schedule, t)),
                               cpu());
  safetensors::save(opts.out, {{"output", out}},
                    {{"model", opts.model}, {"input", opts.input}, {"t", std::to_string(opts.t)},
                     {"prediction", model.spec.prediction}});
  std::printf("forward: %s at t = %lld (%s-prediction): output %s in %s\n", opts.model.c_str(),
              static_cast<long long>(opts.t), model.spec.prediction.c_str(), shape_str(out.shape()).c_str(),
              opts.out.c_str());
  return 0;
}

}  // namespace

void add_forward_command(CLI::App& app) {
  CLI::App* c = app.add_subcommand("forward", "The network's raw output for a given input and timestep");
  c->add_option("--model", opts.model, "diffusion model checkpoint")->required();
  c->add_option("--input", opts.input, "x [N, C, H, W] (safetensors: a tensor x, or the only one)")->required();
  c->add_option("--t", opts.t, "schedule index 0..T-1, the same for every image")->required();
  c->add_option("--out", opts.out, "the output [N, C_out, H, W] (tensor \"output\")")->capture_default_str();
  add_diffusion_flags(c);
  on_run(c, run_forward);
}

}  // namespace diffkd::apps
