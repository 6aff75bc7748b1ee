// The numerical kernels of the forward pass, against direct formulas.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/error.h"
#include "engine/model/ggml_order.h"
#include "engine/model/ops.h"
#include "engine/quant/quant.h"

namespace hai::model {
namespace {

TEST(Ops, VectorExpfIsCloseToExpf) {
  for (float x = -100.0f; x < 88.0f; x += 0.0137f) {
    const float a = ggml_order::v_expf(x), b = std::exp(x);
    EXPECT_NEAR(a, b, std::max(4e-7f * b, 1e-43f)) << x;  // absolute near subnormals
  }
  EXPECT_EQ(ggml_order::v_expf(-INFINITY), 0.0f);
  EXPECT_EQ(ggml_order::v_expf(0.0f), 1.0f);
  EXPECT_TRUE(std::isinf(ggml_order::v_expf(200.0f)));
  EXPECT_EQ(ggml_order::v_expf(-200.0f), 0.0f);
}

// The batched (AVX-512) expf gives v_expf's bits, tails and specials included.
TEST(Ops, VectorExpfBatchEqualsScalar) {
  std::vector<float> x;
  for (float v = -110.0f; v < 95.0f; v += 0.0371f) x.push_back(v);
  for (float v : {-INFINITY, INFINITY, 0.0f, -0.0f, 1e-30f, -1e-30f, 88.7f, -87.3f, -103.9f, 300.0f, -300.0f})
    x.push_back(v);
  for (int64_t n : {int64_t(x.size()), int64_t(x.size()) - 5, int64_t(13), int64_t(1)}) {
    std::vector<float> out(n, 7.0f);
    ggml_order::v_expf_n(x.data(), out.data(), n);
    std::vector<float> simd(n, 7.0f);
    if (ggml_order::have_avx512()) ggml_order::v_expf_n_avx512(x.data(), simd.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const float ref = ggml_order::v_expf(x[i]);
      ASSERT_EQ(std::memcmp(&out[i], &ref, 4), 0) << x[i] << ": " << out[i] << " vs " << ref;
      if (ggml_order::have_avx512()) {
        ASSERT_EQ(std::memcmp(&simd[i], &ref, 4), 0) << x[i];
      }
    }
  }
}

TEST(Ops, RmsNorm) {
  std::vector<float> x = {1, -2, 3, 4}, w = {1, 2, 0.5f, 1}, out(4);
  rmsnorm(out.data(), x.data(), w.data(), 4, 1e-5f);
  const double rms = std::sqrt((1 + 4 + 9 + 16) / 4.0 + 1e-5);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(out[i], x[i] / rms * w[i], 1e-6);
}

TEST(Ops, SoftmaxSumsToOne) {
  std::vector<float> x = {1, 2, 3, -INFINITY, 0.5f};
  softmax_scaled(x.data(), 5, 0.5f);
  double sum = 0;
  for (float v : x) sum += v;
  EXPECT_NEAR(sum, 1.0, 1e-6);
  EXPECT_EQ(x[3], 0.0f);
  EXPECT_NEAR(x[2] / x[1], std::exp(0.5), 1e-5);
}

TEST(Ops, SwigluIsSiluTimesUp) {
  std::vector<float> g(40), u(40);
  for (int i = 0; i < 40; ++i) {
    g[i] = (i - 20) * 0.37f;
    u[i] = 1.0f + i * 0.1f;
  }
  std::vector<float> g0 = g;
  swiglu(g.data(), u.data(), 40);
  for (int i = 0; i < 40; ++i) EXPECT_NEAR(g[i], g0[i] / (1 + std::exp(-g0[i])) * u[i], 1e-5f * (1 + std::fabs(g[i])));
}

Hparams rope_hp(RopeScaling scaling, float factor) {
  Hparams hp;
  hp.n_rot = 8;
  hp.head_dim_k = 8;
  hp.rope_freq_base = 10000.0f;
  hp.rope_scaling = scaling;
  hp.rope_freq_scale = 1.0f / factor;
  hp.n_ctx_orig = 4096;
  hp.yarn_ext_factor = scaling == RopeScaling::kYarn ? 1.0f : 0.0f;
  return hp;
}

TEST(Ops, RopeAnglesAndLayouts) {
  const Hparams hp = rope_hp(RopeScaling::kNone, 1.0f);
  std::vector<float> cs(8);
  rope_angles(hp, nullptr, 3, cs.data());
  for (int i = 0; i < 4; ++i) {
    const double theta = 3 * std::pow(10000.0, -2.0 * i / 8);
    EXPECT_NEAR(cs[2 * i], std::cos(theta), 1e-6);
    EXPECT_NEAR(cs[2 * i + 1], std::sin(theta), 1e-6);
  }
  // Normal layout rotates (x0, x1); NeoX rotates (x0, x4).
  std::vector<float> a = {1, 0, 0, 0, 0, 0, 0, 0}, b = a;
  rope_apply(RopeLayout::kNormal, 8, cs.data(), a.data());
  rope_apply(RopeLayout::kNeox, 8, cs.data(), b.data());
  EXPECT_NEAR(a[0], std::cos(3.0), 1e-6);
  EXPECT_NEAR(a[1], std::sin(3.0), 1e-6);
  EXPECT_NEAR(b[0], std::cos(3.0), 1e-6);
  EXPECT_NEAR(b[4], std::sin(3.0), 1e-6);
  EXPECT_EQ(b[1], 0.0f);
  // Position 0 is the identity.
  rope_angles(hp, nullptr, 0, cs.data());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(cs[2 * i], 1.0f);
}

TEST(Ops, RopeLinearScalingAndFreqFactors) {
  std::vector<float> s(8), u(8), f(8);
  rope_angles(rope_hp(RopeScaling::kLinear, 2.0f), nullptr, 10, s.data());
  rope_angles(rope_hp(RopeScaling::kNone, 1.0f), nullptr, 5, u.data());
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(s[i], u[i], 1e-6);
  const float ff[4] = {2, 2, 2, 2};  // frequency factors divide the angle
  rope_angles(rope_hp(RopeScaling::kNone, 1.0f), ff, 10, f.data());
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(f[i], u[i], 1e-6);
}

TEST(Ops, RopeYarnScalesMagnitude) {
  std::vector<float> y(8);
  rope_angles(rope_hp(RopeScaling::kYarn, 4.0f), nullptr, 0, y.data());
  const float mscale = 1.0f + 0.1f * std::log(4.0f);  // YaRN attention factor
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[2 * i], mscale, 1e-6);
}

// The AVX-512 kernels give the same bits as the portable ones.
TEST(Ops, GgmlOrderKernelsAgreeAcrossIsa) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  const int n = 256;
  std::vector<float> x(n), y(n);
  for (auto& v : x) v = nd(rng);
  for (auto& v : y) v = nd(rng);
  std::vector<uint16_t> w16(n);
  for (int i = 0; i < n; ++i) w16[i] = fp32_to_fp16(x[i]);
  double exact = 0;
  for (int i = 0; i < n; ++i) exact += double(fp16_to_fp32(w16[i])) * y[i];
  const float portable_f16 = [&] {
    float acc[16] = {0};
    for (int i = 0; i < n; i += 16)
      for (int l = 0; l < 16; ++l) acc[l] = std::fma(fp16_to_fp32(w16[i + l]), y[i + l], acc[l]);
    return ggml_order::reduce16(acc);
  }();
  EXPECT_NEAR(ggml_order::dot_f16_f32(n, w16.data(), y.data()), exact, 1e-3);
  EXPECT_EQ(ggml_order::dot_f16_f32(n, w16.data(), y.data()), portable_f16);

