// AVX-512 (with VNNI) tiled matrix products in the reference's summation
// order (compiled with AVX-512 flags; called only after have_avx512()).
//
// A tile is a few weight rows times a few activation rows. Every weight
// block is loaded (and, for packed types, unpacked) once per tile and used
// for every token of the tile; every activation block once and used for
// every row. Register blocking changes which products are computed next to
// each other, never the order in which one output's terms are added: each
// output keeps its own accumulator(s), fed block after block with the same
// fused multiply-adds as the per-element kernels (ggml_order.cpp), and the
// integer parts are exact whatever their grouping. So every output is
// bit-identical to the per-element kernel's.
//
// Rows: a tile always computes its kernel's row count (1, 3, 4 or 8); at
// the end of a matrix the last row pointer is repeated and the extra results
// are dropped. Tokens: tiles of 1..kMaxTok tokens (templates, kMaxTokQ8,
// kMaxTokQ4, kMaxTokK for those types), so a short batch costs no waste.
//
// Q8_0, Q5_0 and Q4_0 first rewrite each block of kTokBlock activation rows
// into a small per-thread buffer (block scales as floats, the integer
// corrections that depend on the token only), so that this work is done once
// per token instead of once per row tile.
//
// The loops over a tile's rows and tokens carry `#pragma GCC unroll`: fully
// unrolled before GCC's scalar replacement, the accumulator arrays become
// registers; otherwise GCC keeps them in memory and stores every one at
// every block (measured: a 1.3x slower Q8_0 tile).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/model/ggml_order.h"
#include "engine/model/ggml_order_x86.h"

namespace hai::model::ggml_order {

namespace {

constexpr int kMaxTok = 4;     // tokens per F16 tile
constexpr int kMaxTokK = 16;   // tokens per K-quant tile (its unpacking is amortized over them)
constexpr int64_t kTokBlock = 64;  // tokens whose activations stay in L2 while the rows go by

// The hardware prefetcher follows the rows of a tile poorly (several
// streams side by side, a few bytes each per step), which halves the memory
// throughput of decode. So while a tile is computed, the next tile's rows
// (contiguous bytes) are prefetched, a share of them at every block step.
struct Prefetcher {
  const char* p = nullptr;
  const char* end = nullptr;
  int64_t per_step = 0;  // bytes per block step
  Prefetcher(const uint8_t* next, size_t bytes, int64_t steps) {
    if (next == nullptr || steps <= 0) return;
    p = reinterpret_cast<const char*>(next);
    end = p + bytes;
    per_step = (static_cast<int64_t>(bytes) + steps - 1) / steps;
  }
  void step() {
    for (int64_t k = 0; k < per_step && p < end; k += 64, p += 64) _mm_prefetch(p, _MM_HINT_T0);
  }
};

// reduce16 (ggml_order.cpp): lanes l and l + 8 first, then as hsum8.
inline float reduce16(__m512 acc) {
  return hsum8(_mm256_add_ps(_mm512_extractf32x8_ps(acc, 1), _mm512_castps512_ps256(acc)));
}

// Where a tile's rows and tokens are, and where its results go:
// y[t * ldy + r] for r < n_rows, t < n_tok.
struct Tile {
  int64_t n = 0;                   // values per row
  const uint8_t* w[8] = {};        // weight rows (the last one repeated up to the tile's row count)
  int n_rows = 0;                  // rows to store
  const uint8_t* a[16] = {};  // activation rows (up to kMaxTokK)
  int n_tok = 0;
  float* y = nullptr;
  size_t ldy = 0;
  const uint8_t* next = nullptr;  // the next tile's rows, to prefetch (or null)
  size_t next_bytes = 0;
};

// ---------------------------------------------------------------------------
// F16 weights x F16-rounded float activations: per output 16 lanes of fused
// multiply-adds over k, then reduce16 (dot_f16_f32).

template <int R, int T>
void f16_tile(const Tile& g) {
  __m512 acc[R][T];
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 16
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  const uint16_t* w[R];
  const float* x[T];
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r) w[r] = reinterpret_cast<const uint16_t*>(g.w[r]);
  #pragma GCC unroll 16
  for (int t = 0; t < T; ++t) x[t] = reinterpret_cast<const float*>(g.a[t]);
  Prefetcher pf(g.next, g.next_bytes, g.n / 16);
  for (int64_t i = 0; i < g.n; i += 16) {
    pf.step();
    __m512 xv[T];
    #pragma GCC unroll 16
    for (int t = 0; t < T; ++t) xv[t] = _mm512_loadu_ps(x[t] + i);
    #pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 wv = _mm512_cvtph_ps(load256(w[r] + i));
      #pragma GCC unroll 16
      for (int t = 0; t < T; ++t) acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  float sum[R][T];  // (all sums first, with constant indices: see q8_0_rows_tile)
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 16
    for (int t = 0; t < T; ++t) sum[r][t] = reduce16(acc[r][t]);
  for (int r = 0; r < g.n_rows; ++r)
    for (int t = 0; t < T; ++t) g.y[t * g.ldy + r] = sum[r][t];
}

// ---------------------------------------------------------------------------
// Q8_0 x Q8_0: per output 8 int32 lanes of 4-byte integer dots per block,
// scaled by d_w * d_a and fused-added; then hsum8 (dot_q8_0). Q5_0 x Q8_0
// (hai::vec_dot's x86 kernel, ggml's order): the same lanes and steps, with
// weights level - 16 (level = 4 low bits | fifth bit << 4; 22-byte blocks:
// d, qh[4], qs[16]).
//
// The tiles have several rows and the correction is on the weight side; the
// scales are multiplied 8 blocks at a time. The integer dot of signed bytes w and y as unsigned x
// signed (dpbusd): (y + 128) . w - 128 * sum(w); y + 128 = y xor 0x80 is
// computed once per token and block (shared by the rows), -128 * sum(w) once
// per row and block (shared by the tokens). The scales d_w * d_a (each the
// float product of the two converted F16 scales, as in dot_q8_0) are
// multiplied for 8 blocks in one vector operation and then broadcast from
// memory into the fused multiply-add. Per output and block that leaves the
// integer dot, its conversion and the fused multiply-add.

// Q5_0 weights as signed bytes level - 16 (level = 4 low bits | fifth bit << 4).
template <bool kQ5>
inline __m256i weights_signed(const uint8_t* block) {
  if (!kQ5) return load256(block + 2);
  uint32_t qh;
  std::memcpy(&qh, block + 2, 4);
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 6));
  const __m128i low4 = _mm_set1_epi8(0x0F);
  const __m256i nibbles = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(q, low4)),
                                                  _mm_and_si128(_mm_srli_epi16(q, 4), low4), 1);
  // bit j clear: level - 16 = nibble - 16; set: nibble.
  return _mm256_mask_sub_epi8(nibbles, static_cast<__mmask32>(~qh), nibbles, _mm256_set1_epi8(16));
}

