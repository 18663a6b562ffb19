#!/usr/bin/python3
"""Writes the PyTorch UNet parity goldens (safetensors) that the C++ UNet tests read.

Run with Debian's PyTorch 1.13 (only /usr/bin/python3 has torch):

    /usr/bin/python3 tests/golden/make_unet_goldens.py           # (re)write data/unet_*.safetensors
    /usr/bin/python3 tests/golden/make_unet_goldens.py --check   # ... then re-read and verify them

The UNet below is written from the specification in nn/README.md ("The UNet, exactly") and from
nothing else (in particular not from the C++ code), so that a misreading of the spec cannot hide
in both implementations. State-dict names are the spec's.

For each tiny config CFG (see CONFIGS) two files are written to tests/golden/data/:

  unet_CFG_weights.safetensors  the model's state_dict: built with the config's init scheme, then
                                EVERY parameter overwritten with fresh seeded random values (the
                                init schemes zero or nearly zero the final layers, which would make
                                the output independent of most weights and many gradients zero).
                                __metadata__: {"config": <config JSON, the spec's field names>,
                                "format": "pt"}.
  unet_CFG_case.safetensors     x [3, in, H, W], t [3] (f32 timesteps 0, 517, 999), y [3] (i64,
                                conditional configs only), target (output's shape), output,
                                loss (0-d, F.mse_loss mean), grad.<param> for every parameter;
                                adam.loss [2] and adam.<param>: two torch.optim.Adam steps (lr 1e-2,
                                betas (0.9, 0.999), eps 1e-8, no weight decay) on the same batch from
                                the same weights (adam.loss[i] is the loss before step i+1); the
                                "ddpm" config also has adamw.loss / adamw.<param> (AdamW, lr 1e-2,
                                weight_decay 0.1, otherwise the defaults).

The safetensors layout (F32 data, I64 labels) is the hand-written one of safetensors_io.py, which
also holds the writer and the independent reader used by --check. Output is bit-for-bit
reproducible (single thread, fixed seeds).

Caveat for comparisons: the key rows C..2C of every *.qkv.bias have a mathematically zero gradient
(see key_bias_rows), so grad.*.qkv.bias[C:2C] is rounding noise and adam*.*.qkv.bias[C:2C] is that
noise amplified by Adam; skip those elements after an optimiser step.

--check also prints the deviation of the float32 goldens from a float64 run (the tolerance floor of
any float32 implementation) and asserts the DDPM CIFAR-10 UNet has 35,746,307 parameters;
--counts prints that count and the DKDM 57M teacher / 14M student counts.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from safetensors_io import GoldenFiles, read_safetensors, seed_of

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

# Spec field names, in the spec's table order.
CONFIG_FIELDS = ["image_size", "in_channels", "model_channels", "out_channels", "num_res_blocks",
                 "attention_resolutions", "channel_mult", "dropout", "num_heads",
                 "num_head_channels", "use_scale_shift_norm", "resblock_updown", "conv_resample",
                 "num_classes", "norm_groups", "init"]


def make_config(**kw):
    cfg = dict(dropout=0.0, num_heads=1, num_head_channels=-1, use_scale_shift_norm=False,
               resblock_updown=False, conv_resample=True, num_classes=0, norm_groups=32,
               init="ddpm")
    cfg.update(kw)
    assert sorted(cfg) == sorted(CONFIG_FIELDS), sorted(set(cfg) ^ set(CONFIG_FIELDS))
    return {k: cfg[k] for k in CONFIG_FIELDS}


# The golden configs. model_channels is 4 (channels 4 / 8 / 12 / ...) to keep the files small
# (~14-18k parameters each); every option is still exercised and "adm" has 1-head (C 4) and
# 2-head (C 8) attention through num_head_channels 4. norm_groups is 2 so that every group holds at
# least 2 channels: with 1 channel per group the GroupNorm after a conv removes that conv's bias
# (and, without scale-shift, the added emb) exactly, and their gradients would be rounding noise.
CONFIGS = {
    # ADM / DKDM style: learned-range output, AdaGN, ResBlock resampling, head width, classes.
    "adm": make_config(image_size=8, in_channels=2, model_channels=4, out_channels=4,
                       num_res_blocks=1, channel_mult=[1, 2], attention_resolutions=[4, 8],
                       num_heads=1, num_head_channels=4, use_scale_shift_norm=True,
                       resblock_updown=True, conv_resample=True, num_classes=3, norm_groups=2,
                       dropout=0.0, init="adm"),
    # Ho et al. DDPM style.
    "ddpm": make_config(image_size=8, in_channels=1, model_channels=4, out_channels=1,
                        num_res_blocks=2, channel_mult=[1, 2], attention_resolutions=[4],
                        num_heads=1, num_head_channels=-1, use_scale_shift_norm=False,
                        resblock_updown=False, conv_resample=True, num_classes=0, norm_groups=2,
                        dropout=0.0, init="ddpm"),
    # Parameter-free resampling (avg-pool / nearest), num_heads 2, three levels.
    "adm_pool": make_config(image_size=8, in_channels=2, model_channels=4, out_channels=4,
                            num_res_blocks=1, channel_mult=[1, 2, 2], attention_resolutions=[2],
                            num_heads=2, num_head_channels=-1, use_scale_shift_norm=True,
                            resblock_updown=False, conv_resample=False, num_classes=0,
                            norm_groups=2, dropout=0.0, init="adm"),
}

# Reference configs for the parameter-count check.
DDPM_CIFAR10 = make_config(image_size=32, in_channels=3, model_channels=128, out_channels=3,
                           num_res_blocks=2, channel_mult=[1, 2, 2, 2], attention_resolutions=[16],
                           num_heads=1, num_head_channels=-1, use_scale_shift_norm=False,
                           resblock_updown=False, conv_resample=True, num_classes=0,
                           norm_groups=32, dropout=0.1, init="ddpm")
DDPM_CIFAR10_PARAMS = 35746307
DKDM_TEACHER = make_config(image_size=32, in_channels=3, model_channels=128, out_channels=6,
                           num_res_blocks=3, channel_mult=[1, 2, 2, 2],
                           attention_resolutions=[16, 8], num_head_channels=32,
                           use_scale_shift_norm=True, resblock_updown=True, conv_resample=True,
                           norm_groups=32, dropout=0.1, init="adm")
DKDM_STUDENT = dict(DKDM_TEACHER, model_channels=64)

BATCH_T = [0, 517, 999]
BATCH_Y = [0, 2, 1]


# ----------------------------------------------------------------------------------------------
# The UNet (nn/README.md, "The UNet, exactly")
# ----------------------------------------------------------------------------------------------

def timestep_embedding(t, dim, dtype=torch.float32):
    """concat([cos(t*f), sin(t*f)]) with f[j] = exp(-ln(10000) * j / half), in float64, then cast
    to the model's dtype (float32 here)."""
    half = dim // 2
    j = torch.arange(half, dtype=torch.float64)
    freqs = torch.exp(-math.log(10000.0) * j / half)
    args = t.to(torch.float64)[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb.to(dtype)


def conv3(c_in, c_out):
    return nn.Conv2d(c_in, c_out, 3, padding=1)


class ResBlock(nn.Module):
    def __init__(self, c_in, c_out, emb_ch, dropout, use_scale_shift_norm, groups,
                 up=False, down=False):
        super().__init__()
        self.c_out, self.use_scale_shift_norm, self.up, self.down = c_out, use_scale_shift_norm, up, down
        self.in_layers = nn.Sequential(nn.GroupNorm(groups, c_in), nn.SiLU(), conv3(c_in, c_out))
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_ch, 2 * c_out if use_scale_shift_norm else c_out))
        self.out_layers = nn.Sequential(nn.GroupNorm(groups, c_out), nn.SiLU(),
                                        nn.Dropout(dropout), conv3(c_out, c_out))
        self.skip_connection = (nn.Conv2d(c_in, c_out, 1, padding=0) if c_in != c_out
                                else nn.Identity())

    def resample(self, x):
        if self.up:
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return F.avg_pool2d(x, kernel_size=2, stride=2)

    def forward(self, x, emb):
        if self.up or self.down:
            h = self.in_layers[1](self.in_layers[0](x))
            h = self.resample(h)
            x = self.resample(x)
            h = self.in_layers[2](h)
        else:
            h = self.in_layers(x)
        e = self.emb_layers(emb)[:, :, None, None]
        if self.use_scale_shift_norm:
            scale, shift = e[:, :self.c_out], e[:, self.c_out:]
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[3](self.out_layers[2](self.out_layers[1](h)))
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    def __init__(self, c, num_heads, num_head_channels, groups):
        super().__init__()
        self.heads = num_heads if num_head_channels == -1 else c // num_head_channels
        assert self.heads >= 1 and c % self.heads == 0, (c, num_heads, num_head_channels)
        self.norm = nn.GroupNorm(groups, c)
        self.qkv = nn.Conv1d(c, 3 * c, 1)
        self.proj_out = nn.Conv1d(c, c, 1)

    def forward(self, x):
        n, c, hh, ww = x.shape
        length, heads = hh * ww, self.heads
        d = c // heads
        u = x.reshape(n, c, length)
        qkv = self.qkv(self.norm(u))
        q, k, v = qkv[:, 0:c], qkv[:, c:2 * c], qkv[:, 2 * c:3 * c]
        q, k, v = (z.reshape(n * heads, d, length) for z in (q, k, v))
        w = torch.softmax(torch.bmm(q.transpose(1, 2), k) / math.sqrt(d), dim=-1)  # [NH, Lq, Lk]
        a = torch.bmm(v, w.transpose(1, 2)).reshape(n, c, length)
        return (u + self.proj_out(a)).reshape(n, c, hh, ww)