  std::vector<uint8_t> wq(row_size(GgmlType::Q8_0, n)), aq(row_size(GgmlType::Q8_0, n));
  quantize_row(GgmlType::Q8_0, x.data(), wq.data(), n);
  quantize_activation_row(GgmlType::Q8_0, y.data(), aq.data(), n);
  const float q = ggml_order::dot_q8_0(n, wq.data(), aq.data());
  EXPECT_NEAR(q, vec_dot(GgmlType::Q8_0, n, wq.data(), aq.data()), 1e-3);
  if (ggml_order::have_avx512()) {
    // dot_q8_0 dispatched to AVX-512: compare with the portable lane order.
    float acc[8] = {0};
    for (int b = 0; b < n / 32; ++b) {
      uint16_t dx, dy;
      std::memcpy(&dx, &wq[b * 34], 2);
      std::memcpy(&dy, &aq[b * 34], 2);
      const float d = fp16_to_fp32(dx) * fp16_to_fp32(dy);
      for (int l = 0; l < 8; ++l) {
        int s = 0;
        for (int k = 0; k < 4; ++k)
          s += int8_t(wq[b * 34 + 2 + 4 * l + k]) * int8_t(aq[b * 34 + 2 + 4 * l + k]);
        acc[l] = std::fma(d, float(s), acc[l]);
      }
    }
    float r[4];
    for (int l = 0; l < 4; ++l) r[l] = acc[l + 4] + acc[l];
    EXPECT_EQ(q, (r[0] + r[2]) + (r[1] + r[3]));
  }
}