constexpr int kScaleChunk = 8;  // blocks whose scales are multiplied at once
constexpr int kMaxTokQ8 = 8;    // tokens per Q8_0 / Q5_0 tile

// A token's activation row prepared for the rows kernel: the nb block scales
// as floats (padded to a multiple of kScaleChunk and to 64 bytes), then the
// nb blocks' 32 bytes y + 128.
inline size_t prepared_scales_bytes(int64_t nb) {
  return static_cast<size_t>((nb + kScaleChunk - 1) / kScaleChunk * kScaleChunk * 4 + 63) / 64 * 64;
}
inline size_t prepared_row_bytes(int64_t nb) { return prepared_scales_bytes(nb) + static_cast<size_t>(nb) * 32; }

void prepare_q8_0(const uint8_t* a, int64_t n, uint8_t* out) {
  const int64_t nb = n / 32;
  const __m256i k80 = _mm256_set1_epi8(static_cast<char>(0x80));
  float* da = reinterpret_cast<float*>(out);
  uint8_t* yu = out + prepared_scales_bytes(nb);
  const int64_t padded = (nb + kScaleChunk - 1) / kScaleChunk * kScaleChunk;
  for (int64_t b = 0; b < nb; ++b) {
    da[b] = load_f16(a + 34 * b);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(yu + 32 * b), _mm256_xor_si256(load256(a + 34 * b + 2), k80));
  }
  for (int64_t b = nb; b < padded; ++b) da[b] = 0.0f;
}

