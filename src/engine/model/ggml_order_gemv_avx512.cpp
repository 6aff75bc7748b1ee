// AVX-512 single-token matrix products (decode) in the reference's summation
// order (compiled with AVX-512 flags; called only after have_avx512()).
//
// Decode reads every weight once per token, so these kernels are about
// streaming the rows at the memory's speed with as few instructions per byte
// as possible. Two things keep them there:
//  - several rows at once: each output's sum is one chain of dependent fused
//    multiply-adds (4 cycles each), so one row alone waits on its chain;
//    R rows side by side are R independent chains, and whatever depends on
//    the activation only (its block scale, its correction terms) is loaded
//    once for the R rows;
//  - the rows are prefetched in software (RowPrefetcher): the hardware
//    prefetcher follows several interleaved rows poorly (without this, half
//    the speed).
//
// Kernels here: Q8_0 and Q5_0 (4 rows), Q4_0 (8 rows x 2 blocks). F16, Q4_K
// and Q6_K use other paths that measured faster for one token (see
// gemv_avx512 at the end). The tests: tests/model/test_gemv*.cpp.
//
// Each output stays bit-identical to the per-element kernel of its type
// (ggml_order.h): the interleaving changes which products are computed side
// by side, never the order in which one output's terms are added, and the
// integer parts are exact whatever their grouping.
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

// A group of R consecutive rows of the matrix, the last one repeated when
// fewer than R are left (its results are computed and dropped).
template <int R>
struct Rows {
  const uint8_t* w[R];
  int n = 0;                      // rows to store
  const uint8_t* next = nullptr;  // the next group's first row (or null)
  size_t next_bytes = 0;
};

// Walks the matrix in groups of R rows and calls fn(rows, r0) for each.
template <int R, typename Fn>
void for_row_groups(const GemmArgs& g, Fn&& fn) {
  const uint8_t* w = static_cast<const uint8_t*>(g.w);
  for (int64_t r0 = 0; r0 < g.n_rows; r0 += R) {
    Rows<R> rows;
    rows.n = static_cast<int>(std::min<int64_t>(R, g.n_rows - r0));
    for (int r = 0; r < R; ++r) rows.w[r] = w + g.w_stride * (r0 + std::min(r, rows.n - 1));
    const int64_t next_n = std::min<int64_t>(R, g.n_rows - (r0 + R));
    if (next_n > 0) {
      rows.next = w + g.w_stride * (r0 + R);
      rows.next_bytes = g.w_stride * static_cast<size_t>(next_n);
    }
    fn(rows, r0);
  }
}

// Prefetches the rows of a group while a kernel walks them, one call of
// step() per block step (step_bytes of every row). Two ways, as measured:
//  - short rows (most matrices: 896 values): the whole next group, in
//    equal shares at every step, so it is in cache when its turn comes;
//  - long rows (the feed-forward's down matrix: 4864 values): each row's
//    own stream kDistance bytes ahead of the kernel, running on into the
//    same row of the next group. Measured 1.4-1.7x faster there than the
//    whole next group (which is then some 20 KB ahead: probably too far to
//    stay in the L1 cache), and 0.7x as fast on short rows.
template <int R>
class RowPrefetcher {
 public:
  static constexpr int64_t kDistance = 512;
  static constexpr size_t kLongRow = 4 * kDistance;

  RowPrefetcher(const Rows<R>& rows, size_t stride, int64_t steps, int64_t step_bytes)
      : in_row_(stride >= kLongRow), step_bytes_(step_bytes) {
    if (in_row_) {
      for (int r = 0; r < R; ++r) {
        p_[r] = reinterpret_cast<const char*>(rows.w[r]) + kDistance;
        end_[r] = reinterpret_cast<const char*>(rows.w[r]) + stride;
        next_[r] = rows.next ? reinterpret_cast<const char*>(rows.next) + stride * r : nullptr;
      }
    } else if (rows.next != nullptr && steps > 0) {
      group_p_ = reinterpret_cast<const char*>(rows.next);
      group_end_ = group_p_ + rows.next_bytes;
      per_step_ = (static_cast<int64_t>(rows.next_bytes) + steps - 1) / steps;
    }
  }

