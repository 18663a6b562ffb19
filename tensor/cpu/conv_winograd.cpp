// Winograd F(2x2, 3x3) convolution (conv_winograd.h). With d a 4x4 input patch, g a 3x3 kernel:
//
//   B^T = [1  0 -1  0]    G = [ 1    0    0 ]    A^T = [1  1  1  0]
//         [0  1  1  0]        [1/2  1/2  1/2]          [0  1 -1 -1]
//         [0 -1  1  0]        [1/2 -1/2  1/2]
//         [0  1  0 -1]        [ 0    0    1 ]
//
//   V = B^T d B,  U = G g G^T,  M_xi = sum_c U_xi[o, c] V_xi[c, tile],  Y = A^T M A  (2x2 outputs).
//
// Blocking: the tiles of a chunk of images are numbered n-major, then row, then column, and cut
// into panels of 32 (the packed GEMM's B panels, packed_gemm.h); V is written straight into that
// layout, V[xi][panel][c][32]. One work item is (panel, block of 12 output channels): the 16
// micro-kernel tiles M_xi (12 x 32 each, 24 KB together) and their output transform into y. Items
// run panel-major, so the 16 panels of V an item reads (16 x C x 32 floats) stay in L2 across the
// output-channel blocks. Every output is one fixed sequence of operations: the result does not
// depend on the thread count.

#include "tensor/cpu/conv_winograd.h"

#include <algorithm>
#include <vector>

#include "tensor/cpu/conv_common.h"
#include "tensor/cpu/conv_direct.h"  // kDirectParallelGrain
#include "tensor/cpu/packed_gemm.h"
#include "tensor/error.h"