template <int R, int T, bool kQ5>
void q8_0_rows_tile(const Tile& g) {
  constexpr int kBlock = kQ5 ? 22 : 34;
  const __m256i k80 = _mm256_set1_epi8(static_cast<char>(0x80));
  const __m256i zero = _mm256_setzero_si256();
  const int64_t nb = g.n / 32;
  const size_t yu_offset = prepared_scales_bytes(nb);
  __m256 acc[R][T];
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 16
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  alignas(32) float dw[R][kScaleChunk], scale[R][T][kScaleChunk];
  Prefetcher pf(g.next, g.next_bytes, nb);
  for (int64_t b0 = 0; b0 < nb; b0 += kScaleChunk) {
    const int nc = static_cast<int>(std::min<int64_t>(kScaleChunk, nb - b0));
    for (int j = 0; j < kScaleChunk; ++j) {
      const int64_t b = b0 + std::min(j, nc - 1);  // past the end: repeat the last block (unused)
      #pragma GCC unroll 16
      for (int r = 0; r < R; ++r) dw[r][j] = load_f16(g.w[r] + kBlock * b);
    }
    #pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      const __m256 dav = _mm256_loadu_ps(reinterpret_cast<const float*>(g.a[t]) + b0);
      #pragma GCC unroll 16
      for (int r = 0; r < R; ++r) _mm256_store_ps(scale[r][t], _mm256_mul_ps(_mm256_load_ps(dw[r]), dav));
    }
    for (int j = 0; j < nc; ++j) {
      const int64_t b = b0 + j;
      pf.step();
      __m256i w[R], neg_corr[R];
      #pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        w[r] = weights_signed<kQ5>(g.w[r] + kBlock * b);
        neg_corr[r] = _mm256_sub_epi32(zero, _mm256_dpbusd_epi32(zero, k80, w[r]));
      }
      #pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        const __m256i yu = load256(g.a[t] + yu_offset + 32 * b);
        #pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
          const __m256i dot = _mm256_dpbusd_epi32(neg_corr[r], yu, w[r]);
          acc[r][t] = _mm256_fmadd_ps(_mm256_broadcast_ss(&scale[r][t][j]), _mm256_cvtepi32_ps(dot), acc[r][t]);
        }
      }
    }
  }
  // (All sums first, with constant indices, so that the accumulators can
  // stay in registers throughout.)
  float sum[R][T];
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 16
    for (int t = 0; t < T; ++t) sum[r][t] = hsum8(acc[r][t]);
  for (int r = 0; r < g.n_rows; ++r)
    #pragma GCC unroll 16
    for (int t = 0; t < T; ++t) g.y[t * g.ldy + r] = sum[r][t];
}

// ---------------------------------------------------------------------------
// Q4_0 x Q8_0: per output one float accumulator, per block the whole integer
// dot times d_w * d_a fused-added (dot_q4_0). Eight rows at once: lane r of
// a vector is row r, so the per-block scaling and accumulation of 8 outputs
// is one vector operation. For that, each block of the 8 rows is unpacked to
// levels 0..15 (one byte per weight) and transposed in groups of 4 bytes:
// vector k holds, in lane r, row r's weights 4k..4k+3. Then per token the 8
// groups are multiplied (dpbusd) with the token's 4 activations 4k..4k+3
// broadcast, which sums each row's whole block in its own lane (exact
// integers), and 8 * sum(y) is subtracted for the levels' offset of 8.

constexpr int kMaxTokQ4 = 16;  // tokens per Q4_0 tile (the unpacking is amortized over them)

inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// 8 x 8 int32 transpose: out[k] lane r = in[r] lane k.
inline void transpose_8x8(const __m256i in[8], __m256i out[8]) {
  __m256i t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_epi32(in[2 * i], in[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_epi32(in[2 * i], in[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h) {  // rows 4h..4h+3
    u[4 * h + 0] = _mm256_unpacklo_epi64(t[4 * h], t[4 * h + 2]);
    u[4 * h + 1] = _mm256_unpackhi_epi64(t[4 * h], t[4 * h + 2]);
    u[4 * h + 2] = _mm256_unpacklo_epi64(t[4 * h + 1], t[4 * h + 3]);
    u[4 * h + 3] = _mm256_unpackhi_epi64(t[4 * h + 1], t[4 * h + 3]);
  }
  for (int k = 0; k < 4; ++k) {
    out[k] = _mm256_permute2x128_si256(u[k], u[4 + k], 0x20);
    out[k + 4] = _mm256_permute2x128_si256(u[k], u[4 + k], 0x31);
  }
}

// A token's activation row prepared for the Q4_0 tiles: per block the scale
// as a float, then -8 * sum(y) (the levels' offset, subtracted from every
// row's dot), then the 32 bytes y unchanged.
inline size_t q4_0_prepared_bytes(int64_t n) { return static_cast<size_t>((n / 32 * 40 + 63) / 64 * 64); }

void prepare_q4_0(const uint8_t* a, int64_t n, uint8_t* out) {
  const int64_t nb = n / 32;
  const __m256i k8 = _mm256_set1_epi8(8);
  float* da = reinterpret_cast<float*>(out);
  int32_t* neg_offset = reinterpret_cast<int32_t*>(out + 4 * nb);
  uint8_t* y = out + 8 * nb;
  for (int64_t b = 0; b < nb; ++b) {
    da[b] = load_f16(a + 34 * b);
    const __m256i q = load256(a + 34 * b + 2);
    neg_offset[b] = -hsum_i32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), k8, q));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + 32 * b), q);
  }
}

