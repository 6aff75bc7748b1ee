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
// A Q4_0 block is 18 bytes: the F16 scale d, then qs[16], byte j holding
// the levels (weight + 8, 0..15) of weights j (low nibble) and j + 16 (high
// nibble). The kernel takes eight rows and two blocks (a "pair") per step
// and leaves the weights in that layout; the activations are laid out to
// match it instead, once per activation row and thread (Q4Pair):
//  - one masked 36-byte load per row brings the pair (d, qs, d, qs);
//  - a word permutation of two rows' loads packs their four qs[16] into one
//    vector, [row a block b, row a' b, a b+1, a' b+1]; its low nibbles
//    (& 0x0F) and high nibbles (16-bit shift by 4, & 0x0F) are then the
//    levels of weights 0..15 and 16..31, with no further moves;
//  - two dpbusd with the activations in the same order (y[0..15] under the
//    low nibbles, y[16..31] under the high ones), started from -8 times the
//    lane's activations, leave per int32 lane the sum of (level - 8) * y
//    over 8 weights: 4 lanes per (row, block), 4 vectors per step;
//  - the 4 lanes of each (row, block) are added by two rounds of packing
//    two vectors to int16 and multiplying-adding neighbours by one
//    (vpmaddwd). Every packed value fits int16: a lane is 8 products of
//    (level - 8) in [-8, 7] and y in [-128, 127], so within [-8128, 8192],
//    and the sum of two within [-16256, 16384]; vpmaddwd's sums are int32.
//    Out come the 16 integer block sums s: block b in the low half, block
//    b + 1 in the high half, the rows in the order 0 2 4 6 1 3 5 7;
//  - the scales d_w, interleaved from the loaded rows into the same order
//    (in-lane unpacks), converted and multiplied by d_a; then block b's
//    fused multiply-add into the 8 rows' accumulators, then block b+1's.
// Measured against the previous kernel (8 rows x 2 blocks too, but a word
// permutation and a shift per row to spread its nibbles into element order,
// a reduction of 8 lanes per (row, block), and the scales gathered by four
// 512-bit word permutations), side by side on the Zen 4 test machine:
// 1.49x as fast with the rows in cache (1.29x for the long rows of the down
// matrix), 1.51x (1 thread) and 1.31x (2 threads) streaming 64 MiB
// (bench_kernels GgmlOrder/Decode*), 1.26x tokens/s for the whole Q4_0
// model on one thread and 1.08x on two (hai bench; two threads are bound
// by the memory's bandwidth: the kernel now reads its bytes at 0.91x the
// rate of the Q8_0 kernel on the output matrix, up from 0.73x).
//
// Also measured, and left out: the byte permutation (vpermt2b, AVX512-VBMI)
// and the one-instruction nibble shift (vgf2p8affineqb, GFNI) gained only
// 2%, not worth a CPU feature beyond AVX-512 BW/VNNI; unmasked 64-byte
// loads (running 28 bytes into the next pair) were 3% faster in cache but
// slower when streaming; the scales by 16 scalar loads, and prefetching two
// groups ahead, were slower; prefetching the first group at the start of a
// call, or (long rows) the next group into L2, gained nothing in the model.

// An activation row laid out for the Q4_0 kernel, per pair of blocks b,
// b+1 (zeros for a missing b+1).
struct alignas(64) Q4Pair {
  __m512i lo;    // y_b[0..15], y_b[0..15], y_b+1[0..15], y_b+1[0..15]
  __m512i hi;    // the same with y[16..31]
  __m512i corr;  // per int32 lane: -8 * (its 4 lo + 4 hi activations)
  __m512 da;     // d_a of b in lanes 0-7, of b+1 in lanes 8-15
};

