// AVX2 tiled matrix products for F16 and Q8_0 in the reference's summation
// order (compiled with AVX2/FMA/F16C; called only after have_avx2()). The
// same scheme as ggml_order_gemm_avx512.cpp: a few rows x a few tokens per
// tile, each output with its own accumulators fed in the per-element
// kernel's order, so every output is bit-identical to it. Other types go one
// output at a time through the AVX2 per-element kernels.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "engine/model/ggml_order.h"
#include "engine/model/ggml_order_x86.h"

namespace hai::model::ggml_order {

namespace {

constexpr int kRows = 2;            // rows per tile (16 ymm registers in all)
constexpr int kToks = 3;            // tokens per tile at most
constexpr int64_t kTokBlock = 64;   // tokens whose activations stay in cache while the rows go by

struct Tile {
  int64_t n = 0;
  const uint8_t* w[kRows] = {};  // the last row repeated at the end of a matrix
  int n_rows = 0;
  const uint8_t* a[kToks] = {};
  float* y = nullptr;
  size_t ldy = 0;
};

// F16: 16 lanes per output as two vectors of 8 (lanes 0..7 and 8..15);
// reduce16 adds lane l + 8 to lane l first, then as hsum8.
template <int T>
void f16_tile(const Tile& g) {
  __m256 lo[kRows][T], hi[kRows][T];
  for (int r = 0; r < kRows; ++r)
    for (int t = 0; t < T; ++t) lo[r][t] = hi[r][t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < g.n; i += 16) {
    __m256 xl[T], xh[T];
    for (int t = 0; t < T; ++t) {
      const float* x = reinterpret_cast<const float*>(g.a[t]) + i;
      xl[t] = _mm256_loadu_ps(x);
      xh[t] = _mm256_loadu_ps(x + 8);
    }
    for (int r = 0; r < kRows; ++r) {
      const uint8_t* w = g.w[r] + 2 * i;
      const __m256 wl = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
      const __m256 wh = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 16)));
      for (int t = 0; t < T; ++t) {
        lo[r][t] = _mm256_fmadd_ps(wl, xl[t], lo[r][t]);
        hi[r][t] = _mm256_fmadd_ps(wh, xh[t], hi[r][t]);
      }
    }
  }
  for (int r = 0; r < g.n_rows; ++r)
    for (int t = 0; t < T; ++t) g.y[t * g.ldy + r] = hsum8(_mm256_add_ps(hi[r][t], lo[r][t]));
}

// Q8_0: per output 8 int32 lanes of 4-byte dots per block (|w| x sign(y, w)
// in int16 pairs, then pairs of pairs), d_w * d_a, fused multiply-add.
template <int T>
void q8_0_tile(const Tile& g) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[kRows][T];
  for (int r = 0; r < kRows; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < g.n / 32; ++b) {
    __m256i yq[T];
    float da[T];
    for (int t = 0; t < T; ++t) {
      const uint8_t* p = g.a[t] + 34 * b;
      da[t] = load_f16(p);
      yq[t] = load256(p + 2);
    }
    for (int r = 0; r < kRows; ++r) {
      const uint8_t* p = g.w[r] + 34 * b;
      const float dw = load_f16(p);
      const __m256i wq = load256(p + 2);
      const __m256i aw = _mm256_sign_epi8(wq, wq);
      for (int t = 0; t < T; ++t) {
        const __m256i p16 = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(yq[t], wq));
        const __m256i dot = _mm256_madd_epi16(p16, ones);
        acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * da[t]), _mm256_cvtepi32_ps(dot), acc[r][t]);
      }
    }
  }
  for (int r = 0; r < g.n_rows; ++r)
    for (int t = 0; t < T; ++t) g.y[t * g.ldy + r] = hsum8(acc[r][t]);
}

using TileFn = void (*)(const Tile&);
const TileFn f16_fns[kToks + 1] = {nullptr, f16_tile<1>, f16_tile<2>, f16_tile<3>};
const TileFn q8_0_fns[kToks + 1] = {nullptr, q8_0_tile<1>, q8_0_tile<2>, q8_0_tile<3>};

void run_tiles(const GemmArgs& g, const TileFn* fns) {
  const uint8_t* w = static_cast<const uint8_t*>(g.w);
  const uint8_t* a = static_cast<const uint8_t*>(g.a);
  for (int64_t tb = 0; tb < g.n_tok; tb += kTokBlock) {
    const int64_t tb_end = std::min(g.n_tok, tb + kTokBlock);
    for (int64_t r0 = 0; r0 < g.n_rows; r0 += kRows) {
      Tile tile;
      tile.n = g.n;
      tile.n_rows = static_cast<int>(std::min<int64_t>(kRows, g.n_rows - r0));
      for (int r = 0; r < kRows; ++r) tile.w[r] = w + g.w_stride * (r0 + std::min(r, tile.n_rows - 1));
      tile.ldy = g.ldy;
      for (int64_t t0 = tb; t0 < tb_end; t0 += kToks) {
        const int nt = static_cast<int>(std::min<int64_t>(kToks, tb_end - t0));
        for (int t = 0; t < nt; ++t) tile.a[t] = a + g.a_stride * (t0 + t);
        tile.y = g.y + t0 * g.ldy + r0;
        fns[nt](tile);
      }
    }
  }
}

}  // namespace

void gemm_avx2_tiled(GgmlType type, const GemmArgs& g) {
  if (type == GgmlType::F16) return run_tiles(g, f16_fns);
  return run_tiles(g, q8_0_fns);
}

}  // namespace hai::model::ggml_order