namespace diffkd::cpu_impl::conv {

namespace {

constexpr int64_t kMR = packed::kMR, kNR = packed::kNR;
constexpr int64_t kChunkBytes = int64_t{4} << 20;  // the transformed input of one chunk of images

// The tile grid of a shape: th x tw tiles of 2x2 outputs per image (the last row or column of
// tiles is half outside the output when oh or ow is odd).
struct TileGrid {
  int64_t oh, ow, th, tw;
  explicit TileGrid(const WinogradShape& s)
      : oh(s.h + 2 * s.ph - 2), ow(s.w + 2 * s.pw - 2), th((oh + 1) / 2), tw((ow + 1) / 2) {}
  int64_t per_image() const { return th * tw; }
};

// The plane zero-padded to (2 th + 2) x (2 tw + 2): every tile's 4x4 patch inside it.
void pad_plane(const float* plane, const WinogradShape& s, const TileGrid& g, float* padded) {
  const int64_t hp = 2 * g.th + 2, wp = 2 * g.tw + 2;  // >= h + 2 ph, w + 2 pw
  std::fill(padded, padded + s.ph * wp, 0.0f);
  for (int64_t r = 0; r < s.h; ++r) {
    float* row = padded + (s.ph + r) * wp;
    std::fill(row, row + s.pw, 0.0f);
    std::copy(plane + r * s.w, plane + (r + 1) * s.w, row + s.pw);
    std::fill(row + s.pw + s.w, row + wp, 0.0f);
  }
  std::fill(padded + (s.ph + s.h) * wp, padded + hp * wp, 0.0f);
}

}  // namespace

void winograd_input_tile(const float (&d)[16], float (&v)[16]) {
  float t[16];
  for (int j = 0; j < 4; ++j) {
    t[0 * 4 + j] = d[0 * 4 + j] - d[2 * 4 + j];
    t[1 * 4 + j] = d[1 * 4 + j] + d[2 * 4 + j];
    t[2 * 4 + j] = d[2 * 4 + j] - d[1 * 4 + j];
    t[3 * 4 + j] = d[1 * 4 + j] - d[3 * 4 + j];
  }
  for (int k = 0; k < 4; ++k) {
    v[k * 4 + 0] = t[k * 4 + 0] - t[k * 4 + 2];
    v[k * 4 + 1] = t[k * 4 + 1] + t[k * 4 + 2];
    v[k * 4 + 2] = t[k * 4 + 2] - t[k * 4 + 1];
    v[k * 4 + 3] = t[k * 4 + 1] - t[k * 4 + 3];
  }
}

namespace {

// Inlined into the packing loop: called, its vector loads of g stall on the scalar stores that
// just wrote it (store forwarding; measured 20x slower packing).
[[gnu::always_inline]] inline void weight_tile(const double (&g)[9], double (&u)[16]) {
  double r[12];  // G g, 4 x 3
  for (int j = 0; j < 3; ++j) {
    r[0 * 3 + j] = g[0 * 3 + j];
    r[1 * 3 + j] = 0.5 * (g[0 * 3 + j] + g[1 * 3 + j] + g[2 * 3 + j]);
    r[2 * 3 + j] = 0.5 * (g[0 * 3 + j] - g[1 * 3 + j] + g[2 * 3 + j]);
    r[3 * 3 + j] = g[2 * 3 + j];
  }
  for (int k = 0; k < 4; ++k) {  // (G g) G^T
    u[k * 4 + 0] = r[k * 3 + 0];
    u[k * 4 + 1] = 0.5 * (r[k * 3 + 0] + r[k * 3 + 1] + r[k * 3 + 2]);
    u[k * 4 + 2] = 0.5 * (r[k * 3 + 0] - r[k * 3 + 1] + r[k * 3 + 2]);
    u[k * 4 + 3] = r[k * 3 + 2];
  }
}

}  // namespace

void winograd_weight_tile(const double (&g)[9], double (&u)[16]) { weight_tile(g, u); }

void winograd_output_tile(const float (&m)[16], float (&y)[4]) {
  float a[8];  // A^T M, 2 x 4
  for (int j = 0; j < 4; ++j) {
    a[0 * 4 + j] = m[0 * 4 + j] + m[1 * 4 + j] + m[2 * 4 + j];
    a[1 * 4 + j] = m[1 * 4 + j] - m[2 * 4 + j] - m[3 * 4 + j];
  }
  for (int r = 0; r < 2; ++r) {
    y[r * 2 + 0] = a[r * 4 + 0] + a[r * 4 + 1] + a[r * 4 + 2];
    y[r * 2 + 1] = a[r * 4 + 1] - a[r * 4 + 2] - a[r * 4 + 3];
  }
}

int64_t winograd_weight_size(int64_t o, int64_t c) { return 16 * packed::packed_a_size(o, c); }

void pack_weight_winograd(const float* w, int64_t o_count, int64_t c_count, bool flip_transpose,
                          float* packed) {
  // U_xi in its packed A layout (packed_gemm.h): row block b of U_xi holds U_xi[b kMR + r, c] at
  // [c kMR + r], zero past o_count. A row block's 16 pieces are built in a local buffer and
  // copied out whole: written in place, the 16 streams (a multiple of 4 KB apart) thrash the
  // same cache sets (measured 20x slower). U in double from the float kernel, rounded once: the
  // 1/2 factors then cost no extra rounding.
  const int64_t size = packed::packed_a_size(o_count, c_count), row_blocks = packed::blocks(o_count);
  const int64_t piece = c_count * kMR;  // one row block of one U_xi
  const int64_t piece_stride = piece + 16;  // not a multiple of 4 KB apart either (the same sets)
#pragma omp parallel for schedule(static) if (o_count * c_count * 16 > kDirectParallelGrain)
  for (int64_t b = 0; b < row_blocks; ++b) {
    thread_local std::vector<float> pieces;
    pieces.resize(16 * piece_stride);
    const int64_t rows = std::min(kMR, o_count - b * kMR);
    for (int64_t c = 0; c < c_count; ++c)
      for (int64_t r = 0; r < kMR; ++r) {
        double t[16] = {};
        if (r < rows) {
          const int64_t o = b * kMR + r;
          double g[9];
          for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j)
              g[i * 3 + j] = flip_transpose ? w[((c * o_count + o) * 3 + 2 - i) * 3 + 2 - j]
                                            : w[((o * c_count + c) * 3 + i) * 3 + j];
          weight_tile(g, t);
        }
        for (int xi = 0; xi < 16; ++xi) pieces[xi * piece_stride + c * kMR + r] = static_cast<float>(t[xi]);
      }
    for (int xi = 0; xi < 16; ++xi)
      std::copy_n(pieces.begin() + xi * piece_stride, piece, packed + xi * size + b * piece);
  }
}