// Random packed weight blocks: random bytes, with the fp16 scale fields set
// to finite values (so the comparisons are between numbers, not NaNs).
std::vector<uint8_t> random_weights(GgmlType type, int n, std::mt19937& rng) {
  std::vector<uint8_t> w(row_size(type, n));
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : w) b = static_cast<uint8_t>(byte(rng));
  std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
  const auto put_f16 = [&](size_t at) {
    const uint16_t h = fp32_to_fp16(scale(rng));
    std::memcpy(&w[at], &h, 2);
  };
  const size_t block = type == GgmlType::Q4_0 || type == GgmlType::Q8_0 || type == GgmlType::Q5_0
                           ? row_size(type, 32)
                           : row_size(type, 256);
  for (size_t off = 0; off < w.size(); off += block) {
    if (type == GgmlType::Q4_K) {
      put_f16(off);
      put_f16(off + 2);
    } else if (type == GgmlType::Q6_K) {
      put_f16(off + 208);
    } else {
      put_f16(off);
    }
  }
  return w;
}

// Activation rows: quantized normal floats; every third seed instead raw
// random bytes (int8 -128 included, which real quantization never makes).
std::vector<uint8_t> random_activations(GgmlType act, int n, std::mt19937& rng, bool raw) {
  std::vector<uint8_t> a(row_size(act, n));
  std::normal_distribution<float> nd(0.0f, 2.0f);
  if (!raw) {
    std::vector<float> x(n);
    for (auto& v : x) v = nd(rng);
    quantize_activation_row(act, x.data(), a.data(), n);
    return a;
  }
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : a) b = static_cast<uint8_t>(byte(rng));
  if (act == GgmlType::Q8_K) {  // d (f32), qs[256], bsums[16] = sums of 16 qs
    for (size_t off = 0; off < a.size(); off += 292) {
      const float d = std::fabs(nd(rng)) * 0.01f;
      std::memcpy(&a[off], &d, 4);
      for (int g = 0; g < 16; ++g) {
        int16_t sum = 0;
        for (int k = 0; k < 16; ++k) sum = static_cast<int16_t>(sum + int8_t(a[off + 4 + 16 * g + k]));
        std::memcpy(&a[off + 260 + 2 * g], &sum, 2);
      }
    }
  } else {  // Q8_0: d (f16), qs[32]
    for (size_t off = 0; off < a.size(); off += 34) {
      const uint16_t h = fp32_to_fp16(std::fabs(nd(rng)) * 0.01f);
      std::memcpy(&a[off], &h, 2);
    }
  }
  return a;
}