template <int T>
void q4_0_tile(const Tile& g) {
  constexpr int R = 8;
  const __m128i low4 = _mm_set1_epi8(0x0F);
  const int64_t nb = g.n / 32;
  __m256 acc[T];
  #pragma GCC unroll 16
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  Prefetcher pf(g.next, g.next_bytes, nb);
  for (int64_t b = 0; b < nb; ++b) {
    pf.step();
    alignas(16) uint16_t dh[R];
    __m256i level[R], group[8];
    #pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const uint8_t* p = g.w[r] + 18 * b;
      std::memcpy(&dh[r], p, 2);
      const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2));
      level[r] = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(q, low4)),
                                         _mm_and_si128(_mm_srli_epi16(q, 4), low4), 1);
    }
    transpose_8x8(level, group);
    const __m256 dw = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(dh)));
    #pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      const float* da = reinterpret_cast<const float*>(g.a[t]);
      const int32_t* neg_offset = reinterpret_cast<const int32_t*>(g.a[t] + 4 * nb);
      const int32_t* y4 = reinterpret_cast<const int32_t*>(g.a[t] + 8 * nb + 32 * b);  // 4 activations per int32
      // Two partial sums; the first starts from -8 * sum(y).
      __m256i s0 = _mm256_set1_epi32(neg_offset[b]), s1 = _mm256_setzero_si256();
      #pragma GCC unroll 16
      for (int k = 0; k < 8; k += 2) {
        s0 = _mm256_dpbusd_epi32(s0, group[k], _mm256_set1_epi32(y4[k]));
        s1 = _mm256_dpbusd_epi32(s1, group[k + 1], _mm256_set1_epi32(y4[k + 1]));
      }
      const __m256i dot = _mm256_add_epi32(s0, s1);
      const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(da[b]));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), d, acc[t]);
    }
  }
  const __mmask8 rows = static_cast<__mmask8>((1u << g.n_rows) - 1u);
  #pragma GCC unroll 16
  for (int t = 0; t < T; ++t) _mm256_mask_storeu_ps(g.y + t * g.ldy, rows, acc[t]);
}

void q4_0_8(const Tile& g) {
  switch (g.n_tok) {
    case 1: return q4_0_tile<1>(g);
    case 2: return q4_0_tile<2>(g);
    case 3: return q4_0_tile<3>(g);
    case 4: return q4_0_tile<4>(g);
    case 5: return q4_0_tile<5>(g);
    case 6: return q4_0_tile<6>(g);
    case 7: return q4_0_tile<7>(g);
    case 8: return q4_0_tile<8>(g);
    case 9: return q4_0_tile<9>(g);
    case 10: return q4_0_tile<10>(g);
    case 11: return q4_0_tile<11>(g);
    case 12: return q4_0_tile<12>(g);
    case 13: return q4_0_tile<13>(g);
    case 14: return q4_0_tile<14>(g);
    case 15: return q4_0_tile<15>(g);
    default: return q4_0_tile<kMaxTokQ4>(g);
  }
}

// ---------------------------------------------------------------------------
// Q4_K / Q6_K x Q8_K (dot_q4_k_avx2, dot_q6_k_avx2): per output and
// super-block 8 int32 lanes (element e in lane (e % 32) / 4, times its
// sub-block scale), scaled by d_w * d_a and fused-added; Q4_K also 4 lanes of
// mins. Each row's super-block is unpacked once per tile into levels (one
// byte per weight, in element order) and int16 scales (one per byte pair),
// then per token: maddubs (levels x activations, in int16 pairs) and dpwssd
// (times the scales, into int32 lanes of 4 elements). A 64-byte vector holds
// two 32-element chunks, so its upper 8 lanes are added onto the lower 8.

