#!/usr/bin/python3
"""Writes the foreign-checkpoint goldens (safetensors) for the `diffkd convert` tests.

Run with Debian's PyTorch 1.13 (only /usr/bin/python3 has torch):

    /usr/bin/python3 tests/golden/make_convert_goldens.py           # (re)write data/convert_*.safetensors
    /usr/bin/python3 tests/golden/make_convert_goldens.py --check   # ... then re-read and verify them

The three foreign UNet codebases that `diffkd convert --from ...` reads are re-implemented below
in plain PyTorch, module by module, with their real module structure, state_dict names (and order)
and forward maths:

  * huggingface diffusers `UNet2DModel` (ResnetBlock2D, Attention / the old AttentionBlock,
    Downsample2D, Upsample2D, UNetMidBlock2D, Down/Up blocks, get_timestep_embedding);
  * w86763777/pytorch-ddpm `model.py` `UNet` (its checkpoint: {"net_model": sd, "ema_model": sd});
  * openai/improved-diffusion and openai/guided-diffusion `unet.py` `UNetModel`.

They are written from those codebases only, NOT from our C++ UNet, so that a misreading cannot
hide in both. No weights are stored: the C++ test rebuilds each foreign state_dict from the names
and shapes in the metadata and a deterministic fill (below), converts it, runs our UNet and
compares with `output`.

One file per case, data/convert_<case>.safetensors (layout of safetensors_io.py):

  tensors   x [2, 3, 8, 8] F32 (torch.randn, generator seeded with `seed`), t [2] F32 (3, 917; pytorch-ddpm 3, 97),
            y [2] I64 (1, 2; class-conditional case only), output F32 (the foreign forward in eval
            mode, float32), source.<name> F32 for every state_dict entry with a fixed value
            (pytorch-ddpm's frozen time-embedding table, under both checkpoint prefixes).
  metadata  layout ("diffusers" | "pytorch-ddpm" | "improved-diffusion"), seed (decimal),
            random_tensors (JSON [[name, shape], ...] in state_dict order), convert_args (JSON list
            of CLI flags), config_json / scheduler_json (diffusers only), expected_diffusion (JSON
            {"schedule", "timesteps", "prediction"}), f64_deviation (max |float32 output - the
            same forward in float64|: the tolerance floor), output_rms.

Deterministic fill (the C++ test reimplements it): one running counter k over all values of all
`random_tensors`, in list order, row-major within a tensor, starting at 0:

    z = seed + (k + 1) * 0x9E3779B97F4A7C15            (all mod 2^64)
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB
    z = z ^ (z >> 31)
    u = (z >> 40) * 2^-24                               (exact in float64)
    value = float32((2u - 1) * scale), in float64 then rounded; scale = 1/sqrt(numel/shape[0]) if
            ndim >= 2 else 0.5

Every state_dict entry is either in random_tensors or a source.* tensor, never both.

Output is bit-for-bit reproducible (single thread, fixed seeds). --check re-reads every file,
verifies the round trip, the sizes, the fill against a pure-Python big-integer implementation, the
state_dict partition and order, and reruns every forward (bit-identical).
"""
import argparse
import copy
import glob
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
MAX_BYTES = 100_000
# pytorch-ddpm's frozen table is [T, ch] F32 and its checkpoint holds it twice (net_model,
# ema_model): its case uses T = 100 (12.8 KB a copy; 128 KB at T = 1000), which also makes the
# converter record pytorch-ddpm's own betas, linspace(1e-4, 0.02, T), as our linear schedule only
# equals them at T = 1000.
MAX_BYTES_OF = {}

T_VALUES = [3.0, 917.0]
Y_VALUES = [1, 2]
BATCH, IN_CHANNELS, IMAGE = 2, 3, 8


# ---------------------------------------------------------------------------------------------
# Deterministic fill
# ---------------------------------------------------------------------------------------------

def fill_scale(shape):
    numel = int(np.prod(shape, dtype=np.int64))
    return 1.0 / math.sqrt(numel // shape[0]) if len(shape) >= 2 else 0.5


def fill_values(seed, entries):
    """{name: float32 array} for entries [(name, shape), ...], one running counter over all."""
    out, k0 = {}, 0
    with np.errstate(over="ignore"):
        for name, shape in entries:
            n = int(np.prod(shape, dtype=np.int64))
            k = np.arange(k0, k0 + n, dtype=np.uint64)
            z = np.uint64(seed) + (k + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
            u = (z >> np.uint64(40)).astype(np.float64) * 2.0 ** -24
            out[name] = ((2.0 * u - 1.0) * fill_scale(shape)).astype(np.float32).reshape(shape)
            k0 += n
    return out


def fill_value_reference(seed, k, shape):
    """One value of the fill with Python integers (the cross-check for the numpy version)."""
    mask = (1 << 64) - 1
    z = (seed + (k + 1) * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    z = z ^ (z >> 31)
    u = (z >> 40) * 2.0 ** -24
    return np.float32((2.0 * u - 1.0) * fill_scale(shape))


# ---------------------------------------------------------------------------------------------
# huggingface diffusers UNet2DModel
# ---------------------------------------------------------------------------------------------

def diffusers_timestep_embedding(timesteps, embedding_dim, flip_sin_to_cos, downscale_freq_shift,
                                 dtype=torch.float32, max_period=10000):
    """diffusers' get_timestep_embedding (scale 1). The real one is float32 always; dtype is
    float64 only in the float64 reference run."""
    half_dim = embedding_dim // 2
    exponent = -math.log(max_period) * torch.arange(0, half_dim, dtype=dtype)
    exponent = exponent / (half_dim - downscale_freq_shift)
    emb = torch.exp(exponent)
    emb = timesteps[:, None].to(dtype) * emb[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half_dim:], emb[:, :half_dim]], dim=-1)
    return emb


class DiffusersTimestepEmbedding(nn.Module):
    def __init__(self, in_channels, time_embed_dim):
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, time_embed_dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)

    def forward(self, sample):
        return self.linear_2(self.act(self.linear_1(sample)))