class Downsample(nn.Module):
    def __init__(self, c, conv_resample):
        super().__init__()
        self.conv_resample = conv_resample
        if conv_resample:
            self.op = nn.Conv2d(c, c, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x) if self.conv_resample else F.avg_pool2d(x, kernel_size=2, stride=2)


class Upsample(nn.Module):
    def __init__(self, c, conv_resample):
        super().__init__()
        self.conv_resample = conv_resample
        if conv_resample:
            self.conv = conv3(c, c)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.conv_resample else x


class TimestepSequential(nn.Sequential):
    """A block of input_blocks / middle_block / output_blocks: ResBlocks take emb, others not."""

    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class UNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        ch = cfg["model_channels"]
        emb_ch = 4 * ch
        groups = cfg["norm_groups"]

        def res(c_in, c_out, up=False, down=False):
            return ResBlock(c_in, c_out, emb_ch, cfg["dropout"], cfg["use_scale_shift_norm"],
                            groups, up=up, down=down)

        def attn(c):
            return AttentionBlock(c, cfg["num_heads"], cfg["num_head_channels"], groups)

        self.time_embed = nn.Sequential(nn.Linear(ch, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))
        if cfg["num_classes"] > 0:
            self.label_emb = nn.Embedding(cfg["num_classes"], emb_ch)

        self.input_blocks = nn.ModuleList(
            [TimestepSequential(nn.Conv2d(cfg["in_channels"], ch, 3, padding=1))])
        skips, cur, r = [ch], ch, cfg["image_size"]
        mults = cfg["channel_mult"]
        for level, m in enumerate(mults):
            for _ in range(cfg["num_res_blocks"]):
                layers = [res(cur, m * ch)]
                cur = m * ch
                if r in cfg["attention_resolutions"]:
                    layers.append(attn(cur))
                self.input_blocks.append(TimestepSequential(*layers))
                skips.append(cur)
            if level != len(mults) - 1:
                self.input_blocks.append(TimestepSequential(
                    res(cur, cur, down=True) if cfg["resblock_updown"]
                    else Downsample(cur, cfg["conv_resample"])))
                skips.append(cur)
                r = (r + 1) // 2 if (cfg["conv_resample"] and not cfg["resblock_updown"]) else r // 2

        self.middle_block = TimestepSequential(res(cur, cur), attn(cur), res(cur, cur))

        self.output_blocks = nn.ModuleList()
        for level, m in list(enumerate(mults))[::-1]:
            for i in range(cfg["num_res_blocks"] + 1):
                layers = [res(cur + skips.pop(), m * ch)]
                cur = m * ch
                if r in cfg["attention_resolutions"]:
                    layers.append(attn(cur))
                if level and i == cfg["num_res_blocks"]:
                    layers.append(res(cur, cur, up=True) if cfg["resblock_updown"]
                                  else Upsample(cur, cfg["conv_resample"]))
                    r *= 2
                self.output_blocks.append(TimestepSequential(*layers))
        assert not skips

        self.out = nn.Sequential(nn.GroupNorm(groups, cur), nn.SiLU(),
                                 nn.Conv2d(cur, cfg["out_channels"], 3, padding=1))

    def forward(self, x, t, y=None):
        emb = self.time_embed(timestep_embedding(t, self.cfg["model_channels"],
                                                 self.time_embed[0].weight.dtype))
        if self.cfg["num_classes"] > 0:
            emb = emb + self.label_emb(y)
        hs, h = [], x
        for block in self.input_blocks:
            h = block(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)