struct BlockQ8K {
  float d;
  int8_t qs[256];
  int16_t bsums[16];
};

struct KSuper {  // one unpacked super-block of one row
  __m512i level[4];
  __m512i scale[4];
  __m256i mins;  // Q4_K: min_k at int16 positions 2k and 2k + 1
  float d, dmin;
};

inline __m512i join(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }

void unpack_q4_k(const uint8_t* x, KSuper& k) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  k.d = load_f16(x);
  k.dmin = load_f16(x + 2);
  const uint8_t* sc = x + 4;
  int scale[8], min[8];
  for (int j = 0; j < 4; ++j) {
    scale[j] = sc[j] & 63;
    min[j] = sc[j + 4] & 63;
  }
  for (int j = 4; j < 8; ++j) {
    scale[j] = (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4);
    min[j] = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
  }
  const uint8_t* qs = x + 16;
  for (int j = 0; j < 4; ++j) {  // elements 64j..64j+31: low nibbles, 64j+32..64j+63: high nibbles
    const __m256i q = load256(qs + 32 * j);
    k.level[j] = join(_mm256_and_si256(q, low4), _mm256_and_si256(_mm256_srli_epi16(q, 4), low4));
    k.scale[j] = join(_mm256_set1_epi16(static_cast<int16_t>(scale[2 * j])),
                      _mm256_set1_epi16(static_cast<int16_t>(scale[2 * j + 1])));
  }
  k.mins = _mm256_setr_epi16(min[0], min[0], min[1], min[1], min[2], min[2], min[3], min[3], min[4], min[4], min[5],
                             min[5], min[6], min[6], min[7], min[7]);
}

void unpack_q6_k(const uint8_t* x, KSuper& k) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i two_bits = _mm256_set1_epi8(0x03);
  // int16 position i of a 64-element vector has scale number i / 8.
  const __m512i spread = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0,
                                          0, 0, 0, 0, 0, 0);
  k.d = load_f16(x + 208);
  k.dmin = 0.0f;
  k.mins = _mm256_setzero_si256();
  const uint8_t* sc = x + 192;
  for (int h = 0; h < 2; ++h) {
    const uint8_t* L = x + 64 * h;
    const uint8_t* H = x + 128 + 32 * h;
    const __m256i l0 = load256(L), l1 = load256(L + 32), hb = load256(H);
    const __m256i lv0 = _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_slli_epi16(_mm256_and_si256(hb, two_bits), 4));
    const __m256i lv1 = _mm256_or_si256(_mm256_and_si256(l1, low4),
                                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), two_bits), 4));
    const __m256i lv2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), two_bits), 4));
    const __m256i lv3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), two_bits), 4));
    k.level[2 * h] = join(lv0, lv1);
    k.level[2 * h + 1] = join(lv2, lv3);
    for (int c = 0; c < 2; ++c) {  // scales 16h + 4c .. +3 (16 elements each) for vector 2h + c
      int32_t four;
      std::memcpy(&four, sc + 8 * h + 4 * c, 4);
      const __m128i s16 = _mm_cvtepi8_epi16(_mm_cvtsi32_si128(four));
      k.scale[2 * h + c] = _mm512_permutexvar_epi16(spread, _mm512_castsi128_si512(s16));
    }
  }
}