  void step() {
    if (in_row_) {
      for (int r = 0; r < R; ++r) {
        const char* p = p_[r] < end_[r] ? p_[r] : next_[r] ? next_[r] + (p_[r] - end_[r]) : nullptr;
        if (p) _mm_prefetch(p, _MM_HINT_T0);
        p_[r] += step_bytes_;
      }
    } else {
      for (int64_t k = 0; k < per_step_ && group_p_ < group_end_; k += 64, group_p_ += 64)
        _mm_prefetch(group_p_, _MM_HINT_T0);
    }
  }

 private:
  bool in_row_;
  int64_t step_bytes_;
  const char* p_[R] = {};
  const char* end_[R] = {};
  const char* next_[R] = {};
  const char* group_p_ = nullptr;
  const char* group_end_ = nullptr;
  int64_t per_step_ = 0;
};

// ---------------------------------------------------------------------------
// Q8_0 (and Q5_0) x Q8_0 (dot_q8_0; Q5_0: hai::vec_dot's x86 kernel): per
// output 8 int32 lanes of 4-byte integer dots per block, scaled by d_w * d_a
// and fused-added block after block; then hsum8.
//
// The integer dot as unsigned x signed bytes (dpbusd) of u = w + c and y:
// u . y - c * sum(y), lane by lane; the correction depends on the activation
// only and is computed once per block for all rows. Q8_0: c = 128 and
// u = w xor 0x80. Q5_0 (blocks d, qh[4], qs[16]; w = level - 16 with
// level = 4 low bits | fifth bit << 4): c = 16 and u = level, unpacked from
// one 16-byte load broadcast to both halves, shifted by 0 / 4 and masked,
// plus 16 where the bit of qh is set.

// Rows per group: about 4 KB of rows in flight (4 Q8_0 rows of 896 values,
// 8 Q5_0 rows) measured best; more streams than that slowed the memory.
template <bool kQ5>
constexpr int kRowsQ8 = kQ5 ? 8 : 4;

struct alignas(32) V256 {
  __m256i v;
};

template <bool kQ5>
inline __m256i unsigned_weights(const uint8_t* block) {
  if (!kQ5) return _mm256_xor_si256(load256(block + 2), _mm256_set1_epi8(static_cast<char>(0x80)));
  uint32_t qh;
  std::memcpy(&qh, block + 2, 4);
  const __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 6)));
  const __m256i shift = _mm256_setr_epi16(0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4);
  const __m256i level = _mm256_and_si256(_mm256_srlv_epi16(q, shift), _mm256_set1_epi8(0x0F));
  return _mm256_mask_add_epi8(level, static_cast<__mmask32>(qh), level, _mm256_set1_epi8(16));  // bit j: + 16
}

// d_w * d_a of R <= 8 rows (the F16 scale at byte `offset` of each row,
// converted, times d_a): lane r for row r.
template <int R>
inline __m256 row_scales(const Rows<R>& rows, int64_t offset, float d_a) {
  static_assert(R == 4 || R == 8);
  auto h = [&](int r) { return static_cast<int16_t>(load_u16(rows.w[r] + offset)); };
  __m128i dh;
  if constexpr (R == 4)
    dh = _mm_setr_epi16(h(0), h(1), h(2), h(3), 0, 0, 0, 0);
  else
    dh = _mm_setr_epi16(h(0), h(1), h(2), h(3), h(4), h(5), h(6), h(7));
  return _mm256_mul_ps(_mm256_cvtph_ps(dh), _mm256_set1_ps(d_a));
}