void prepare_q4_pairs(const uint8_t* a, int64_t nb, std::vector<Q4Pair>& out) {
  const int64_t np = (nb + 1) / 2;
  out.resize(static_cast<size_t>(np));
  const __m512i k8 = _mm512_set1_epi8(8);
  for (int64_t p = 0; p < np; ++p) {
    __m128i lo[2] = {_mm_setzero_si128(), _mm_setzero_si128()}, hi[2] = {lo[0], lo[0]};
    float d[2] = {0.0f, 0.0f};
    for (int k = 0; k < 2 && 2 * p + k < nb; ++k) {
      const uint8_t* blk = a + 34 * (2 * p + k);
      lo[k] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
      hi[k] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 18));
      d[k] = load_f16(blk);
    }
    auto layout = [](__m128i b0, __m128i b1) {
      const __m512i v = _mm512_inserti32x4(_mm512_castsi128_si512(b0), b0, 1);
      return _mm512_inserti32x4(_mm512_inserti32x4(v, b1, 2), b1, 3);
    };
    Q4Pair& q = out[static_cast<size_t>(p)];
    q.lo = layout(lo[0], lo[1]);
    q.hi = layout(hi[0], hi[1]);
    const __m512i sum8 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), k8, q.lo), k8, q.hi);
    q.corr = _mm512_sub_epi32(_mm512_setzero_si512(), sum8);
    q.da = _mm512_insertf32x8(_mm512_set1_ps(d[0]), _mm256_set1_ps(d[1]), 1);
  }
}