// The SIMD K-quant and Q4_0 kernels give the same bits as the portable
// ones, on many random rows; and both are close to hai::vec_dot.
TEST(Ops, GgmlOrderQuantKernelsAgreeBitForBit) {
  int simd_checked = 0;
  for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q4_0}) {
    const GgmlType act = vec_dot_type(type);
    for (int seed = 0; seed < 200; ++seed) {
      std::mt19937 rng(1000 * static_cast<int>(type) + seed);
      const int n = 256 * (1 + seed % 5);
      const std::vector<uint8_t> w = random_weights(type, n, rng);
      const std::vector<uint8_t> a = random_activations(act, n, rng, /*raw=*/seed % 3 == 2);
      float portable, dispatched, simd = NAN;
      if (type == GgmlType::Q4_0) {
        portable = ggml_order::dot_q4_0_portable(n, w.data(), a.data());
        dispatched = ggml_order::dot_q4_0(n, w.data(), a.data());
        if (ggml_order::have_avx2()) simd = ggml_order::dot_q4_0_avx2(n, w.data(), a.data());
      } else {
        portable = ggml_order::dot_k_portable(type, n, w.data(), a.data());
        ggml_order::KRow row;
        ggml_order::unpack_k_row(type, n, w.data(), row);
        dispatched = ggml_order::dot_k_row(row, n, a.data());
        if (ggml_order::have_avx2()) {
          simd = type == GgmlType::Q4_K ? ggml_order::dot_q4_k_avx2(n, w.data(), a.data())
                                        : ggml_order::dot_q6_k_avx2(n, w.data(), a.data());
        }
      }
      ASSERT_TRUE(std::isfinite(portable)) << type_name(type) << " seed " << seed;
      // (hai::vec_dot's Q4_0 kernel, like ggml's, assumes activations in
      // [-127, 127], so raw bytes are compared only between ggml-order paths.)
      const bool raw = seed % 3 == 2;
      if (!raw || type != GgmlType::Q4_0) {
        const float ref = vec_dot(type, n, w.data(), a.data());
        EXPECT_NEAR(portable, ref, 1e-3f * (1.0f + std::fabs(ref))) << type_name(type) << " seed " << seed;
      }
      uint32_t pb, db;
      std::memcpy(&pb, &portable, 4);
      std::memcpy(&db, &dispatched, 4);
      EXPECT_EQ(pb, db) << type_name(type) << " seed " << seed << ": " << portable << " vs " << dispatched;
      if (ggml_order::have_avx2()) {
        uint32_t sb;
        std::memcpy(&sb, &simd, 4);
        EXPECT_EQ(pb, sb) << type_name(type) << " seed " << seed << ": " << portable << " vs " << simd;
        ++simd_checked;
      }
    }
  }
  if (ggml_order::have_avx2()) {
    EXPECT_EQ(simd_checked, 600);
  }
}

// A K-quant row prepared once gives the same result for every activation
// row it is multiplied with, as a fresh unpack does (the matmul reuses rows).
TEST(Ops, GgmlOrderKRowReusedAcrossActivations) {
  std::mt19937 rng(7);
  const int n = 512;
  for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q6_K}) {
    const std::vector<uint8_t> w = random_weights(type, n, rng);
    ggml_order::KRow row;
    ggml_order::unpack_k_row(type, n, w.data(), row);
    for (int t = 0; t < 8; ++t) {
      const std::vector<uint8_t> a = random_activations(GgmlType::Q8_K, n, rng, false);
      EXPECT_EQ(ggml_order::dot_k_row(row, n, a.data()), ggml_order::dot_k_portable(type, n, w.data(), a.data()));
    }
  }
}