template <bool kQ5>
void gemv_q8_0(const GemmArgs& g) {
  constexpr int R = kRowsQ8<kQ5>;
  constexpr int kBlock = kQ5 ? 22 : 34;
  const int64_t nb = g.n / 32;
  const uint8_t* a = static_cast<const uint8_t*>(g.a);
  // Per activation block: -c * sum(y) in 8 lanes, and d_a.
  thread_local std::vector<V256> neg_corr_buf;
  thread_local std::vector<float> da_buf;
  neg_corr_buf.resize(static_cast<size_t>(nb));
  da_buf.resize(static_cast<size_t>(nb));
  V256* neg_corr = neg_corr_buf.data();
  float* da = da_buf.data();
  const __m256i c = _mm256_set1_epi8(static_cast<char>(kQ5 ? 16 : 0x80));
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i yq = load256(a + 34 * b + 2);
    neg_corr[b].v = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), c, yq));
    da[b] = load_f16(a + 34 * b);
  }
  for_row_groups<R>(g, [&](const Rows<R>& rows, int64_t r0) {
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    RowPrefetcher<R> pf(rows, g.w_stride, nb, kBlock);
    for (int64_t b = 0; b < nb; ++b) {
      pf.step();
      const __m256i yq = load256(a + 34 * b + 2);
      const __m256i corr = neg_corr[b].v;
      // d_w * d_a for the R rows at once: the float products of the
      // converted scales, lane r for row r.
      const __m256 d_all = row_scales<R>(rows, kBlock * b, da[b]);
      for (int r = 0; r < R; ++r) {
        const uint8_t* p = rows.w[r] + kBlock * b;
        const __m256i dot = _mm256_dpbusd_epi32(corr, unsigned_weights<kQ5>(p), yq);
        const __m256 d = _mm256_permutexvar_ps(_mm256_set1_epi32(r), d_all);
        acc[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), acc[r]);
      }
    }
    for (int r = 0; r < rows.n; ++r) g.y[r0 + r] = hsum8(acc[r]);
  });
}

// ---------------------------------------------------------------------------
// Q4_0 x Q8_0 (dot_q4_0): per output one float accumulator; per block the
// whole 32-weight integer dot s, then acc = fma(float(s), d_w * d_a, acc).
//
// Eight rows and two blocks at a time, in 512-bit vectors:
//  - one masked load per row brings both blocks (d, qs[16], d, qs[16]: 36
//    bytes); a word permutation lays them out as qs_b, qs_b, qs_b+1, qs_b+1,
//    and a per-quarter shift (0, 4, 0, 4) with a mask leaves the levels
//    0..15 (weight + 8) of the two blocks' 64 weights in element order;
//  - dpbusd with the two activation blocks (stored contiguously once per
//    call) gives per row 16 int32 lanes, 8 per block; a transposing
//    reduction of the 8 rows' vectors adds them up to one vector holding
//    [rows 0-3 of block b, rows 0-3 of b+1, rows 4-7 of b, rows 4-7 of b+1];
//  - minus 8 * sum(y) (the levels' offset, per activation block), converted,
//    times d_w * d_a (the 16 scales collected from the loaded vectors), and
//    fused-added into the accumulators of rows 0-3 and 4-7: block b first,
//    then block b+1.

struct alignas(64) V512 {
  __m512i v;
};

// The activations of one call, prepared for the Q4_0 kernel.
struct Q4Act {
  std::vector<V512> y;       // per block pair: the 64 int8 activations
  std::vector<V512> offset;  // per pair: 8 * sum(y) of [b x4, b+1 x4, b x4, b+1 x4]
  std::vector<V512> da;      // per pair: d_a, same layout (floats)
};

// Sum of the eight int32 lanes (exact).
inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

