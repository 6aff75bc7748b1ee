// The tiled matrix products (ggml_order::gemm and its AVX2 / AVX-512 paths)
// against the portable per-element kernels, bit for bit, on every tile
// shape: row counts that leave partial tiles of every size (1..13 rows),
// every token count 1..20 (every token-tile width and remainder), rows
// whose block count is not a multiple of the kernels' 8-block scale chunk,
// and a token count that crosses the 64-token block. And the attention
// products (attn::scores_f16 / values_f16 / round_f16) against theirs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/model/attention_kernels.h"
#include "engine/model/ggml_order.h"
#include "engine/quant/quant.h"

namespace hai::model {
namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Quantized rows of normal floats (F16: the F16 values), and for the
// activations of every other token raw random bytes with finite scales
// (levels -127..127: the AVX2 Q8_0 kernel, like the reference's, takes
// |y| and so cannot take -128, which quantization never makes).
std::vector<uint8_t> weight_row(GgmlType type, int n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> f(n);
  for (auto& v : f) v = nd(rng);
  std::vector<uint8_t> w(row_size(type, n));
  quantize_row(type, f.data(), w.data(), n);
  return w;
}

std::vector<uint8_t> activation_row(GgmlType type, int n, std::mt19937& rng, bool raw) {
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = nd(rng);
  if (type == GgmlType::F16) {  // F16 weights take F16-rounded floats
    for (auto& v : x) v = fp16_to_fp32(fp32_to_fp16(v));
    std::vector<uint8_t> a(sizeof(float) * n);
    std::memcpy(a.data(), x.data(), a.size());
    return a;
  }
  const GgmlType act = vec_dot_type(type);
  std::vector<uint8_t> a(row_size(act, n));
  quantize_activation_row(act, x.data(), a.data(), n);
  if (raw && act == GgmlType::Q8_0) {
    std::uniform_int_distribution<int> byte(0, 255);
    for (size_t off = 0; off < a.size(); off += 34) {
      for (int j = 2; j < 34; ++j) {
        const int v = byte(rng);
        a[off + j] = static_cast<uint8_t>(v == 0x80 ? 0x81 : v);
      }
      const uint16_t h = fp32_to_fp16(std::fabs(nd(rng)) * 0.01f);
      std::memcpy(&a[off], &h, 2);
    }
  }
  return a;
}

struct Problem {
  int n = 0, rows = 0, toks = 0;
  size_t w_stride = 0, a_stride = 0, ldy = 0;
  std::vector<uint8_t> w, a;
};

Problem make_problem(GgmlType type, int n, int rows, int toks, std::mt19937& rng) {
  Problem p;
  p.n = n;
  p.rows = rows;
  p.toks = toks;
  p.w_stride = row_size(type, n) + 6;  // padded: rows not back to back
  p.w.assign(p.w_stride * rows, 0xEE);
  for (int r = 0; r < rows; ++r) {
    const std::vector<uint8_t> one = weight_row(type, n, rng);
    std::memcpy(&p.w[p.w_stride * r], one.data(), one.size());
  }
  p.a_stride = (type == GgmlType::F16 ? sizeof(float) * n : row_size(vec_dot_type(type), n));
  p.a.resize(p.a_stride * toks);
  for (int t = 0; t < toks; ++t) {
    const std::vector<uint8_t> one = activation_row(type, n, rng, t % 2 == 1);
    std::memcpy(&p.a[p.a_stride * t], one.data(), one.size());
  }
  p.ldy = rows + 2;  // outputs wider than the rows: the other columns must stay untouched
  return p;
}

std::vector<float> run(void (*fn)(GgmlType, const ggml_order::GemmArgs&), GgmlType type, const Problem& p) {
  std::vector<float> y(p.ldy * p.toks, -7.0f);
  ggml_order::GemmArgs g;
  g.n = p.n;
  g.w = p.w.data();
  g.w_stride = p.w_stride;
  g.n_rows = p.rows;
  g.a = p.a.data();
  g.a_stride = p.a_stride;
  g.n_tok = p.toks;
  g.y = y.data();
  g.ldy = p.ldy;
  fn(type, g);
  return y;
}

std::vector<std::pair<std::string, void (*)(GgmlType, const ggml_order::GemmArgs&)>> simd_paths() {
  std::vector<std::pair<std::string, void (*)(GgmlType, const ggml_order::GemmArgs&)>> paths = {
      {"dispatched", ggml_order::gemm}};
  if (ggml_order::have_avx2()) paths.emplace_back("avx2", ggml_order::gemm_avx2);
  if (ggml_order::have_avx512()) paths.emplace_back("avx512", ggml_order::gemm_avx512);
  return paths;
}

// Every path, every type, rows 1..13 (in steps that cover every remainder
// of the 3-, 4- and 8-row tiles), tokens 1..20.
TEST(GemmTiles, EveryShapeEqualsPerElementKernels) {
  const GgmlType types[] = {GgmlType::F16, GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K};
  int checked = 0;
  for (GgmlType type : types) {
    const bool k_quant = type == GgmlType::Q4_K || type == GgmlType::Q6_K;
    // 9 blocks of 32: one 8-block scale chunk and a remainder of 1.
    const int n = k_quant ? 256 : 288;
    std::mt19937 rng(1000 + static_cast<int>(type));
    for (int rows : {1, 2, 3, 5, 6, 7, 12, 13}) {
      for (int toks = 1; toks <= 20; ++toks) {
        const Problem p = make_problem(type, n, rows, toks, rng);
        const std::vector<float> ref = run(ggml_order::gemm_portable, type, p);
        for (const auto& [name, fn] : simd_paths()) {
          const std::vector<float> y = run(fn, type, p);
          for (size_t i = 0; i < y.size(); ++i)
            ASSERT_EQ(bits(y[i]), bits(ref[i])) << name << " " << type_name(type) << " rows " << rows << " tokens "
                                                << toks << " at row " << i % p.ldy << " token " << i / p.ldy << ": "
                                                << y[i] << " vs " << ref[i];
          ++checked;
        }
        for (int t = 0; t < toks; ++t)
          for (size_t r = rows; r < p.ldy; ++r) ASSERT_EQ(ref[t * p.ldy + r], -7.0f);
      }
    }
  }
  EXPECT_EQ(checked, 6 * 8 * 20 * static_cast<int>(simd_paths().size()));
}

// Longer rows (several scale chunks, a K-quant row of 3 super-blocks) and
// token counts that cross the 64-token block: 63, 64, 65, 130.
TEST(GemmTiles, LongRowsAndTokenBlocks) {
  const GgmlType types[] = {GgmlType::F16, GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K};
  for (GgmlType type : types) {
    std::mt19937 rng(2000 + static_cast<int>(type));
    for (int toks : {63, 64, 65, 130}) {
      const Problem p = make_problem(type, 768, 11, toks, rng);
      const std::vector<float> ref = run(ggml_order::gemm_portable, type, p);
      for (const auto& [name, fn] : simd_paths()) {
        const std::vector<float> y = run(fn, type, p);
        for (size_t i = 0; i < y.size(); ++i)
          ASSERT_EQ(bits(y[i]), bits(ref[i])) << name << " " << type_name(type) << " tokens " << toks << " at " << i;
      }
    }
  }
}

// The per-element kernels agree with plain arithmetic (so the tiles are
// not only equal to something, but to a dot product): every output of a
// small Q8_0 product near the float dot of the dequantized rows.
TEST(GemmTiles, Q8ProductIsTheDotProduct) {
  std::mt19937 rng(7);
  const Problem p = make_problem(GgmlType::Q8_0, 288, 5, 9, rng);
  const std::vector<float> y = run(ggml_order::gemm, GgmlType::Q8_0, p);
  for (int t = 0; t < p.toks; ++t) {
    std::vector<float> a(p.n);
    dequantize_row(GgmlType::Q8_0, &p.a[p.a_stride * t], a.data(), p.n);
    for (int r = 0; r < p.rows; ++r) {
      std::vector<float> w(p.n);
      dequantize_row(GgmlType::Q8_0, &p.w[p.w_stride * r], w.data(), p.n);
      double dot = 0;
      for (int i = 0; i < p.n; ++i) dot += static_cast<double>(w[i]) * a[i];
      EXPECT_NEAR(y[t * p.ldy + r], dot, 1e-3 * (1.0 + std::fabs(dot))) << "row " << r << " token " << t;
    }
  }
}

// The attention products: scores of a query against 1..40 keys (every
// remainder of 16), values for 1..40 output dimensions over padded
// positions, and the F16 rounding (ties, subnormals, overflow to infinity).
TEST(AttentionKernels, EqualPortable) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const auto f16_values = [&](int64_t n) {
    std::vector<uint16_t> v(n);
    for (auto& h : v) h = fp32_to_fp16(nd(rng));
    return v;
  };
  for (int64_t hd : {16, 64, 128}) {
    for (int64_t n = 1; n <= 40; ++n) {
      const size_t stride = hd * 3 + 5;  // keys of other heads in between
      const std::vector<uint16_t> k = f16_values(stride * n);
      std::vector<float> q(hd);
      for (auto& v : q) v = fp16_to_fp32(fp32_to_fp16(nd(rng)));
      std::vector<float> ref(n + 1, -3.0f), got(n + 1, -3.0f), simd(n + 1, -3.0f);
      attn::scores_f16_portable(hd, q.data(), k.data(), stride, n, ref.data());
      attn::scores_f16(hd, q.data(), k.data(), stride, n, got.data());
      for (int64_t j = 0; j <= n; ++j) ASSERT_EQ(bits(got[j]), bits(ref[j])) << "hd " << hd << " n " << n << " j " << j;
      ASSERT_EQ(got[n], -3.0f);
      if (ggml_order::have_avx512()) {
        attn::scores_f16_avx512(hd, q.data(), k.data(), stride, n, simd.data());
        for (int64_t j = 0; j <= n; ++j) ASSERT_EQ(bits(simd[j]), bits(ref[j])) << "hd " << hd << " n " << n;
      }
      // The score of key 0 is the plain dot product.
      double dot = 0;
      for (int64_t i = 0; i < hd; ++i) dot += static_cast<double>(fp16_to_fp32(k[i])) * q[i];
      EXPECT_NEAR(ref[0], dot, 1e-4 * (1.0 + std::fabs(dot)));
    }
  }
  for (int64_t n_pad : {16, 48, 512}) {
    for (int64_t n_out = 1; n_out <= 40; ++n_out) {
      const size_t stride = n_pad + 32;
      const std::vector<uint16_t> v = f16_values(stride * n_out);
      std::vector<float> p(n_pad);
      for (auto& x : p) x = fp16_to_fp32(fp32_to_fp16(std::fabs(nd(rng)) / n_pad));
      std::vector<float> ref(n_out + 1, -3.0f), got(n_out + 1, -3.0f);
      attn::values_f16_portable(n_pad, p.data(), v.data(), stride, n_out, ref.data());
      attn::values_f16(n_pad, p.data(), v.data(), stride, n_out, got.data());
      for (int64_t d = 0; d <= n_out; ++d)
        ASSERT_EQ(bits(got[d]), bits(ref[d])) << "n_pad " << n_pad << " n_out " << n_out << " d " << d;
      if (ggml_order::have_avx512()) {
        std::vector<float> simd(n_out + 1, -3.0f);
        attn::values_f16_avx512(n_pad, p.data(), v.data(), stride, n_out, simd.data());
        for (int64_t d = 0; d <= n_out; ++d) ASSERT_EQ(bits(simd[d]), bits(ref[d]));
      }
    }
  }
  std::vector<float> x = {1.0f, 1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 65519.0f, 65520.0f, -1e9f, 1e-8f, -3e-6f, 0.0f,
                          -0.0f, 0.1f, 2.5e-5f, 1.0f / 3.0f, 7.0e4f, -65504.0f, 6.1e-5f, 5.96e-8f, 2.98e-8f, 123.456f};
  for (int i = 0; i < 45; ++i) x.push_back(nd(rng) * 1000.0f);
  for (size_t len = 0; len <= x.size(); ++len) {
    std::vector<float> ref(x.begin(), x.begin() + len), got = ref;
    ref.push_back(-3.0f);
    got.push_back(-3.0f);
    attn::round_f16_portable(ref.data(), static_cast<int64_t>(len));
    attn::round_f16(got.data(), static_cast<int64_t>(len));
    for (size_t i = 0; i <= len; ++i) ASSERT_EQ(bits(got[i]), bits(ref[i])) << "len " << len << " at " << i;
  }
  EXPECT_EQ(x[0], 1.0f);
  std::vector<float> tie = {1.0f + 0x1p-11f, 65520.0f};
  attn::round_f16(tie.data(), 2);
  EXPECT_EQ(tie[0], 1.0f);  // a tie rounds to even
  EXPECT_TRUE(std::isinf(tie[1]));
}

}  // namespace
}  // namespace hai::model