# ----------------------------------------------------------------------------------------------
# Initialisation (spec "Initialisation"), from an explicit seeded generator
# ----------------------------------------------------------------------------------------------

def fans(weight):
    """PyTorch's fan_in / fan_out: [out, in, *kernel] -> (in * k, out * k)."""
    k = int(np.prod(weight.shape[2:])) if weight.dim() > 2 else 1
    return weight.shape[1] * k, weight.shape[0] * k


def final_layers(model):
    """The layers zeroed by "adm" / given gain 1e-5 by "ddpm": every ResBlock's out_layers.3,
    every AttentionBlock's proj_out, and out.2."""
    found = [model.out[2]]
    for mod in model.modules():
        if isinstance(mod, ResBlock):
            found.append(mod.out_layers[3])
        elif isinstance(mod, AttentionBlock):
            found.append(mod.proj_out)
    return found


def xavier_uniform(weight, gen, gain=1.0):
    fan_in, fan_out = fans(weight)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        weight.uniform_(-bound, bound, generator=gen)


def init_model(model, scheme, gen):
    with torch.no_grad():
        for mod in model.modules():  # registration order
            if isinstance(mod, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                if scheme == "adm":  # PyTorch defaults: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
                    bound = 1.0 / math.sqrt(fans(mod.weight)[0])
                    mod.weight.uniform_(-bound, bound, generator=gen)
                    mod.bias.uniform_(-bound, bound, generator=gen)
                elif scheme == "ddpm":
                    xavier_uniform(mod.weight, gen)
                    mod.bias.zero_()
                else:
                    raise ValueError(scheme)
            elif isinstance(mod, nn.GroupNorm):
                mod.weight.fill_(1.0)
                mod.bias.zero_()
            elif isinstance(mod, nn.Embedding):  # PyTorch default N(0, 1) under both schemes
                mod.weight.normal_(0.0, 1.0, generator=gen)
        if scheme == "ddpm":  # qkv as three separate [C, C] 1x1 convs (q, k, v)
            for mod in model.modules():
                if isinstance(mod, AttentionBlock):
                    c = mod.proj_out.weight.shape[0]
                    for part in range(3):
                        xavier_uniform(mod.qkv.weight[part * c:(part + 1) * c], gen)
        for layer in final_layers(model):
            if scheme == "adm":
                layer.weight.zero_()
                layer.bias.zero_()
            else:
                xavier_uniform(layer.weight, gen, gain=1e-5)
                layer.bias.zero_()


def check_init(model, scheme):
    """Cheap self-checks of init_model against the spec's distributions."""
    final = {id(layer) for layer in final_layers(model)}
    for mod in model.modules():
        if isinstance(mod, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            w, b = mod.weight.detach(), mod.bias.detach()
            fan_in, fan_out = fans(w)
            if id(mod) in final:
                if scheme == "adm":
                    assert not w.any() and not b.any()
                else:
                    assert w.abs().max() <= 1e-5 * math.sqrt(6.0 / (fan_in + fan_out)) and w.any()
                    assert not b.any()
            elif scheme == "adm":
                bound = 1.0 / math.sqrt(fan_in)
                assert w.abs().max() <= bound and b.abs().max() <= bound and b.any()
            else:
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                if isinstance(mod, nn.Conv1d) and w.shape[0] == 3 * w.shape[1]:  # qkv
                    bound = math.sqrt(6.0 / (2 * w.shape[1]))
                assert w.abs().max() <= bound and w.abs().max() > 0.5 * bound and not b.any()
        elif isinstance(mod, nn.GroupNorm):
            assert (mod.weight == 1).all() and not mod.bias.any()


def randomize(model, gen):
    """Overwrites every parameter (sorted names) with seeded random values so that every gradient
    is non-trivial: weights N(0, 1/fan_in), embeddings N(0, 1), GroupNorm weights 1 + 0.1 N(0, 1),
    biases and GroupNorm biases 0.1 N(0, 1)."""
    gn_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.GroupNorm)}
    emb_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            z = torch.randn(p.shape, generator=gen)
            if id(p) in emb_weights:
                p.copy_(z)
            elif id(p) in gn_weights:
                p.copy_(1.0 + 0.1 * z)
            elif p.dim() == 1:
                p.copy_(0.1 * z)
            else:
                p.copy_(z / math.sqrt(fans(p)[0]))