class DiffusersResnetBlock2D(nn.Module):
    """ResnetBlock2D, time_embedding_norm "default", pre-norm, no up/down."""

    def __init__(self, in_channels, out_channels, temb_channels, groups, eps, dropout=0.0,
                 output_scale_factor=1.0):
        super().__init__()
        self.output_scale_factor = output_scale_factor
        self.norm1 = nn.GroupNorm(num_groups=groups, num_channels=in_channels, eps=eps, affine=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(num_groups=groups, num_channels=out_channels, eps=eps, affine=True)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.nonlinearity = nn.SiLU()
        self.conv_shortcut = None
        if in_channels != out_channels:
            self.conv_shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1,
                                           padding=0)

    def forward(self, input_tensor, temb):
        h = self.nonlinearity(self.norm1(input_tensor))
        h = self.conv1(h)
        temb = self.time_emb_proj(self.nonlinearity(temb))[:, :, None, None]
        h = h + temb
        h = self.nonlinearity(self.norm2(h))
        h = self.conv2(self.dropout(h))
        if self.conv_shortcut is not None:
            input_tensor = self.conv_shortcut(input_tensor)
        return (input_tensor + h) / self.output_scale_factor


class DiffusersAttention(nn.Module):
    """Spatial self-attention of the UNet2D blocks: the current `Attention(...,
    _from_deprecated_attn_block=True, residual_connection=True, upcast_softmax=True)` with
    group_norm / to_q / to_k / to_v / to_out.0, or (legacy_names) the old `AttentionBlock` with
    group_norm / query / key / value / proj_attn. Same maths: heads = C // head_dim over contiguous
    channel chunks, scores scaled by head_dim^-0.5."""

    def __init__(self, channels, head_dim, groups, eps, legacy_names, rescale_output_factor=1.0):
        super().__init__()
        self.legacy_names = legacy_names
        self.heads = channels // head_dim
        self.scale = head_dim ** -0.5
        self.rescale_output_factor = rescale_output_factor
        self.group_norm = nn.GroupNorm(num_channels=channels, num_groups=groups, eps=eps, affine=True)
        if legacy_names:
            self.query = nn.Linear(channels, channels)
            self.key = nn.Linear(channels, channels)
            self.value = nn.Linear(channels, channels)
            self.proj_attn = nn.Linear(channels, channels, bias=True)
        else:
            self.to_q = nn.Linear(channels, channels, bias=True)
            self.to_k = nn.Linear(channels, channels, bias=True)
            self.to_v = nn.Linear(channels, channels, bias=True)
            self.to_out = nn.ModuleList([nn.Linear(channels, channels, bias=True), nn.Dropout(0.0)])

    def head_to_batch(self, x):
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).permute(0, 2, 1, 3).reshape(
            b * self.heads, n, c // self.heads)

    def batch_to_head(self, x):
        bh, n, d = x.shape
        b = bh // self.heads
        return x.reshape(b, self.heads, n, d).permute(0, 2, 1, 3).reshape(b, n, d * self.heads)

    def forward(self, hidden_states):
        residual = hidden_states
        b, c, hgt, wid = hidden_states.shape
        h = self.group_norm(hidden_states).view(b, c, hgt * wid).transpose(1, 2)
        if self.legacy_names:
            q, k, v = self.query(h), self.key(h), self.value(h)
        else:
            q, k, v = self.to_q(h), self.to_k(h), self.to_v(h)
        q, k, v = self.head_to_batch(q), self.head_to_batch(k), self.head_to_batch(v)
        scores = torch.baddbmm(torch.zeros(q.shape[0], q.shape[1], k.shape[1], dtype=q.dtype),
                               q, k.transpose(-1, -2), beta=0, alpha=self.scale)
        probs = scores.float().softmax(dim=-1) if scores.dtype != torch.float64 else scores.softmax(-1)
        probs = probs.to(q.dtype)
        h = self.batch_to_head(torch.bmm(probs, v))
        h = self.proj_attn(h) if self.legacy_names else self.to_out[1](self.to_out[0](h))
        h = h.transpose(-1, -2).reshape(b, c, hgt, wid)
        return (h + residual) / self.rescale_output_factor


class DiffusersDownsample2D(nn.Module):
    """Downsample2D(use_conv=True, name="op"): the conv is registered as `conv`."""

    def __init__(self, channels, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1), mode="constant", value=0)
        return self.conv(x)


