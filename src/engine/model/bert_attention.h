// The attention of one head over one text, for BertEncoder. Internal to
// bert*.cpp: the same source is compiled for the portable build (bert.cpp)
// and with AVX2 / AVX-512 flags (bert_avx2.cpp, bert_avx512.cpp), where the
// compiler vectorizes the loops wider. The loops never reorder a sum within
// one output value, but the AVX builds may contract a * b + c into an FMA,
// so their results can differ from the portable build's in the last bits.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace hai::model {

// One (text, head): rows i, j < len of q, k, v, out are `stride` floats
// apart, each pointing at the head's hd values. Scratch: kt holds
// hd * bert_padded(len) floats, scores bert_padded(len).
// len rounded up to a multiple of 16 (the padded width of the scratch rows).
inline int64_t bert_padded(int64_t len) { return (len + 15) / 16 * 16; }

struct BertHeadArgs {
  const float* q;
  const float* k;
  const float* v;
  float* out;
  int64_t stride, len, hd;
  float scale;  // 1 / sqrt(hd)
  float* kt;
  float* scores;
};

namespace {  // internal linkage: each build keeps its own copy

// The vector type never crosses a function boundary that another build
// calls, so GCC's note about its ABI under other flags does not apply.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

// exp(x) for x <= 0 (softmax after subtracting the max), written so that a
// loop of it vectorizes: x = n ln2 + r, exp(r) by a degree-6 Taylor
// polynomial on |r| <= ln2/2 (relative error ~2e-7), 2^n put in the
// exponent bits. Below -87 the result is ~0.
inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (x * 1.44269504088896341f + kRound) - kRound;
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  return p * two_n;
}

// x = softmax(x) over n values.
inline void softmax_inplace(float* x, int64_t n) {
  float max = x[0];
  for (int64_t i = 1; i < n; ++i) max = std::max(max, x[i]);
  for (int64_t i = 0; i < n; ++i) x[i] = exp_nonpositive(x[i] - max);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

// 16 floats side by side: GCC's vector extension, lowered to one AVX-512
// register, two AVX2 or four SSE registers by the build's flags.
constexpr int64_t kLanes = 16;
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));

inline Lanes load_lanes(const float* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store_lanes(float* p, Lanes v) { std::memcpy(p, &v, sizeof v); }

// out[i] = sum_j softmax_j(q[i] . k[j] * scale) v[j]. The keys are copied
// transposed, K^T [hd][len_pad] with rows padded by zeros to a multiple of
// kLanes, so that the scores of kLanes keys are summed over d side by side
// (four groups at once, for independent chains of additions); the products
// with V take kLanes dimensions at a time, in four partial sums over j.
inline void bert_head_attention(const BertHeadArgs& a) {
  const int64_t len = a.len, hd = a.hd, st = a.stride;
  const int64_t len_pad = bert_padded(len);
  for (int64_t d = 0; d < hd; ++d) {
    float* row = a.kt + d * len_pad;
    for (int64_t j = 0; j < len; ++j) row[j] = a.k[j * st + d];
    for (int64_t j = len; j < len_pad; ++j) row[j] = 0.0f;
  }
  float* sc = a.scores;
  for (int64_t i = 0; i < len; ++i) {
    const float* q = a.q + i * st;
    int64_t j0 = 0;
    for (; j0 + 4 * kLanes <= len_pad; j0 += 4 * kLanes) {
      Lanes s0 = {}, s1 = {}, s2 = {}, s3 = {};
      for (int64_t d = 0; d < hd; ++d) {
        const float qd = q[d] * a.scale;
        const float* kr = a.kt + d * len_pad + j0;
        s0 += qd * load_lanes(kr);
        s1 += qd * load_lanes(kr + kLanes);
        s2 += qd * load_lanes(kr + 2 * kLanes);
        s3 += qd * load_lanes(kr + 3 * kLanes);
      }
      store_lanes(sc + j0, s0);
      store_lanes(sc + j0 + kLanes, s1);
      store_lanes(sc + j0 + 2 * kLanes, s2);
      store_lanes(sc + j0 + 3 * kLanes, s3);
    }
    for (; j0 < len_pad; j0 += kLanes) {
      Lanes s0 = {};
      for (int64_t d = 0; d < hd; ++d) s0 += (q[d] * a.scale) * load_lanes(a.kt + d * len_pad + j0);
      store_lanes(sc + j0, s0);
    }
    softmax_inplace(sc, len);
    float* out = a.out + i * st;
    int64_t d0 = 0;
    for (; d0 + kLanes <= hd; d0 += kLanes) {
      // Four partial sums over j (j mod 4), added at the end: four
      // independent chains instead of one long one.
      Lanes acc0 = {}, acc1 = {}, acc2 = {}, acc3 = {};
      const float* v = a.v + d0;
      int64_t j = 0;
      for (; j + 4 <= len; j += 4) {
        acc0 += sc[j] * load_lanes(v + j * st);
        acc1 += sc[j + 1] * load_lanes(v + (j + 1) * st);
        acc2 += sc[j + 2] * load_lanes(v + (j + 2) * st);
        acc3 += sc[j + 3] * load_lanes(v + (j + 3) * st);
      }
      for (; j < len; ++j) acc0 += sc[j] * load_lanes(v + j * st);
      store_lanes(out + d0, (acc0 + acc1) + (acc2 + acc3));
    }
    for (int64_t d = d0; d < hd; ++d) {  // a head size not a multiple of kLanes
      float acc = 0.0f;
      for (int64_t j = 0; j < len; ++j) acc += sc[j] * a.v[j * st + d];
      out[d] = acc;
    }
  }
}

#pragma GCC diagnostic pop

}  // namespace

// The same, built for AVX2+FMA / AVX-512 (call only after a CPU check).
void bert_head_attention_avx2(const BertHeadArgs& a);
void bert_head_attention_avx512(const BertHeadArgs& a);

}  // namespace hai::model