def param_count(cfg):
    return sum(p.numel() for p in UNet(cfg).parameters())


# ----------------------------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------------------------

goldens = GoldenFiles(OUT)


def build(cfg_name):
    cfg = CONFIGS[cfg_name]
    gen = torch.Generator().manual_seed(seed_of(cfg_name + ".init"))
    model = UNet(cfg)
    init_model(model, cfg["init"], gen)
    check_init(model, cfg["init"])
    randomize(model, torch.Generator().manual_seed(seed_of(cfg_name + ".weights")))
    return model


def batch(cfg_name):
    cfg = CONFIGS[cfg_name]
    gen = torch.Generator().manual_seed(seed_of(cfg_name + ".batch"))
    n, s = len(BATCH_T), cfg["image_size"]
    x = torch.randn(n, cfg["in_channels"], s, s, generator=gen)
    target = torch.randn(n, cfg["out_channels"], s, s, generator=gen)
    t = torch.tensor(BATCH_T, dtype=torch.float32)
    y = torch.tensor(BATCH_Y, dtype=torch.int64) if cfg["num_classes"] > 0 else None
    return x, t, y, target


def train_steps(model, make_opt, x, t, y, target, steps=2):
    opt = make_opt(model.parameters())
    losses = []
    for _ in range(steps):
        loss = F.mse_loss(model(x, t, y), target)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.detach())
    return torch.stack(losses)


