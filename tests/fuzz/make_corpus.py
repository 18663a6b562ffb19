#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus (tests/fuzz/corpus/<target>/): small valid inputs of every
format, so the fuzzers start inside each parser instead of at its first check. Run from anywhere;
needs only Python and, for the JPEG seed, a C compiler with stb (libstb-dev).

    python3 tests/fuzz/make_corpus.py
"""
import json
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "corpus"
REPO = Path(__file__).resolve().parents[2]


def write(target, name, data):
    folder = ROOT / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def with_split(flags, first, second):
    """The two-part layout of fuzz_targets.cpp: flags, a split byte, then both parts."""
    rest = len(first) + len(second)
    split = 0 if rest == 0 else -(-len(first) * 255 // rest)  # ceil: floor(rest * split / 255) == len(first)
    assert rest * split // 255 == len(first), (len(first), rest, split)
    return bytes([flags, split]) + first + second


def safetensors(tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def idx(magic_type, dims, payload):
    return struct.pack(">BBBB", 0, 0, magic_type, len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + payload


def png(width, height, channels, pixels, text=None):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    colour = {1: 0, 3: 2}[channels]
    rows = b"".join(b"\x00" + pixels[y * width * channels:(y + 1) * width * channels] for y in range(height))
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0))
    for key, value in (text or {}).items():
        out += chunk(b"tEXt", key.encode() + b"\x00" + value.encode())
    return out + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def jpeg(width, height, pixels):
    """A baseline JPEG from stb_image_write (compiled here), or None without a C compiler."""
    source = r"""
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#include <stdio.h>
static void put(void* f, void* data, int n) { fwrite(data, 1, n, (FILE*)f); }
int main(int argc, char** argv) {
  int w = atoi(argv[1]), h = atoi(argv[2]);
  unsigned char px[4096];
  fread(px, 1, w * h * 3, stdin);
  return !stbi_write_jpg_to_func(put, stdout, w, h, 3, px, 90);
}
"""
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "jpeg"
        try:
            subprocess.run(["cc", "-x", "c", "-", "-o", str(exe), "-lm"], input=source.encode(), check=True)
        except (OSError, subprocess.CalledProcessError):
            return None
        return subprocess.run([str(exe), str(width), str(height)], input=pixels, check=True, capture_output=True).stdout


def main():
    # safetensors: float32, int64 and float16 tensors with metadata; an empty file of tensors.
    f32 = struct.pack("<6f", *[0.5 * i for i in range(6)])
    i64 = struct.pack("<2q", 3, -7)
    f16 = struct.pack("<2e", 1.0, -2.5)
    write("safetensors", "three-tensors.safetensors",
          safetensors({"w": ("F32", [2, 3], f32), "step": ("I64", [2], i64), "h": ("F16", [2], f16)},
                      {"format": "pt", "step": "12"}))
    write("safetensors", "empty.safetensors", safetensors({}, {"note": "no tensors"}))
    write("safetensors", "scalar.safetensors", safetensors({"s": ("F64", [], struct.pack("<d", 2.0))}))

    # IDX: 3 images of 4x4 with their labels; the images alone.
    images = idx(0x08, [3, 4, 4], bytes(range(0, 240, 5)))
    labels = idx(0x08, [3], bytes([1, 7, 3]))
    write("idx", "images-and-labels.bin", with_split(1, images, labels))
    write("idx", "images-only.bin", with_split(0, images, b""))

    # CIFAR-10 binary batches: records of a label byte and 3 x 32 x 32 pixels.
    write("cifar", "two-records.bin", bytes([3]) + bytes(i % 256 for i in range(3072)) +
          bytes([9]) + bytes((7 * i) % 256 for i in range(3072)))

    # Image folders: a grey PNG with a text chunk; two RGB images, a PNG and a JPEG of the same size.
    grey = bytes(range(0, 256, 16))
    rgb = bytes((i * 37) % 256 for i in range(4 * 4 * 3))
    write("image_folder", "grey-png.bin", with_split(0, png(4, 4, 1, grey, {"diffkd": "{\"step\": 3}"}), b""))
    second = jpeg(4, 4, rgb)
    if second is None:
        second = png(4, 4, 3, rgb[::-1])
        print("make_corpus: no C compiler with stb: the second image is a PNG")
    write("image_folder", "rgb-png-and-jpeg.bin", with_split(3, png(4, 4, 3, rgb), second))

    # Sampler specs, as report --samplers and eval --teacher-sampler take them.
    for i, spec in enumerate(["ddim:50", "ddim:20:eta=0.5", "ddpm:1000@200", "ddpm:50:large", "ddim:8:trailing"]):
        write("sampler_spec", f"spec-{i}.txt", spec)

    # UNet configs: the tests' tiny one and the MNIST preset.
    for name in ["tests/configs/tiny-unet.json", "configs/mnist-unet.json"]:
        write("unet_config", Path(name).name, (REPO / name).read_text())


if __name__ == "__main__":
    main()