void prepare_q4_act(const uint8_t* a, int64_t nb, Q4Act& act) {
  const int64_t np = (nb + 1) / 2;
  act.y.resize(static_cast<size_t>(np));
  act.offset.resize(static_cast<size_t>(np));
  act.da.resize(static_cast<size_t>(np));
  const __m256i k8 = _mm256_set1_epi8(8);
  for (int64_t p = 0; p < np; ++p) {
    __m256i y[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
    int32_t off[2] = {0, 0};
    float d[2] = {0.0f, 0.0f};
    for (int k = 0; k < 2 && 2 * p + k < nb; ++k) {
      const uint8_t* blk = a + 34 * (2 * p + k);
      y[k] = load256(blk + 2);
      off[k] = hsum_i32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), k8, y[k]));  // 8 * sum(y)
      d[k] = load_f16(blk);
    }
    act.y[p].v = _mm512_inserti64x4(_mm512_castsi256_si512(y[0]), y[1], 1);
    act.offset[p].v = _mm512_setr_epi32(off[0], off[0], off[0], off[0], off[1], off[1], off[1], off[1], off[0], off[0],
                                        off[0], off[0], off[1], off[1], off[1], off[1]);
    act.da[p].v = _mm512_castps_si512(_mm512_setr_ps(d[0], d[0], d[0], d[0], d[1], d[1], d[1], d[1], d[0], d[0], d[0],
                                                     d[0], d[1], d[1], d[1], d[1]));
  }
}