KEY_BIAS_ROWS_CACHE = {}  # cfg_name -> {param name: slice of the key rows of a qkv.bias}


def key_bias_rows(model):
    """The k part, rows C..2C, of every AttentionBlock's qkv.bias: adding a constant to every key
    adds the same q . b_k to all logits of a query, which the softmax removes, so its gradient is
    mathematically zero (rounding noise, ~1e-9) and Adam turns that noise into updates of up to
    ~lr. These elements cannot be compared after an optimiser step."""
    rows = {}
    for name, mod in model.named_modules():
        if isinstance(mod, AttentionBlock):
            c = mod.proj_out.weight.shape[0]
            rows[name + ".qkv.bias"] = slice(c, 2 * c)
    return rows


def make_case(cfg_name):
    cfg = CONFIGS[cfg_name]
    model = build(cfg_name)
    init_state = {k: v.clone() for k, v in model.state_dict().items()}
    goldens.write(f"unet_{cfg_name}_weights.safetensors", init_state,
                  {"config": json.dumps(cfg, separators=(", ", ": ")), "format": "pt"})

    x, t, y, target = batch(cfg_name)
    case = {"x": x, "t": t, "target": target}
    if y is not None:
        case["y"] = y
    output = model(x, t, y)
    loss = F.mse_loss(output, target)
    names = [n for n, _ in model.named_parameters()]
    grads = torch.autograd.grad(loss, [p for _, p in model.named_parameters()])
    case["output"], case["loss"] = output, loss
    for name, g in zip(names, grads):
        case["grad." + name] = g
    # No degenerate (mathematically zero) gradient tensor; report the smallest element too, since
    # Adam's first step, lr * g / (|g| + eps), is sensitive to eps only where |g| is near 1e-8.
    min_grad = min(float(g.abs().max()) for g in grads)
    assert min_grad > 1e-4, (cfg_name, min_grad)
    kb = KEY_BIAS_ROWS_CACHE[cfg_name] = key_bias_rows(model)
    for name, g in zip(names, grads):  # the key-bias rows are the only (near-)zero gradients
        g = g.abs().clone()
        if name in kb:
            assert g[kb[name]].max() < 1e-7, (cfg_name, name)
            g[kb[name]] = 1.0
        assert g.min() > 1e-8, (cfg_name, name, float(g.min()))
    flat = torch.cat([g.abs().flatten() for g in grads])

    optimizers = {"adam": lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.9, 0.999), eps=1e-8,
                                                       weight_decay=0)}
    if cfg_name == "ddpm":
        optimizers["adamw"] = lambda ps: torch.optim.AdamW(ps, lr=1e-2, betas=(0.9, 0.999),
                                                            eps=1e-8, weight_decay=0.1)
    for prefix, make_opt in optimizers.items():
        model.load_state_dict(init_state)
        case[prefix + ".loss"] = train_steps(model, make_opt, x, t, y, target)
        assert torch.equal(case[prefix + ".loss"][0], loss.detach())
        for name, p in model.named_parameters():
            case[prefix + "." + name] = p.detach().clone()
    goldens.write(f"unet_{cfg_name}_case.safetensors", case,
                  {"config": json.dumps(cfg, separators=(", ", ": ")), "format": "pt"})
    print(f"{cfg_name}: {len(names)} parameter tensors, {sum(p.numel() for p in model.parameters())}"
          f" parameters, loss {float(loss):.6f}, adam losses {case['adam.loss'].tolist()}, "
          f"smallest per-tensor max|grad| {min_grad:.3e}, smallest |grad| {float(flat.min()):.3e}"
          f" ({int((flat < 1e-8).sum())} of {flat.numel()} below 1e-8: exactly the "
          f"{sum(r.stop - r.start for r in kb.values())} key-bias rows)")