// Bits of a float, so that EXPECT_EQ compares bits (NaN == NaN, -0 != +0).
uint32_t bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// The tiled matrix products give, for every output, the bits of the
// per-element portable kernel (Q5_0: hai::vec_dot), on every path this CPU can run; sizes that
// are not multiples of the tiles (rows 1..13, tokens 1..70 crossing the
// token block), padded row strides, and an output wider than the rows
// (whose other columns must stay untouched).
TEST(Ops, GemmTilesEqualPerElementKernels) {
  int paths_checked = 0;
  const GgmlType types[] = {GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q6_K};
  for (GgmlType type : types) {
    ASSERT_TRUE(ggml_order::gemm_has(type));
    const bool k_quant = type == GgmlType::Q4_K || type == GgmlType::Q6_K;
    const GgmlType act = vec_dot_type(type);
    int seed = 0;
    for (int n : {256, 768}) {
      for (int rows : {1, 3, 8, 13}) {
        for (int toks : {1, 2, 5, 70}) {
          if (toks == 70 && rows == 13 && n == 768) continue;  // keep it fast
          std::mt19937 rng(100 * static_cast<int>(type) + seed++);
          const size_t w_row = row_size(type, n), w_stride = w_row + 6;
          std::vector<uint8_t> w(w_stride * rows);
          for (int r = 0; r < rows; ++r) {
            std::vector<uint8_t> one;
            if (type == GgmlType::F16) {
              std::normal_distribution<float> nd;
              std::vector<float> f(n);
              for (auto& v : f) v = nd(rng);
              one.resize(w_row);
              quantize_row(type, f.data(), one.data(), n);
            } else {
              one = random_weights(type, n, rng);
            }
            std::memcpy(&w[w_stride * r], one.data(), w_row);
          }
          // Activations: F16-rounded floats for F16; quantized rows, and for
          // the K-quants and Q4_0 every other case raw bytes.
          const size_t a_row = type == GgmlType::F16 ? sizeof(float) * n : row_size(act, n);
          std::vector<uint8_t> a(a_row * toks);
          for (int t = 0; t < toks; ++t) {
            std::vector<uint8_t> one;
            if (type == GgmlType::F16) {
              std::normal_distribution<float> nd;
              std::vector<float> f(n);
              for (auto& v : f) v = fp16_to_fp32(fp32_to_fp16(nd(rng)));
              one.resize(a_row);
              std::memcpy(one.data(), f.data(), a_row);
            } else {
              const bool raw = (k_quant || type == GgmlType::Q4_0) && (seed + t) % 2 == 0;
              one = random_activations(act, n, rng, raw);
            }
            std::memcpy(&a[a_row * t], one.data(), a_row);
          }
          const size_t ldy = rows + 3;
          const auto run = [&](void (*fn)(GgmlType, const ggml_order::GemmArgs&)) {
            std::vector<float> y(ldy * toks, -7.0f);
            ggml_order::GemmArgs g;
            g.n = n;
            g.w = w.data();
            g.w_stride = w_stride;
            g.n_rows = rows;
            g.a = a.data();
            g.a_stride = a_row;
            g.n_tok = toks;
            g.y = y.data();
            g.ldy = ldy;
            fn(type, g);
            return y;
          };
          const std::vector<float> ref = run(ggml_order::gemm_portable);
          // Spot check against the per-element kernel and the plain dot.
          const float first = ref[0];
          if (type == GgmlType::Q4_0) {
            EXPECT_EQ(bits(first), bits(ggml_order::dot_q4_0_portable(n, w.data(), a.data())));
          }
          if (type == GgmlType::Q8_0) {
            EXPECT_EQ(bits(first), bits(ggml_order::dot_q8_0_portable(n, w.data(), a.data())));
          }
          if (type != GgmlType::F16 && (type != GgmlType::Q4_0 || seed % 2 == 1)) {
            const float plain = vec_dot(type, n, w.data(), a.data());
            EXPECT_NEAR(first, plain, 1e-3f * (1.0f + std::fabs(plain))) << type_name(type);
          }
          for (int t = 0; t < toks; ++t)
            for (size_t r = rows; r < ldy; ++r) ASSERT_EQ(ref[t * ldy + r], -7.0f);
          std::vector<std::pair<const char*, void (*)(GgmlType, const ggml_order::GemmArgs&)>> paths = {
              {"dispatched", ggml_order::gemm}};
          if (ggml_order::have_avx2()) paths.push_back({"avx2", ggml_order::gemm_avx2});
          if (ggml_order::have_avx512()) paths.push_back({"avx512", ggml_order::gemm_avx512});
          for (const auto& [name, fn] : paths) {
            const std::vector<float> y = run(fn);
            for (size_t i = 0; i < y.size(); ++i)
              ASSERT_EQ(bits(y[i]), bits(ref[i])) << name << " " << type_name(type) << " n " << n << " rows " << rows
                                                  << " tokens " << toks << " at row " << i % ldy << " token "
                                                  << i / ldy << ": " << y[i] << " vs " << ref[i];
            ++paths_checked;
          }
        }
      }
    }
  }
  // 6 types x 31 shapes, each on the dispatched path and every SIMD path.
  const int per_path = 6 * 31;
  EXPECT_EQ(paths_checked, per_path * (1 + ggml_order::have_avx2() + ggml_order::have_avx512()));
}

TEST(Ops, GemmRejectsTypesWithoutKernel) {
  ASSERT_FALSE(ggml_order::gemm_has(GgmlType::Q5_1));
  std::vector<uint8_t> w(row_size(GgmlType::Q5_1, 32)), a(row_size(GgmlType::Q8_1, 32));
  float y = 0;
  ggml_order::GemmArgs g;
  g.n = 32;
  g.w = w.data();
  g.w_stride = w.size();
  g.n_rows = 1;
  g.a = a.data();
  g.a_stride = a.size();
  g.n_tok = 1;
  g.y = &y;
  g.ldy = 1;
  try {
    ggml_order::gemm(GgmlType::Q5_1, g);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q5_1"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hai::model