namespace {

// The distance between the 16 transformed matrices of v: a whole number of panels plus 64 floats,
// so that the 16 streams the transforms write (and the products read) do not fall on the same
// cache sets, as a power-of-two distance would (measured: the input transform ran 2x slower).
int64_t xi_stride(int64_t panels, int64_t c) { return panels * c * kNR + 64; }

// V of images [first, first + images) into v[xi][panel][c][32] (panels of this chunk's tiles;
// the unused columns of the last panel zeroed).
void transform_input(const float* x, const WinogradShape& s, const TileGrid& g, int64_t first,
                     int64_t images, float* v) {
  const int64_t tiles = images * g.per_image(), panels = packed::panels(tiles);
  const int64_t wp = 2 * g.tw + 2, planes = images * s.c, half = g.tw + 1;
  const int64_t stride = xi_stride(panels, s.c);
#pragma omp parallel for schedule(static) if (planes * g.per_image() * 16 > kDirectParallelGrain)
  for (int64_t plane = 0; plane < planes; ++plane) {
    const int64_t n = plane / s.c, c = plane % s.c;
    const float* src = x + ((first + n) * s.c + c) * s.h * s.w;
    thread_local std::vector<float> padded, even, odd;
    padded.resize((2 * g.th + 2) * wp);
    even.resize(4 * half);
    odd.resize(4 * half);
    pad_plane(src, s, g, padded.data());
    for (int64_t ty = 0; ty < g.th; ++ty) {
      // B^T down the 4 rows, split into even and odd columns: tile tx reads columns 2tx .. 2tx+3,
      // that is even[tx], odd[tx], even[tx + 1], odd[tx + 1].
      const float *r0 = padded.data() + 2 * ty * wp, *r1 = r0 + wp, *r2 = r1 + wp, *r3 = r2 + wp;
      for (int64_t m = 0; m < half; ++m) {
        even[0 * half + m] = r0[2 * m] - r2[2 * m];
        even[1 * half + m] = r1[2 * m] + r2[2 * m];
        even[2 * half + m] = r2[2 * m] - r1[2 * m];
        even[3 * half + m] = r1[2 * m] - r3[2 * m];
        odd[0 * half + m] = r0[2 * m + 1] - r2[2 * m + 1];
        odd[1 * half + m] = r1[2 * m + 1] + r2[2 * m + 1];
        odd[2 * half + m] = r2[2 * m + 1] - r1[2 * m + 1];
        odd[3 * half + m] = r1[2 * m + 1] - r3[2 * m + 1];
      }
      // B^T along the columns, for the row's tiles in runs that share a panel (contiguous in v).
      const int64_t tile0 = (n * g.th + ty) * g.tw;
      for (int64_t tx0 = 0; tx0 < g.tw;) {
        const int64_t tile = tile0 + tx0, j0 = tile % kNR, run = std::min(g.tw - tx0, kNR - j0);
        float* dst = v + ((tile / kNR) * s.c + c) * kNR + j0;
        for (int k = 0; k < 4; ++k) {
          const float* e = even.data() + k * half + tx0;
          const float* o = odd.data() + k * half + tx0;
          float *v0 = dst + (4 * k + 0) * stride, *v1 = dst + (4 * k + 1) * stride;
          float *v2 = dst + (4 * k + 2) * stride, *v3 = dst + (4 * k + 3) * stride;
#pragma omp simd
          for (int64_t t = 0; t < run; ++t) {
            v0[t] = e[t] - e[t + 1];
            v1[t] = o[t] + e[t + 1];
            v2[t] = e[t + 1] - o[t];
            v3[t] = o[t] - o[t + 1];
          }
        }
        tx0 += run;
      }
    }
  }
  if (tiles % kNR != 0)
    for (int xi = 0; xi < 16; ++xi)
      for (int64_t c = 0; c < s.c; ++c) {
        float* row = v + xi * stride + ((panels - 1) * s.c + c) * kNR;
        std::fill(row + tiles % kNR, row + kNR, 0.0f);
      }
}

// The 16 products of one (panel, output-channel block) item and their output transform into y.
void multiply_and_transform_output(const float* packed_weight, const float* bias, const float* v,
                                   const WinogradShape& s, const TileGrid& g, int64_t first,
                                   int64_t tiles, int64_t panel, int64_t block, float* y) {
  const int64_t panels = packed::panels(tiles), a_size = packed::packed_a_size(s.o, s.c);
  alignas(64) float m[16][kMR * kNR];
  for (int xi = 0; xi < 16; ++xi)
    packed::micro_kernel(s.c, packed_weight + xi * a_size + block * kMR * s.c,
                         v + xi * xi_stride(panels, s.c) + panel * s.c * kNR, m[xi]);
  // Where each of the panel's tiles lands: its image's first output and the tile's offset.
  int64_t image_of[kNR], offset[kNR], rows_of[kNR], cols_of[kNR];
  const int64_t columns = std::min(kNR, tiles - panel * kNR);
  for (int64_t j = 0; j < columns; ++j) {
    const int64_t tile = panel * kNR + j, rest = tile % g.per_image();
    const int64_t ty = rest / g.tw, tx = rest % g.tw;
    image_of[j] = first + tile / g.per_image();
    offset[j] = 2 * ty * g.ow + 2 * tx;
    rows_of[j] = std::min<int64_t>(2, g.oh - 2 * ty);
    cols_of[j] = std::min<int64_t>(2, g.ow - 2 * tx);
  }
  const int64_t plane = g.oh * g.ow, rows = std::min(kMR, s.o - block * kMR);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t o = block * kMR + r;
    const float b = bias != nullptr ? bias[o] : 0.0f;
    float out[4][kNR];
#pragma omp simd
    for (int64_t j = 0; j < kNR; ++j) {
      float mm[16], yy[4];
      for (int xi = 0; xi < 16; ++xi) mm[xi] = m[xi][r * kNR + j];
      float a[8];  // A^T M A, as winograd_output_tile
      for (int col = 0; col < 4; ++col) {
        a[col] = mm[col] + mm[4 + col] + mm[8 + col];
        a[4 + col] = mm[4 + col] - mm[8 + col] - mm[12 + col];
      }
      for (int q = 0; q < 2; ++q) {
        yy[q * 2 + 0] = a[q * 4 + 0] + a[q * 4 + 1] + a[q * 4 + 2];
        yy[q * 2 + 1] = a[q * 4 + 1] - a[q * 4 + 2] - a[q * 4 + 3];
      }
      for (int q = 0; q < 4; ++q) out[q][j] = yy[q] + b;
    }
    for (int64_t j = 0; j < columns; ++j) {
      float* dst = y + (image_of[j] * s.o + o) * plane + offset[j];
      for (int64_t q = 0; q < rows_of[j]; ++q)
        for (int64_t p = 0; p < cols_of[j]; ++p) dst[q * g.ow + p] = out[q * 2 + p][j];
    }
  }
}

}  // namespace