def float64_deviation(cfg_name):
    """Diagnostic (printed, not stored): the same case in float64, to show how far the float32
    golden is from exact, i.e. the tolerance floor of any float32 implementation."""
    case, _ = read_safetensors(os.path.join(OUT, f"unet_{cfg_name}_case.safetensors"))
    model = build(cfg_name).double()
    init_state = {k: v.clone() for k, v in model.state_dict().items()}
    x, t, y, target = batch(cfg_name)
    x, target = x.double(), target.double()
    out = model(x, t, y)
    loss = F.mse_loss(out, target)
    named = list(model.named_parameters())
    grads = torch.autograd.grad(loss, [p for _, p in named])

    def dev(keys_values):
        worst = 0.0
        for key, ref in keys_values:
            got = torch.from_numpy(case[key].astype(np.float64))
            scale = float(ref.abs().max()) + 1e-30
            worst = max(worst, float((got - ref).abs().max()) / scale)
        return worst

    report = {"output": dev([("output", out.detach())]),
              "grad": dev([("grad." + n, g) for (n, _), g in zip(named, grads)])}
    model.load_state_dict(init_state)
    train_steps(model, lambda ps: torch.optim.Adam(ps, lr=1e-2), x, t, y, target)
    adam_abs, kbias_abs = 0.0, 0.0
    for n, p in model.named_parameters():
        diff = (torch.from_numpy(case["adam." + n].astype(np.float64)) - p.detach()).abs()
        if n in KEY_BIAS_ROWS_CACHE[cfg_name]:
            rows = KEY_BIAS_ROWS_CACHE[cfg_name][n]
            kbias_abs = max(kbias_abs, float(diff[rows].max()))
            diff[rows] = 0
        adam_abs = max(adam_abs, float(diff.max()))
    print(f"  {cfg_name} vs float64: max |diff| / max |ref| per tensor: output "
          f"{report['output']:.1e}, grads {report['grad']:.1e}; adam params max |diff| "
          f"{adam_abs:.1e} (key-bias rows, which are noise: {kbias_abs:.1e})")