template <bool kQ4K>
void k_tile(const Tile& g) {
  constexpr int R = 4;
  const int n_tok = g.n_tok;
  const __m512i k32 = _mm512_set1_epi8(32);
  __m256 acc[R][kMaxTokK];
  __m128 acc_m[R][kMaxTokK];
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < n_tok; ++t) {
      acc[r][t] = _mm256_setzero_ps();
      acc_m[r][t] = _mm_setzero_ps();
    }
  KSuper ks[R];
  Prefetcher pf(g.next, g.next_bytes, g.n / 256);
  for (int64_t i = 0; i < g.n / 256; ++i) {
    pf.step();
    #pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      if (kQ4K)
        unpack_q4_k(g.w[r] + 144 * i, ks[r]);
      else
        unpack_q6_k(g.w[r] + 210 * i, ks[r]);
    }
    for (int t = 0; t < n_tok; ++t) {
      const BlockQ8K& y = reinterpret_cast<const BlockQ8K*>(g.a[t])[i];
      __m512i yq[4], offset[4];
      for (int j = 0; j < 4; ++j) {
        yq[j] = _mm512_loadu_si512(y.qs + 64 * j);
        if (!kQ4K) offset[j] = _mm512_maddubs_epi16(k32, yq[j]);  // Q6_K levels are stored + 32
      }
      const __m256i bsums = load256(y.bsums);
      #pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const KSuper& k = ks[r];
        __m512i lanes = _mm512_setzero_si512();
        for (int j = 0; j < 4; ++j) {
          __m512i p = _mm512_maddubs_epi16(k.level[j], yq[j]);
          if (!kQ4K) p = _mm512_sub_epi16(p, offset[j]);
          lanes = _mm512_dpwssd_epi32(lanes, p, k.scale[j]);
        }
        const __m256i lanes8 = _mm256_add_epi32(_mm512_extracti64x4_epi64(lanes, 1), _mm512_castsi512_si256(lanes));
        acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(y.d * k.d), _mm256_cvtepi32_ps(lanes8), acc[r][t]);
        if (kQ4K) {
          // min_k * (bsums[2k] + bsums[2k+1]), then pairs: prod[m] for m < 4.
          const __m256i mb = _mm256_madd_epi16(bsums, k.mins);
          const __m128i prod = _mm_hadd_epi32(_mm256_castsi256_si128(mb), _mm256_extracti128_si256(mb, 1));
          acc_m[r][t] = _mm_fmadd_ps(_mm_set1_ps(-y.d * k.dmin), _mm_cvtepi32_ps(prod), acc_m[r][t]);
        }
      }
    }
  }
  for (int r = 0; r < g.n_rows; ++r)
    for (int t = 0; t < n_tok; ++t) {
      float v = hsum8(acc[r][t]);
      if (kQ4K) {
        alignas(16) float m[4];
        _mm_store_ps(m, acc_m[r][t]);
        const float m0 = m[0] + m[2], m1 = m[1] + m[3];
        v = v + (m0 + m1);
      }
      g.y[t * g.ldy + r] = v;
    }
}

void q4_k_tile(const Tile& g) { k_tile<true>(g); }
void q6_k_tile(const Tile& g) { k_tile<false>(g); }

// ---------------------------------------------------------------------------
// The tiling: token blocks of kTokBlock, within them row tiles of `rows`,
// within those token tiles of up to `tile_tok` tokens.

using TileFn = void (*)(const Tile&);

// The register-blocked kernels, by the tile's token count.
#define HAI_BY_TOKENS(name, ...)                  \
  void name(const Tile& g) {                      \
    switch (g.n_tok) {                            \
      case 1: return __VA_ARGS__<1>(g);           \
      case 2: return __VA_ARGS__<2>(g);           \
      case 3: return __VA_ARGS__<3>(g);           \
      default: return __VA_ARGS__<kMaxTok>(g);    \
    }                                             \
  }
template <int T>
void f16_tile_1(const Tile& g) {
  f16_tile<1, T>(g);
}
template <int T>
void f16_tile_4(const Tile& g) {
  f16_tile<4, T>(g);
}
HAI_BY_TOKENS(f16_1, f16_tile_1)
HAI_BY_TOKENS(f16_4, f16_tile_4)
#undef HAI_BY_TOKENS

template <int R, bool kQ5>
void q8_0_rows(const Tile& g) {
  switch (g.n_tok) {
    case 1: return q8_0_rows_tile<R, 1, kQ5>(g);
    case 2: return q8_0_rows_tile<R, 2, kQ5>(g);
    case 3: return q8_0_rows_tile<R, 3, kQ5>(g);
    case 4: return q8_0_rows_tile<R, 4, kQ5>(g);
    case 5: return q8_0_rows_tile<R, 5, kQ5>(g);
    case 6: return q8_0_rows_tile<R, 6, kQ5>(g);
    case 7: return q8_0_rows_tile<R, 7, kQ5>(g);
    default: return q8_0_rows_tile<R, kMaxTokQ8, kQ5>(g);
  }
}