void gemv_q4_0(const GemmArgs& g) {
  constexpr int R = 8;
  const int64_t nb = g.n / 32, np = (nb + 1) / 2;
  thread_local Q4Act act;
  prepare_q4_act(static_cast<const uint8_t*>(g.a), nb, act);
  const V512* act_y = act.y.data();
  const V512* act_offset = act.offset.data();
  const V512* act_da = act.da.data();

  // Words of a loaded pair: d_b = 0, qs_b = 1..8, d_b+1 = 9, qs_b+1 = 10..17.
  const __m512i spread = _mm512_set_epi16(17, 16, 15, 14, 13, 12, 11, 10, 17, 16, 15, 14, 13, 12, 11, 10,  //
                                          8, 7, 6, 5, 4, 3, 2, 1, 8, 7, 6, 5, 4, 3, 2, 1);
  const __m512i shift = _mm512_set_epi16(4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0,  //
                                         4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  // The scales d_b (word 0) and d_b+1 (word 9) of rows 2k, 2k+1 (the second
  // source's words are numbered from 32) to their places in the layout.
  auto scale_index = [](int pos) {  // pos: the place of row 2k's d_b
    alignas(64) int16_t idx[32] = {};
    idx[pos] = 0;
    idx[pos + 1] = 32;
    idx[pos + 4] = 9;
    idx[pos + 5] = 32 + 9;
    return _mm512_load_si512(idx);
  };
  const __m512i idx01 = scale_index(0), idx23 = scale_index(2), idx45 = scale_index(8), idx67 = scale_index(10);
  const __mmask64 pair_bytes = (__mmask64(1) << 36) - 1, single_bytes = (__mmask64(1) << 18) - 1;

  for_row_groups<R>(g, [&](const Rows<R>& rows, int64_t r0) {
    __m512 acc = _mm512_setzero_ps();  // rows 0-3 in quarter 0, rows 4-7 in quarter 2
    RowPrefetcher<R> pf(rows, g.w_stride, np, 36);
    for (int64_t p = 0; p < np; ++p) {
      pf.step();
      const bool two = 2 * p + 1 < nb;
      const __m512i y = act_y[p].v;
      __m512i v[R], dot[R];
      for (int r = 0; r < R; ++r) {
        v[r] = _mm512_maskz_loadu_epi8(two ? pair_bytes : single_bytes, rows.w[r] + 36 * p);
        const __m512i levels = _mm512_and_si512(_mm512_srlv_epi16(_mm512_permutexvar_epi16(spread, v[r]), shift), low4);
        dot[r] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), levels, y);
      }
      // Per row the sum of lanes 0-7 (block b) and of lanes 8-15 (b+1).
      // Every lane fits in int16 (|4 * 15 * 128| < 2^15), and so does the
      // sum of two and of four: pack pairs of rows to int16 and add
      // neighbours with a multiply by one (vpmaddwd), twice. Then f0 holds,
      // in quarter k, rows 0-3's sums of lanes 4k..4k+3, f1 rows 4-7's.
      const __m512i ones = _mm512_set1_epi16(1);
      __m512i e[4];
      for (int k = 0; k < 4; ++k) e[k] = _mm512_madd_epi16(_mm512_packs_epi32(dot[2 * k], dot[2 * k + 1]), ones);
      const __m512i f0 = _mm512_madd_epi16(_mm512_packs_epi32(e[0], e[1]), ones);
      const __m512i f1 = _mm512_madd_epi16(_mm512_packs_epi32(e[2], e[3]), ones);
      const __m512i sums = _mm512_add_epi32(_mm512_shuffle_i32x4(f0, f1, _MM_SHUFFLE(2, 0, 2, 0)),
                                            _mm512_shuffle_i32x4(f0, f1, _MM_SHUFFLE(3, 1, 3, 1)));
      const __m512 s = _mm512_cvtepi32_ps(_mm512_sub_epi32(sums, act_offset[p].v));
      // d_w of the 16 (row, block) in the same layout, times d_a.
      __m512i dh = _mm512_permutex2var_epi16(v[0], idx01, v[1]);
      dh = _mm512_mask_mov_epi16(dh, 0x00CC, _mm512_permutex2var_epi16(v[2], idx23, v[3]));
      dh = _mm512_mask_mov_epi16(dh, 0x3300, _mm512_permutex2var_epi16(v[4], idx45, v[5]));
      dh = _mm512_mask_mov_epi16(dh, 0xCC00, _mm512_permutex2var_epi16(v[6], idx67, v[7]));
      const __m512 d = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(dh)), _mm512_castsi512_ps(act_da[p].v));
      acc = _mm512_fmadd_ps(s, d, acc);  // block b: quarters 0, 2
      if (two) {
        acc = _mm512_shuffle_f32x4(acc, acc, _MM_SHUFFLE(2, 2, 0, 0));
        acc = _mm512_fmadd_ps(s, d, acc);  // block b+1: quarters 1, 3
        acc = _mm512_shuffle_f32x4(acc, acc, _MM_SHUFFLE(3, 3, 1, 1));
      }
    }
    alignas(64) float out[16];
    _mm512_store_ps(out, acc);
    for (int r = 0; r < rows.n; ++r) g.y[r0 + r] = out[r < 4 ? r : r + 4];
  });
}

}  // namespace

bool gemv_avx512(GgmlType type, const GemmArgs& g) {
  switch (type) {
    case GgmlType::Q8_0: gemv_q8_0<false>(g); return true;
    case GgmlType::Q5_0: gemv_q8_0<true>(g); return true;
    case GgmlType::Q4_0: gemv_q4_0(g); return true;
    // A single token cannot amortize the unpacking of a Q4_K tile (its
    // scales and mins are decoded one by one): the AVX2 kernel that decodes
    // the blocks on the fly is faster (2.2x in cache).
    case GgmlType::Q4_K: gemm_avx2(type, g); return true;
    // F16: the tiles of one row (gemm_avx512) are best. F16 is the one
    // type whose decode is bound by the memory even one row at a time, and
    // both interleaving rows (0.6x) and prefetching rows ahead in software
    // (0.9x) slowed the hardware's prefetch down.
    // Q6_K: the 4-row tiles (gemm_avx512) beat the AVX2 kernel (1.15x), and
    // a 4-row kernel decoding on the fly with RowPrefetcher (0.9x).
    default: return false;
  }
}

}  // namespace hai::model::ggml_order