def check():
    _, total = goldens.check_round_trips()
    # The case files hold a grad / adam entry for every weight, and the config round-trips.
    for cfg_name, cfg in CONFIGS.items():
        weights, meta = read_safetensors(os.path.join(OUT, f"unet_{cfg_name}_weights.safetensors"))
        case, _ = read_safetensors(os.path.join(OUT, f"unet_{cfg_name}_case.safetensors"))
        assert json.loads(meta["config"]) == cfg and meta["format"] == "pt"
        assert sorted(UNet(cfg).state_dict()) == sorted(weights)
        for prefix in ["grad", "adam"] + (["adamw"] if cfg_name == "ddpm" else []):
            assert sorted(k[len(prefix) + 1:] for k in case if k.startswith(prefix + ".")
                          and k != prefix + ".loss") == sorted(weights), (cfg_name, prefix)
        assert case["loss"].shape == () and case["adam.loss"].shape == (2,)
    for cfg_name in CONFIGS:
        float64_deviation(cfg_name)
    # Independent check of the spec: the DDPM CIFAR-10 UNet has exactly 35,746,307 parameters.
    n = param_count(DDPM_CIFAR10)
    assert n == DDPM_CIFAR10_PARAMS, n
    print(f"checked {len(goldens.written)} files: all round-trip, {total} bytes in total; "
          f"DDPM CIFAR-10 UNet has {n:,} parameters")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="after writing, re-read every file and verify it; count parameters")
    parser.add_argument("--counts", action="store_true",
                        help="print the parameter counts of the reference configs and exit")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.counts:
        for label, cfg in [("DDPM CIFAR-10", DDPM_CIFAR10), ("DKDM teacher", DKDM_TEACHER),
                           ("DKDM student", DKDM_STUDENT)]:
            print(f"{label}: {param_count(cfg):,} parameters")
        return 0
    os.makedirs(OUT, exist_ok=True)
    for cfg_name in CONFIGS:
        make_case(cfg_name)
    print(f"wrote {len(goldens.written)} files, {goldens.total_bytes()} bytes, to {OUT}")
    if args.check:
        check()
    return 0


if __name__ == "__main__":
    sys.exit(main())