// prepare: if set, each token block's activation rows are first rewritten
// into a buffer (a_stride `prepared_stride`) and the tiles read those.
using PrepareFn = void (*)(const uint8_t* a, int64_t n, uint8_t* out);
void run_tiles(const GemmArgs& g, int rows, int tile_tok, TileFn fn, PrepareFn prepare = nullptr,
               size_t prepared_stride = 0) {
  const uint8_t* w = static_cast<const uint8_t*>(g.w);
  thread_local std::vector<uint8_t> prepared;
  if (prepare) {
    const size_t need = prepared_stride * static_cast<size_t>(std::min(g.n_tok, kTokBlock));
    if (prepared.size() < need) prepared.resize(need);  // (only grows: no zero-filling on every call)
  }
  for (int64_t tb = 0; tb < g.n_tok; tb += kTokBlock) {
    const int64_t tb_end = std::min(g.n_tok, tb + kTokBlock);
    // Token t's row at a + a_stride * (t - a_first).
    const uint8_t* a = static_cast<const uint8_t*>(g.a);
    size_t a_stride = g.a_stride;
    int64_t a_first = 0;
    if (prepare) {
      for (int64_t t = tb; t < tb_end; ++t) prepare(a + g.a_stride * t, g.n, prepared.data() + prepared_stride * (t - tb));
      a = prepared.data();
      a_stride = prepared_stride;
      a_first = tb;
    }
    for (int64_t r0 = 0; r0 < g.n_rows; r0 += rows) {
      Tile tile;
      tile.n = g.n;
      tile.n_rows = static_cast<int>(std::min<int64_t>(rows, g.n_rows - r0));
      for (int r = 0; r < rows; ++r) tile.w[r] = w + g.w_stride * (r0 + std::min(r, tile.n_rows - 1));
      tile.ldy = g.ldy;
      // The next row tile, prefetched during this one's first token tile
      // (a single row is one stream, which the hardware follows well).
      const int64_t next_rows = std::min<int64_t>(rows, g.n_rows - (r0 + rows));
      for (int64_t t0 = tb; t0 < tb_end; t0 += tile_tok) {
        const int nt = static_cast<int>(std::min<int64_t>(tile_tok, tb_end - t0));
        tile.next = rows > 1 && t0 == tb && next_rows > 0 ? w + g.w_stride * (r0 + rows) : nullptr;
        tile.next_bytes = tile.next ? g.w_stride * next_rows : 0;
        for (int t = 0; t < nt; ++t) tile.a[t] = a + a_stride * (t0 + t - a_first);
        tile.n_tok = nt;
        tile.y = g.y + t0 * g.ldy + r0;
        fn(tile);
      }
    }
  }
}

// Q8_0 / Q5_0: the activations prepared once per token block (scales as
// floats, bytes + 128); up to 5 tokens tiles of 4 rows, for more 3 rows x 8
// tokens (24 accumulators, all in registers).
template <bool kQ5>
void q8_0_gemm(const GemmArgs& g) {
  const bool few = g.n_tok <= 5;
  run_tiles(g, few ? 4 : 3, kMaxTokQ8, few ? q8_0_rows<4, kQ5> : q8_0_rows<3, kQ5>, prepare_q8_0,
            prepared_row_bytes(g.n / 32));
}

}  // namespace

void gemm_avx512(GgmlType type, const GemmArgs& g) {
  if (g.n_tok == 1 && gemv_avx512(type, g)) return;
  switch (type) {
    // Up to kFewTokens tokens (decode, small batches) memory is the limit:
    // one row per tile, so that each row is one sequential stream; for more,
    // tiles of 4 rows, so that each activation block loaded serves 4 rows.
    case GgmlType::F16:
      return g.n_tok == 1 ? run_tiles(g, 1, kMaxTok, f16_1) : run_tiles(g, 4, kMaxTok, f16_4);
    case GgmlType::Q8_0: return q8_0_gemm<false>(g);
    case GgmlType::Q5_0: return q8_0_gemm<true>(g);
    case GgmlType::Q4_0: return run_tiles(g, 8, kMaxTokQ4, q4_0_8, prepare_q4_0, q4_0_prepared_bytes(g.n));
    case GgmlType::Q4_K: return run_tiles(g, 4, kMaxTokK, q4_k_tile);
    case GgmlType::Q6_K: return run_tiles(g, 4, kMaxTokK, q6_k_tile);
    default: return gemm_portable(type, g);
  }
}

}  // namespace hai::model::ggml_order