void conv2d_winograd(const float* x, const float* packed_weight, const float* bias, float* y,
                     const WinogradShape& s) {
  DK_CHECK(packed::available(), "conv2d_winograd: needs the packed GEMM (AVX-512 or AVX2 + FMA)");
  DK_CHECK(s.ph >= 0 && s.ph < 3 && s.pw >= 0 && s.pw < 3, "conv2d_winograd: padding ", s.ph, ", ", s.pw,
           " (0 to 2 only)");
  const TileGrid g(s);
  if (g.oh <= 0 || g.ow <= 0 || s.n == 0) return;
  const int64_t image_bytes = 16 * packed::panels(g.per_image()) * kNR * s.c * 4;
  const int64_t chunk = std::clamp<int64_t>(kChunkBytes / image_bytes, 1, s.n);
  const int64_t blocks = packed::blocks(s.o);
  const CallScratch v_scratch(16 * xi_stride(packed::panels(chunk * g.per_image()), s.c));
  float* v = v_scratch.data();
  for (int64_t first = 0; first < s.n; first += chunk) {
    const int64_t images = std::min(chunk, s.n - first), tiles = images * g.per_image();
    transform_input(x, s, g, first, images, v);
    const int64_t items = packed::panels(tiles) * blocks;
#pragma omp parallel for schedule(static) if (items > 1 && tiles * s.c * s.o * 16 > kDirectParallelGrain)
    for (int64_t item = 0; item < items; ++item)
      multiply_and_transform_output(packed_weight, bias, v, s, g, first, tiles, item / blocks, item % blocks, y);
  }
}

}  // namespace diffkd::cpu_impl::conv