class DiffusersUpsample2D(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DiffusersDownBlock(nn.Module):
    """DownBlock2D (attention=False) or AttnDownBlock2D (attention=True; note `attentions` is
    registered before `resnets`, as in diffusers)."""

    def __init__(self, in_channels, out_channels, temb_channels, num_layers, add_downsample,
                 attention, head_dim, groups, eps, downsample_padding, legacy_names):
        super().__init__()
        resnets, attentions = [], []
        for i in range(num_layers):
            cin = in_channels if i == 0 else out_channels
            resnets.append(DiffusersResnetBlock2D(cin, out_channels, temb_channels, groups, eps))
            if attention:
                attentions.append(DiffusersAttention(out_channels, head_dim, groups, eps, legacy_names))
        self.has_attention = attention
        if attention:
            self.attentions = nn.ModuleList(attentions)
        self.resnets = nn.ModuleList(resnets)
        self.downsamplers = None
        if add_downsample:
            self.downsamplers = nn.ModuleList([DiffusersDownsample2D(out_channels, downsample_padding)])

    def forward(self, h, temb):
        states = ()
        for i, resnet in enumerate(self.resnets):
            h = resnet(h, temb)
            if self.has_attention:
                h = self.attentions[i](h)
            states = states + (h,)
        if self.downsamplers is not None:
            for d in self.downsamplers:
                h = d(h)
            states = states + (h,)
        return h, states


class DiffusersUpBlock(nn.Module):
    """UpBlock2D or AttnUpBlock2D (num_layers = layers_per_block + 1)."""

    def __init__(self, in_channels, prev_output_channel, out_channels, temb_channels, num_layers,
                 add_upsample, attention, head_dim, groups, eps, legacy_names):
        super().__init__()
        resnets, attentions = [], []
        for i in range(num_layers):
            res_skip_channels = in_channels if i == num_layers - 1 else out_channels
            resnet_in_channels = prev_output_channel if i == 0 else out_channels
            resnets.append(DiffusersResnetBlock2D(resnet_in_channels + res_skip_channels,
                                                  out_channels, temb_channels, groups, eps))
            if attention:
                attentions.append(DiffusersAttention(out_channels, head_dim, groups, eps, legacy_names))
        self.has_attention = attention
        if attention:
            self.attentions = nn.ModuleList(attentions)
        self.resnets = nn.ModuleList(resnets)
        self.upsamplers = None
        if add_upsample:
            self.upsamplers = nn.ModuleList([DiffusersUpsample2D(out_channels)])

    def forward(self, h, res_hidden_states_tuple, temb):
        for i, resnet in enumerate(self.resnets):
            res = res_hidden_states_tuple[-1]
            res_hidden_states_tuple = res_hidden_states_tuple[:-1]
            h = resnet(torch.cat([h, res], dim=1), temb)
            if self.has_attention:
                h = self.attentions[i](h)
        if self.upsamplers is not None:
            for u in self.upsamplers:
                h = u(h)
        return h


class DiffusersMidBlock2D(nn.Module):
    def __init__(self, channels, temb_channels, head_dim, groups, eps, output_scale_factor,
                 legacy_names):
        super().__init__()
        self.attentions = nn.ModuleList([
            DiffusersAttention(channels, head_dim, groups, eps, legacy_names, output_scale_factor)])
        self.resnets = nn.ModuleList([
            DiffusersResnetBlock2D(channels, channels, temb_channels, groups, eps,
                                   output_scale_factor=output_scale_factor)
            for _ in range(2)])

    def forward(self, h, temb):
        h = self.resnets[0](h, temb)
        for attn, resnet in zip(self.attentions, self.resnets[1:]):
            h = resnet(attn(h), temb)
        return h


class DiffusersUNet2DModel(nn.Module):
    """UNet2DModel for the config subset used here (positional time embedding, "default"
    time-scale-shift, conv resampling, no class embedding). Registration order as in diffusers:
    down_blocks and up_blocks are registered (empty) before mid_block is assigned, so the
    state_dict runs conv_in, time_embedding, down_blocks, up_blocks, mid_block, conv_norm_out,
    conv_out."""

    def __init__(self, config, legacy_names):
        super().__init__()
        assert config["time_embedding_type"] == "positional"
        assert config["resnet_time_scale_shift"] == "default"
        assert config["act_fn"] == "silu" and not config["center_input_sample"]
        self.config = config
        boc = config["block_out_channels"]
        groups, eps = config["norm_num_groups"], config["norm_eps"]
        head_dim_cfg = config["attention_head_dim"]
        time_embed_dim = boc[0] * 4
        lpb = config["layers_per_block"]

        self.conv_in = nn.Conv2d(config["in_channels"], boc[0], kernel_size=3, padding=(1, 1))
        self.time_embedding = DiffusersTimestepEmbedding(boc[0], time_embed_dim)
        self.down_blocks = nn.ModuleList([])
        self.mid_block = None
        self.up_blocks = nn.ModuleList([])

        output_channel = boc[0]
        for i, block_type in enumerate(config["down_block_types"]):
            input_channel, output_channel = output_channel, boc[i]
            assert block_type in ("DownBlock2D", "AttnDownBlock2D"), block_type
            self.down_blocks.append(DiffusersDownBlock(
                input_channel, output_channel, time_embed_dim, lpb,
                add_downsample=i != len(boc) - 1, attention=block_type == "AttnDownBlock2D",
                head_dim=head_dim_cfg if head_dim_cfg is not None else output_channel,
                groups=groups, eps=eps, downsample_padding=config["downsample_padding"],
                legacy_names=legacy_names))

        self.mid_block = DiffusersMidBlock2D(
            boc[-1], time_embed_dim, head_dim_cfg if head_dim_cfg is not None else boc[-1],
            groups, eps, config["mid_block_scale_factor"], legacy_names)

        rev = list(reversed(boc))
        output_channel = rev[0]
        for i, block_type in enumerate(config["up_block_types"]):
            prev_output_channel, output_channel = output_channel, rev[i]
            input_channel = rev[min(i + 1, len(boc) - 1)]
            assert block_type in ("UpBlock2D", "AttnUpBlock2D"), block_type
            self.up_blocks.append(DiffusersUpBlock(
                input_channel, prev_output_channel, output_channel, time_embed_dim, lpb + 1,
                add_upsample=i != len(boc) - 1, attention=block_type == "AttnUpBlock2D",
                head_dim=head_dim_cfg if head_dim_cfg is not None else output_channel,
                groups=groups, eps=eps, legacy_names=legacy_names))

        self.conv_norm_out = nn.GroupNorm(num_channels=boc[0], num_groups=groups, eps=eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(boc[0], config["out_channels"], kernel_size=3, padding=1)

    def forward(self, sample, timestep):
        dtype = self.conv_in.weight.dtype
        timesteps = timestep * torch.ones(sample.shape[0], dtype=timestep.dtype)
        t_emb = diffusers_timestep_embedding(timesteps, self.config["block_out_channels"][0],
                                             self.config["flip_sin_to_cos"],
                                             self.config["freq_shift"], dtype=dtype).to(dtype)
        emb = self.time_embedding(t_emb)
        h = self.conv_in(sample)
        res_samples = (h,)
        for block in self.down_blocks:
            h, states = block(h, emb)
            res_samples += states
        h = self.mid_block(h, emb)
        for block in self.up_blocks:
            n = len(block.resnets)
            res, res_samples = res_samples[-n:], res_samples[:-n]
            h = block(h, res, emb)
        assert len(res_samples) == 0
        return self.conv_out(self.conv_act(self.conv_norm_out(h)))


# ---------------------------------------------------------------------------------------------
# w86763777/pytorch-ddpm model.py
# ---------------------------------------------------------------------------------------------

class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class DdpmTimeEmbedding(nn.Module):
    def __init__(self, T, d_model, dim):
        super().__init__()
        assert d_model % 2 == 0
        emb = torch.arange(0, d_model, step=2) / d_model * math.log(10000)
        emb = torch.exp(-emb)
        pos = torch.arange(T).float()
        emb = pos[:, None] * emb[None, :]
        emb = torch.stack([torch.sin(emb), torch.cos(emb)], dim=-1)  # interleaved sin, cos
        emb = emb.view(T, d_model)
        self.timembedding = nn.Sequential(
            nn.Embedding.from_pretrained(emb),  # frozen (requires_grad False), in the state_dict
            nn.Linear(d_model, dim),
            Swish(),
            nn.Linear(dim, dim),
        )

    def forward(self, t):
        return self.timembedding(t)


class DdpmDownSample(nn.Module):
    def __init__(self, in_ch):
        super().__init__()
        self.main = nn.Conv2d(in_ch, in_ch, 3, stride=2, padding=1)

    def forward(self, x, temb):
        return self.main(x)


class DdpmUpSample(nn.Module):
    def __init__(self, in_ch):
        super().__init__()
        self.main = nn.Conv2d(in_ch, in_ch, 3, stride=1, padding=1)

    def forward(self, x, temb):
        return self.main(F.interpolate(x, scale_factor=2, mode="nearest"))


class DdpmAttnBlock(nn.Module):
    def __init__(self, in_ch):
        super().__init__()
        self.group_norm = nn.GroupNorm(32, in_ch)
        self.proj_q = nn.Conv2d(in_ch, in_ch, 1, stride=1, padding=0)
        self.proj_k = nn.Conv2d(in_ch, in_ch, 1, stride=1, padding=0)
        self.proj_v = nn.Conv2d(in_ch, in_ch, 1, stride=1, padding=0)
        self.proj = nn.Conv2d(in_ch, in_ch, 1, stride=1, padding=0)

    def forward(self, x):
        B, C, H, W = x.shape
        h = self.group_norm(x)
        q, k, v = self.proj_q(h), self.proj_k(h), self.proj_v(h)
        q = q.permute(0, 2, 3, 1).reshape(B, H * W, C)
        k = k.reshape(B, C, H * W)
        w = torch.bmm(q, k) * (int(C) ** (-0.5))
        w = F.softmax(w, dim=-1)
        v = v.permute(0, 2, 3, 1).reshape(B, H * W, C)
        h = torch.bmm(w, v).reshape(B, H, W, C).permute(0, 3, 1, 2)
        return x + self.proj(h)


class DdpmResBlock(nn.Module):
    def __init__(self, in_ch, out_ch, tdim, dropout, attn=False):
        super().__init__()
        self.block1 = nn.Sequential(nn.GroupNorm(32, in_ch), Swish(),
                                    nn.Conv2d(in_ch, out_ch, 3, stride=1, padding=1))
        self.temb_proj = nn.Sequential(Swish(), nn.Linear(tdim, out_ch))
        self.block2 = nn.Sequential(nn.GroupNorm(32, out_ch), Swish(), nn.Dropout(dropout),
                                    nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1))
        self.shortcut = (nn.Conv2d(in_ch, out_ch, 1, stride=1, padding=0) if in_ch != out_ch
                         else nn.Identity())
        self.attn = DdpmAttnBlock(out_ch) if attn else nn.Identity()

    def forward(self, x, temb):
        h = self.block1(x)
        h = h + self.temb_proj(temb)[:, :, None, None]
        h = self.block2(h)
        h = h + self.shortcut(x)
        return self.attn(h)


class DdpmUNet(nn.Module):
    def __init__(self, T, ch, ch_mult, attn, num_res_blocks, dropout):
        super().__init__()
        tdim = ch * 4
        self.time_embedding = DdpmTimeEmbedding(T, ch, tdim)
        self.head = nn.Conv2d(3, ch, kernel_size=3, stride=1, padding=1)
        self.downblocks = nn.ModuleList()
        chs, now_ch = [ch], ch
        for i, mult in enumerate(ch_mult):
            out_ch = ch * mult
            for _ in range(num_res_blocks):
                self.downblocks.append(DdpmResBlock(now_ch, out_ch, tdim, dropout, attn=(i in attn)))
                now_ch = out_ch
                chs.append(now_ch)
            if i != len(ch_mult) - 1:
                self.downblocks.append(DdpmDownSample(now_ch))
                chs.append(now_ch)
        self.middleblocks = nn.ModuleList([
            DdpmResBlock(now_ch, now_ch, tdim, dropout, attn=True),
            DdpmResBlock(now_ch, now_ch, tdim, dropout, attn=False),
        ])
        self.upblocks = nn.ModuleList()
        for i, mult in reversed(list(enumerate(ch_mult))):
            out_ch = ch * mult
            for _ in range(num_res_blocks + 1):
                self.upblocks.append(DdpmResBlock(chs.pop() + now_ch, out_ch, tdim, dropout,
                                                  attn=(i in attn)))
                now_ch = out_ch
            if i != 0:
                self.upblocks.append(DdpmUpSample(now_ch))
        assert len(chs) == 0
        self.tail = nn.Sequential(nn.GroupNorm(32, now_ch), Swish(),
                                  nn.Conv2d(now_ch, 3, 3, stride=1, padding=1))

    def forward(self, x, t):
        temb = self.time_embedding(t)
        h = self.head(x)
        hs = [h]
        for layer in self.downblocks:
            h = layer(h, temb)
            hs.append(h)
        for layer in self.middleblocks:
            h = layer(h, temb)
        for layer in self.upblocks:
            if isinstance(layer, DdpmResBlock):
                h = torch.cat([h, hs.pop()], dim=1)
            h = layer(h, temb)
        assert len(hs) == 0
        return self.tail(h)


# ---------------------------------------------------------------------------------------------
# openai/improved-diffusion and openai/guided-diffusion unet.py
#
# guided-diffusion's blocks are a superset of improved-diffusion's with the same state_dict
# names: with up = down = False a guided ResBlock is improved's ResBlock, and an AttentionBlock
# with the legacy order and num_heads is improved's AttentionBlock + QKVAttention. The two
# UNetModel constructors below follow each codebase's own __init__.
# ---------------------------------------------------------------------------------------------

def openai_timestep_embedding(timesteps, dim, dtype=torch.float32, max_period=10000):
    """nn.timestep_embedding: [cos, sin]; float32 in the real code, float64 only in the float64
    reference run."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(start=0, end=half, dtype=dtype) / half)
    args = timesteps[:, None].to(dtype) * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class GroupNorm32(nn.GroupNorm):
    """The real one computes in float32 (x.float()) and casts back; in the float64 reference run
    it stays float64."""

    def forward(self, x):
        return super().forward(x if x.dtype == torch.float64 else x.float()).type(x.dtype)


def normalization(channels):
    return GroupNorm32(32, channels)  # eps 1e-5


def conv_nd(dims, *args, **kwargs):
    return {1: nn.Conv1d, 2: nn.Conv2d}[dims](*args, **kwargs)


class TimestepEmbedSequential(nn.Sequential):
    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, OpenaiResBlock) else layer(x)
        return x


class OpenaiUpsample(nn.Module):
    def __init__(self, channels, use_conv):
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.conv = conv_nd(2, channels, channels, 3, padding=1)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class OpenaiDownsample(nn.Module):
    def __init__(self, channels, use_conv):
        super().__init__()
        if use_conv:
            self.op = conv_nd(2, channels, channels, 3, stride=2, padding=1)
        else:
            self.op = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x):
        return self.op(x)


class OpenaiResBlock(nn.Module):
    def __init__(self, channels, emb_channels, dropout, out_channels=None, use_scale_shift_norm=False,
                 up=False, down=False):
        super().__init__()
        self.out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(normalization(channels), nn.SiLU(),
                                       conv_nd(2, channels, self.out_channels, 3, padding=1))
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = OpenaiUpsample(channels, False), OpenaiUpsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = OpenaiDownsample(channels, False), OpenaiDownsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        self.emb_layers = nn.Sequential(
            nn.SiLU(),
            nn.Linear(emb_channels, 2 * self.out_channels if use_scale_shift_norm else self.out_channels))
        self.out_layers = nn.Sequential(normalization(self.out_channels), nn.SiLU(),
                                        nn.Dropout(p=dropout),
                                        conv_nd(2, self.out_channels, self.out_channels, 3, padding=1))
        if self.out_channels == channels:
            self.skip_connection = nn.Identity()
        else:
            self.skip_connection = conv_nd(2, channels, self.out_channels, 1)

    def forward(self, x, emb):
        if self.updown:
            in_rest, in_conv = self.in_layers[:-1], self.in_layers[-1]
            h = in_rest(x)
            h = self.h_upd(h)
            x = self.x_upd(x)
            h = in_conv(h)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)
        while len(emb_out.shape) < len(h.shape):
            emb_out = emb_out[..., None]
        if self.use_scale_shift_norm:
            out_norm, out_rest = self.out_layers[0], self.out_layers[1:]
            scale, shift = torch.chunk(emb_out, 2, dim=1)
            h = out_norm(h) * (1 + scale) + shift
            h = out_rest(h)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


class OpenaiAttentionBlock(nn.Module):
    def __init__(self, channels, num_heads=1, num_head_channels=-1, use_new_attention_order=False):
        super().__init__()
        self.num_heads = num_heads if num_head_channels == -1 else channels // num_head_channels
        assert num_head_channels == -1 or channels % num_head_channels == 0
        self.new_order = use_new_attention_order
        self.norm = normalization(channels)
        self.qkv = conv_nd(1, channels, channels * 3, 1)
        self.proj_out = conv_nd(1, channels, channels, 1)

    def attention(self, qkv):
        bs, width, length = qkv.shape
        ch = width // (3 * self.num_heads)
        scale = 1 / math.sqrt(math.sqrt(ch))
        if self.new_order:  # QKVAttention: split q | k | v first, then heads
            q, k, v = qkv.chunk(3, dim=1)
            q = (q * scale).reshape(bs * self.num_heads, ch, length)
            k = (k * scale).reshape(bs * self.num_heads, ch, length)
            v = v.reshape(bs * self.num_heads, ch, length)
            weight = torch.einsum("bct,bcs->bts", q, k)
        else:  # QKVAttentionLegacy / improved's QKVAttention: heads first, then q, k, v
            q, k, v = qkv.reshape(bs * self.num_heads, ch * 3, length).split(ch, dim=1)
            weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)
        weight = (weight.softmax(dim=-1) if weight.dtype == torch.float64
                  else torch.softmax(weight.float(), dim=-1).type(weight.dtype))
        a = torch.einsum("bts,bcs->bct", weight, v)
        return a.reshape(bs, -1, length)

    def forward(self, x):
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))
        h = self.proj_out(self.attention(qkv))
        return (x + h).reshape(b, c, *spatial)


class OpenaiUNetBase(nn.Module):
    def forward(self, x, timesteps, y=None):
        assert (y is not None) == (self.num_classes is not None)
        dtype = self.time_embed[0].weight.dtype
        emb = self.time_embed(openai_timestep_embedding(timesteps, self.model_channels, dtype=dtype))
        if self.num_classes is not None:
            emb = emb + self.label_emb(y)
        hs, h = [], x
        for module in self.input_blocks:
            h = module(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for module in self.output_blocks:
            h = module(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)


class ImprovedUNetModel(OpenaiUNetBase):
    """improved-diffusion UNetModel (dims 2, no checkpointing, fp32)."""

    def __init__(self, in_channels, model_channels, out_channels, num_res_blocks,
                 attention_resolutions, dropout=0, channel_mult=(1, 2, 4, 8), conv_resample=True,
                 num_classes=None, num_heads=1, num_heads_upsample=-1, use_scale_shift_norm=False):
        super().__init__()
        if num_heads_upsample == -1:
            num_heads_upsample = num_heads
        self.model_channels, self.num_classes = model_channels, num_classes
        ted = model_channels * 4
        self.time_embed = nn.Sequential(nn.Linear(model_channels, ted), nn.SiLU(), nn.Linear(ted, ted))
        if num_classes is not None:
            self.label_emb = nn.Embedding(num_classes, ted)
        self.input_blocks = nn.ModuleList(
            [TimestepEmbedSequential(conv_nd(2, in_channels, model_channels, 3, padding=1))])
        chans, ch, ds = [model_channels], model_channels, 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [OpenaiResBlock(ch, ted, dropout, out_channels=mult * model_channels,
                                         use_scale_shift_norm=use_scale_shift_norm)]
                ch = mult * model_channels
                if ds in attention_resolutions:
                    layers.append(OpenaiAttentionBlock(ch, num_heads=num_heads))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                chans.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(TimestepEmbedSequential(OpenaiDownsample(ch, conv_resample)))
                chans.append(ch)
                ds *= 2
        self.middle_block = TimestepEmbedSequential(
            OpenaiResBlock(ch, ted, dropout, use_scale_shift_norm=use_scale_shift_norm),
            OpenaiAttentionBlock(ch, num_heads=num_heads),
            OpenaiResBlock(ch, ted, dropout, use_scale_shift_norm=use_scale_shift_norm))
        self.output_blocks = nn.ModuleList([])
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                layers = [OpenaiResBlock(ch + chans.pop(), ted, dropout,
                                         out_channels=model_channels * mult,
                                         use_scale_shift_norm=use_scale_shift_norm)]
                ch = model_channels * mult
                if ds in attention_resolutions:
                    layers.append(OpenaiAttentionBlock(ch, num_heads=num_heads_upsample))
                if level and i == num_res_blocks:
                    layers.append(OpenaiUpsample(ch, conv_resample))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(normalization(ch), nn.SiLU(),
                                 conv_nd(2, model_channels, out_channels, 3, padding=1))


class GuidedUNetModel(OpenaiUNetBase):
    """guided-diffusion UNetModel (dims 2, no checkpointing, fp32)."""

    def __init__(self, image_size, in_channels, model_channels, out_channels, num_res_blocks,
                 attention_resolutions, dropout=0, channel_mult=(1, 2, 4, 8), conv_resample=True,
                 num_classes=None, num_heads=1, num_head_channels=-1, num_heads_upsample=-1,
                 use_scale_shift_norm=False, resblock_updown=False, use_new_attention_order=False):
        super().__init__()
        if num_heads_upsample == -1:
            num_heads_upsample = num_heads
        self.image_size = image_size
        self.model_channels, self.num_classes = model_channels, num_classes
        ted = model_channels * 4
        self.time_embed = nn.Sequential(nn.Linear(model_channels, ted), nn.SiLU(), nn.Linear(ted, ted))
        if num_classes is not None:
            self.label_emb = nn.Embedding(num_classes, ted)
        ch = input_ch = int(channel_mult[0] * model_channels)
        self.input_blocks = nn.ModuleList(
            [TimestepEmbedSequential(conv_nd(2, in_channels, ch, 3, padding=1))])
        chans, ds = [ch], 1
        attn_kw = dict(num_head_channels=num_head_channels,
                       use_new_attention_order=use_new_attention_order)
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [OpenaiResBlock(ch, ted, dropout, out_channels=int(mult * model_channels),
                                         use_scale_shift_norm=use_scale_shift_norm)]
                ch = int(mult * model_channels)
                if ds in attention_resolutions:
                    layers.append(OpenaiAttentionBlock(ch, num_heads=num_heads, **attn_kw))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                chans.append(ch)
            if level != len(channel_mult) - 1:
                out_ch = ch
                assert resblock_updown, "only the resblock_updown variant is needed here"
                self.input_blocks.append(TimestepEmbedSequential(
                    OpenaiResBlock(ch, ted, dropout, out_channels=out_ch,
                                   use_scale_shift_norm=use_scale_shift_norm, down=True)))
                ch = out_ch
                chans.append(ch)
                ds *= 2
        self.middle_block = TimestepEmbedSequential(
            OpenaiResBlock(ch, ted, dropout, use_scale_shift_norm=use_scale_shift_norm),
            OpenaiAttentionBlock(ch, num_heads=num_heads, **attn_kw),
            OpenaiResBlock(ch, ted, dropout, use_scale_shift_norm=use_scale_shift_norm))
        self.output_blocks = nn.ModuleList([])
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                ich = chans.pop()
                layers = [OpenaiResBlock(ch + ich, ted, dropout, out_channels=int(model_channels * mult),
                                         use_scale_shift_norm=use_scale_shift_norm)]
                ch = int(model_channels * mult)
                if ds in attention_resolutions:
                    layers.append(OpenaiAttentionBlock(ch, num_heads=num_heads_upsample, **attn_kw))
                if level and i == num_res_blocks:
                    out_ch = ch
                    layers.append(OpenaiResBlock(ch, ted, dropout, out_channels=out_ch,
                                                 use_scale_shift_norm=use_scale_shift_norm, up=True))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(normalization(ch), nn.SiLU(),
                                 conv_nd(2, input_ch, out_channels, 3, padding=1))


# ---------------------------------------------------------------------------------------------
# The cases
# ---------------------------------------------------------------------------------------------

def diffusers_config(version, **kw):
    config = {"_class_name": "UNet2DModel", "_diffusers_version": version, "sample_size": IMAGE,
              "in_channels": IN_CHANNELS, "out_channels": 3, "act_fn": "silu",
              "mid_block_scale_factor": 1, "center_input_sample": False,
              "time_embedding_type": "positional", "resnet_time_scale_shift": "default"}
    config.update(kw)
    return config


def diffusers_json(d):
    """As diffusers' ConfigMixin.to_json_string writes config.json / scheduler_config.json."""
    return json.dumps(d, indent=2, sort_keys=True) + "\n"


def case_diffusers_ho():
    config = diffusers_config(
        "0.21.4", block_out_channels=[64, 128], down_block_types=["DownBlock2D", "AttnDownBlock2D"],
        up_block_types=["AttnUpBlock2D", "UpBlock2D"], layers_per_block=1, attention_head_dim=None,
        downsample_padding=0, flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6,
        norm_num_groups=32)
    scheduler = {"_class_name": "DDPMScheduler", "_diffusers_version": "0.21.4",
                 "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02,
                 "num_train_timesteps": 1000, "prediction_type": "epsilon",
                 "variance_type": "fixed_small", "clip_sample": True}
    model = DiffusersUNet2DModel(config, legacy_names=False)
    return dict(layout="diffusers", models={"": model}, run=lambda m, x, t, y: m[""](x, t),
                convert_args=[], config_json=diffusers_json(config),
                scheduler_json=diffusers_json(scheduler),
                expected_diffusion={"schedule": "linear", "timesteps": 1000, "prediction": "eps"})


def case_diffusers_legacy_names():
    config = diffusers_config(
        "0.12.1", block_out_channels=[64, 128], down_block_types=["AttnDownBlock2D", "DownBlock2D"],
        up_block_types=["UpBlock2D", "AttnUpBlock2D"], layers_per_block=1, attention_head_dim=16,
        downsample_padding=1, flip_sin_to_cos=True, freq_shift=0, norm_eps=1e-5,
        norm_num_groups=32)
    scheduler = {"_class_name": "DDPMScheduler", "_diffusers_version": "0.12.1",
                 "beta_schedule": "squaredcos_cap_v2", "beta_start": 0.0001, "beta_end": 0.02,
                 "num_train_timesteps": 1000, "prediction_type": "v_prediction",
                 "variance_type": "fixed_small", "clip_sample": True}
    model = DiffusersUNet2DModel(config, legacy_names=True)
    return dict(layout="diffusers", models={"": model}, run=lambda m, x, t, y: m[""](x, t),
                convert_args=[], config_json=diffusers_json(config),
                scheduler_json=diffusers_json(scheduler),
                expected_diffusion={"schedule": "cosine", "timesteps": 1000, "prediction": "v"})


def case_pytorch_ddpm():
    def make():
        return DdpmUNet(T=100, ch=64, ch_mult=[1, 2], attn=[1], num_res_blocks=1, dropout=0.1)
    # The real checkpoint is {"net_model", "ema_model", "sched", "optim", "step", "x_T"}; the two
    # state_dicts are flattened to net_model.<name> / ema_model.<name>. The output is the EMA's.
    return dict(layout="pytorch-ddpm", models={"net_model.": make(), "ema_model.": make()},
                run=lambda m, x, t, y: m["ema_model."](x, t.long()), t_values=[3.0, 97.0],
                convert_args=["--image-size", "8"],
                expected_diffusion={"schedule": "betas", "timesteps": 100, "prediction": "eps",
                                    "betas": torch.linspace(1e-4, 0.02, 100, dtype=torch.float64).tolist()})


def case_improved_legacy():
    model = ImprovedUNetModel(in_channels=3, model_channels=64, out_channels=6, num_res_blocks=1,
                              attention_resolutions=(2,), dropout=0, channel_mult=(1, 2),
                              conv_resample=True, num_classes=None, num_heads=2,
                              use_scale_shift_norm=True)
    return dict(layout="improved-diffusion", models={"": model}, run=lambda m, x, t, y: m[""](x, t),
                convert_args=["--image-size", "8", "--num-heads", "2", "--schedule", "cosine",
                              "--timesteps", "4000"],
                # improved-diffusion's scripts default to rescale_timesteps=True: the network sees
                # t * 1000 / T (the raw input t of this golden is what reaches the network).
                expected_diffusion={"schedule": "cosine", "timesteps": 4000, "prediction": "eps",
                                    "rescale_timesteps": True})


def case_guided_new():
    model = GuidedUNetModel(image_size=8, in_channels=3, model_channels=64, out_channels=3,
                            num_res_blocks=1, attention_resolutions=(1, 2), dropout=0,
                            channel_mult=(1, 2), conv_resample=True, num_classes=3,
                            num_head_channels=16, use_scale_shift_norm=True, resblock_updown=True,
                            use_new_attention_order=True)
    return dict(layout="improved-diffusion", models={"": model},
                run=lambda m, x, t, y: m[""](x, t, y), conditional=True,
                convert_args=["--image-size", "8", "--num-head-channels", "16",
                              "--attention-order", "new", "--rescale-timesteps", "false"],
                expected_diffusion={"schedule": "linear", "timesteps": 1000, "prediction": "eps",
                                    "rescale_timesteps": False})


CASES = {
    "diffusers_ho": case_diffusers_ho,
    "diffusers_legacy_names": case_diffusers_legacy_names,
    "pytorch_ddpm": case_pytorch_ddpm,
    "improved_legacy": case_improved_legacy,
    "guided_new": case_guided_new,
}


def partition(models):
    """([(name, shape)] random, {name: fixed float32 tensor}) over the flattened state_dicts:
    trainable parameters are random, everything else (frozen parameters, buffers) is fixed."""
    random_entries, fixed = [], {}
    for prefix, model in models.items():
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        for name, value in model.state_dict().items():
            if name in trainable:
                random_entries.append((prefix + name, list(value.shape)))
            else:
                fixed[prefix + name] = value.detach().clone().float()
    return random_entries, fixed


def load(models, seed, random_entries, fixed):
    values = fill_values(seed, random_entries)
    for prefix, model in models.items():
        sd = {}
        for name in model.state_dict():
            full = prefix + name
            sd[name] = torch.from_numpy(values[full]) if full in values else fixed[full]
        model.load_state_dict(sd, strict=True)
        model.eval()


def inputs(case_name, spec):
    seed = seed_of("convert_" + case_name)
    x = torch.randn(BATCH, IN_CHANNELS, IMAGE, IMAGE, generator=torch.Generator().manual_seed(seed))
    t = torch.tensor(spec.get("t_values", T_VALUES), dtype=torch.float32)
    y = torch.tensor(Y_VALUES, dtype=torch.int64) if spec.get("conditional") else None
    return seed, x, t, y


def forward(spec, x, t, y, dtype=torch.float32):
    models = spec["models"] if dtype == torch.float32 else {
        k: copy.deepcopy(m).to(dtype) for k, m in spec["models"].items()}
    with torch.no_grad():
        return spec["run"](models, x.to(dtype), t, y)


goldens = GoldenFiles(OUT, dtypes={np.dtype("float32"), np.dtype("int64")})
SUMMARY = {}


def make_case(case_name):
    torch.manual_seed(0)  # module init (every value is overwritten afterwards)
    spec = CASES[case_name]()
    seed, x, t, y = inputs(case_name, spec)
    random_entries, fixed = partition(spec["models"])
    load(spec["models"], seed, random_entries, fixed)
    out = forward(spec, x, t, y)
    out64 = forward(spec, x, t, y, torch.float64)
    assert out.dtype == torch.float32 and out.shape[0] == BATCH and out.shape[2:] == (IMAGE, IMAGE)
    deviation = float((out.double() - out64).abs().max())
    rms = float(out.double().pow(2).mean().sqrt())

    tensors = {"x": x, "t": t, "output": out}
    if y is not None:
        tensors["y"] = y
    for name, value in fixed.items():
        tensors["source." + name] = value
    metadata = {
        "layout": spec["layout"],
        "seed": str(seed),
        "random_tensors": json.dumps([[n, s] for n, s in random_entries], separators=(",", ":")),
        "convert_args": json.dumps(spec["convert_args"], separators=(",", ":")),
        "expected_diffusion": json.dumps(spec["expected_diffusion"], separators=(",", ":")),
        "f64_deviation": repr(deviation),
        "output_rms": repr(rms),
    }
    if spec["layout"] == "diffusers":
        metadata["config_json"] = spec["config_json"]
        metadata["scheduler_json"] = spec["scheduler_json"]
    path = goldens.write(f"convert_{case_name}.safetensors", tensors, metadata)
    n_entries = sum(len(m.state_dict()) for m in spec["models"].values())
    n_params = sum(int(np.prod(s)) for _, s in random_entries)
    SUMMARY[case_name] = (n_entries, len(random_entries), len(fixed), n_params)
    print(f"{case_name}: output {list(out.shape)} rms {rms:.6g}, f64 deviation {deviation:.3g}, "
          f"{n_entries} state_dict entries ({len(random_entries)} random = {n_params:,} values, "
          f"{len(fixed)} fixed), {os.path.getsize(path):,} bytes")


def check():
    print("check: round trips and sizes")
    for path in goldens.written:
        name = os.path.basename(path)
        goldens.check_round_trip(path, MAX_BYTES_OF.get(name, MAX_BYTES))
    stale = sorted(set(glob.glob(os.path.join(OUT, "convert_*.safetensors"))) - set(goldens.written))
    assert not stale, f"stale files: {stale}"

    print("check: fill against Python integers, state_dict partition and order, reruns")
    for case_name in CASES:
        tensors, metadata = read_safetensors(os.path.join(OUT, f"convert_{case_name}.safetensors"))
        seed = int(metadata["seed"])
        entries = [(n, s) for n, s in json.loads(metadata["random_tensors"])]
        values = fill_values(seed, entries)
        k = 0
        for name, shape in entries:
            flat = values[name].reshape(-1)
            for i in sorted({0, 1, flat.size - 1}):
                want = fill_value_reference(seed, k + i, shape)
                assert flat[i].tobytes() == want.tobytes(), (case_name, name, i)
            k += flat.size
        # A fresh build: the names (in state_dict order), shapes and the partition must agree.
        torch.manual_seed(1)
        spec = CASES[case_name]()
        random_entries, fixed = partition(spec["models"])
        assert random_entries == entries, case_name
        sources = {n[len("source."):] for n in tensors if n.startswith("source.")}
        assert sources == set(fixed), case_name
        all_names = [p + n for p, m in spec["models"].items() for n in m.state_dict()]
        assert sorted(all_names) == sorted([n for n, _ in entries] + list(sources)), case_name
        assert not set(n for n, _ in entries) & sources, case_name
        for name in sources:
            assert np.array_equal(tensors["source." + name], fixed[name].numpy()), (case_name, name)
        # Rerun the forward from the file's contents alone: bit-identical.
        fixed_from_file = {n: torch.from_numpy(tensors["source." + n].copy()) for n in sources}
        load(spec["models"], seed, entries, fixed_from_file)
        y = torch.from_numpy(tensors["y"].copy()) if "y" in tensors else None
        out = forward(spec, torch.from_numpy(tensors["x"].copy()),
                      torch.from_numpy(tensors["t"].copy()), y)
        assert out.numpy().tobytes() == tensors["output"].tobytes(), case_name
        assert json.loads(metadata["expected_diffusion"]) == spec["expected_diffusion"]
        print(f"  {case_name}: ok ({len(all_names)} state_dict entries)")

    # pytorch-ddpm's frozen table is the interleaved [sin, cos] of t * 10000^(-2i/d).
    tensors, _ = read_safetensors(os.path.join(OUT, "convert_pytorch_ddpm.safetensors"))
    table = tensors["source.ema_model.time_embedding.timembedding.0.weight"].astype(np.float64)
    d = table.shape[1]
    args = np.arange(table.shape[0])[:, None] * np.exp(-np.arange(0, d, 2) / d * math.log(10000))
    exact = np.stack([np.sin(args), np.cos(args)], axis=-1).reshape(table.shape)
    err = np.abs(table - exact).max()
    print(f"  pytorch-ddpm table vs float64 formula: max |diff| {err:.3g} (float32 arguments)")
    assert err < 1e-3
    print(f"check: ok, {len(goldens.written)} files, {goldens.total_bytes():,} bytes")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="after writing, re-read every file and verify it")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    for case_name in CASES:
        make_case(case_name)
    print(f"wrote {len(goldens.written)} files, {goldens.total_bytes():,} bytes, to {OUT}")
    if args.check:
        check()
    return 0


if __name__ == "__main__":
    sys.exit(main())