void gemv_q4_0(const GemmArgs& g) {
  constexpr int R = 8;
  const int64_t nb = g.n / 32, np = (nb + 1) / 2;
  // The threads may split one product into many calls (parts of the rows):
  // the activations are prepared once per thread and product, and again
  // only when they differ from the last ones prepared (a compare of 34 bytes
  // per block is cheaper than preparing, 1.03x on the down matrix in parts
  // of 64 KB).
  thread_local std::vector<Q4Pair> act;
  thread_local std::vector<uint8_t> act_raw;  // what `act` was prepared from
  const uint8_t* a_row = static_cast<const uint8_t*>(g.a);
  const size_t a_bytes = static_cast<size_t>(34 * nb);
  if (act_raw.size() != a_bytes || std::memcmp(act_raw.data(), a_row, a_bytes) != 0) {
    prepare_q4_pairs(a_row, nb, act);
    act_raw.assign(a_row, a_row + a_bytes);
  }
  const Q4Pair* pairs = act.data();

  // Words of a loaded pair: d_b = 0, qs_b = 1..8, d_b+1 = 9, qs_b+1 = 10..17;
  // the second source's words are numbered from 32. qs of rows a, a':
  // [a qs_b, a' qs_b, a qs_b+1, a' qs_b+1].
  alignas(64) int16_t qs_words[32];
  for (int k = 0; k < 8; ++k) {
    qs_words[k] = static_cast<int16_t>(1 + k);
    qs_words[8 + k] = static_cast<int16_t>(32 + 1 + k);
    qs_words[16 + k] = static_cast<int16_t>(10 + k);
    qs_words[24 + k] = static_cast<int16_t>(32 + 10 + k);
  }
  const __m512i qs_index = _mm512_load_si512(qs_words);
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const __m512i ones = _mm512_set1_epi16(1);
  const __mmask64 pair_bytes = (__mmask64(1) << 36) - 1, single_bytes = (__mmask64(1) << 18) - 1;

  for_row_groups<R>(g, [&](const Rows<R>& rows, int64_t r0) {
    __m256 acc = _mm256_setzero_ps();  // rows 0 2 4 6 1 3 5 7
    // Short rows: two pairs per loop turn (1.07x as fast in cache, up to
    // 1.15x when streaming: more independent work in flight), and the
    // prefetcher stepped once per turn. Long rows (the down matrix): one
    // pair per turn measured 1.02-1.03x faster when streaming.
    const bool two_pairs = g.w_stride < RowPrefetcher<R>::kLongRow;
    RowPrefetcher<R> pf(rows, g.w_stride, two_pairs ? (np + 1) / 2 : np, two_pairs ? 72 : 36);
    // Pair p's 16 integer block sums s and scales d = d_w * d_a.
    auto pair_sums = [&](int64_t p, __m512& s, __m512& d) {
      const bool two = 2 * p + 1 < nb;
      const Q4Pair& a = pairs[p];
      __m512i v[R];
      for (int r = 0; r < R; ++r) v[r] = _mm512_maskz_loadu_epi8(two ? pair_bytes : single_bytes, rows.w[r] + 36 * p);
      __m512i dot[4];  // rows 2j, 2j+1
      for (int j = 0; j < 4; ++j) {
        const __m512i q = _mm512_permutex2var_epi16(v[2 * j], qs_index, v[2 * j + 1]);
        const __m512i lo = _mm512_and_si512(q, low4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), low4);
        dot[j] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a.corr, lo, a.lo), hi, a.hi);
      }
      const __m512i e0 = _mm512_madd_epi16(_mm512_packs_epi32(dot[0], dot[1]), ones);
      const __m512i e1 = _mm512_madd_epi16(_mm512_packs_epi32(dot[2], dot[3]), ones);
      s = _mm512_cvtepi32_ps(_mm512_madd_epi16(_mm512_packs_epi32(e0, e1), ones));
      // The scales: d_b is word 0 of a row's first 16 bytes, d_b+1 word 1
      // of its next 16 (bytes 18, 19). Three rounds of interleaving within
      // 128-bit lanes (the words of rows 0 and 2, 4 and 6, 1 and 3, 5 and 7;
      // then those 32-bit pairs; then the low 64 bits of lane 0 and the high
      // 64 bits of lane 1 of the even and the odd rows) put them in the
      // order of s: [d_b of rows 0 2 4 6 1 3 5 7, d_b+1 of the same].
      // (1.07x as fast in cache as four word permutations across lanes.)
      auto low_half = [](__m512i x) { return _mm512_castsi512_si256(x); };
      const __m256i u02 = _mm256_unpacklo_epi16(low_half(v[0]), low_half(v[2]));
      const __m256i u46 = _mm256_unpacklo_epi16(low_half(v[4]), low_half(v[6]));
      const __m256i u13 = _mm256_unpacklo_epi16(low_half(v[1]), low_half(v[3]));
      const __m256i u57 = _mm256_unpacklo_epi16(low_half(v[5]), low_half(v[7]));
      const __m256d even = _mm256_castsi256_pd(_mm256_unpacklo_epi32(u02, u46));
      const __m256d odd = _mm256_castsi256_pd(_mm256_unpacklo_epi32(u13, u57));
      const __m256i dh = _mm256_castpd_si256(_mm256_shuffle_pd(even, odd, 0b1100));
      d = _mm512_mul_ps(_mm512_cvtph_ps(dh), a.da);
    };
    // acc = fma(s, d, acc) for block b, then for b + 1 (when there is one).
    auto add_pair = [&](__m512 s, __m512 d, bool two) {
      acc = _mm256_fmadd_ps(_mm512_castps512_ps256(s), _mm512_castps512_ps256(d), acc);  // block b
      if (two) acc = _mm256_fmadd_ps(_mm512_extractf32x8_ps(s, 1), _mm512_extractf32x8_ps(d, 1), acc);
    };
    int64_t p = 0;
    if (two_pairs) {
      for (; p + 1 < np; p += 2) {
        pf.step();
        __m512 s0, d0, s1, d1;
        pair_sums(p, s0, d0);
        pair_sums(p + 1, s1, d1);
        add_pair(s0, d0, true);
        add_pair(s1, d1, 2 * p + 3 < nb);
      }
    }
    for (; p < np; ++p) {
      pf.step();
      __m512 s0, d0;
      pair_sums(p, s0, d0);
      add_pair(s0, d0, 2 * p + 1 < nb);
    }
    alignas(32) float out[8];
    _mm256_store_ps(out, acc);
    for (int r = 0; r < rows.n; ++r) g.y[r0 + r] = out[(r % 2) * 4 + r / 2];
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
