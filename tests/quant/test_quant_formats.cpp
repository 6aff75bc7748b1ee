// Half-precision conversions and dequantization of hand-made blocks whose
// values can be worked out by hand from the ggml block layouts.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/common/cpu.h"
#include "engine/common/error.h"
#include "engine/quant/quant.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace hai {
namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ------------------------------------------------------------ fp16 / bf16

// fp16 -> fp32 by the definition: (-1)^s * 2^(e-15) * (1 + m/1024), or
// 2^-14 * m/1024 for e == 0.
double half_value(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v = e == 0 ? std::ldexp(m / 1024.0, -14) : std::ldexp(1.0 + m / 1024.0, e - 15);
  return s ? -v : v;
}

TEST(Fp16, AllHalvesToFloatMatchDefinition) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_fp32(static_cast<uint16_t>(h));
    const int e = (h >> 10) & 31;
    if (e == 31) {
      if ((h & 1023) == 0) {
        EXPECT_TRUE(std::isinf(f)) << h;
        EXPECT_EQ(std::signbit(f), (h >> 15) != 0) << h;
      } else {
        EXPECT_TRUE(std::isnan(f)) << h;
      }
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), half_value(static_cast<uint16_t>(h))) << "half " << h;
    ASSERT_EQ(std::signbit(f), (h >> 15) != 0) << h;
  }
}

// Nearest half (ties to even) of a finite float, by arithmetic in double.
uint16_t reference_to_half(float f) {
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(f));
  if (a >= 65520.0) return sign | 0x7C00;
  if (a < std::ldexp(1.0, -14)) return sign | static_cast<uint16_t>(std::nearbyint(std::ldexp(a, 24)));
  int e;
  std::frexp(a, &e);
  int E = e - 1;  // a = 1.f * 2^E
  double mant = std::nearbyint((std::ldexp(a, -E) - 1.0) * 1024.0);
  if (mant == 1024.0) {
    mant = 0;
    ++E;
  }
  return sign | static_cast<uint16_t>(((E + 15) << 10) | static_cast<int>(mant));
}

#if defined(__x86_64__)
__attribute__((target("f16c"))) uint16_t hardware_to_half(float f) { return _cvtss_sh(f, 0); }
__attribute__((target("f16c"))) float hardware_from_half(uint16_t h) { return _cvtsh_ss(h); }
#endif

// Floats around every half value and every midpoint between two halves, plus
// random bit patterns, converted both ways.
std::vector<float> half_test_inputs() {
  std::vector<float> in;
  for (uint32_t h = 0; h < 0x7C00; ++h) {
    const float lo = fp16_to_fp32(static_cast<uint16_t>(h));
    const float hi = fp16_to_fp32(static_cast<uint16_t>(h + 1));
    const float mid = static_cast<float>((static_cast<double>(lo) + hi) / 2);
    for (float v : {lo, mid, std::nextafter(mid, 0.f), std::nextafter(mid, 1e9f)}) {
      in.push_back(v);
      in.push_back(-v);
    }
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) in.push_back(from_bits(rng()));
  for (float v : {65504.f, 65519.99f, 65520.f, 1e30f, 5.96e-8f, 2.98e-8f, 2.99e-8f, 1e-40f}) {
    in.push_back(v);
    in.push_back(-v);
  }
  return in;
}

TEST(Fp16, FloatToHalfRoundsToNearestEven) {
  for (float f : half_test_inputs()) {
    if (std::isnan(f)) continue;
    if (std::isinf(f)) {
      EXPECT_EQ(fp32_to_fp16(f), f > 0 ? 0x7C00 : 0xFC00);
      continue;
    }
    ASSERT_EQ(fp32_to_fp16(f), reference_to_half(f)) << "float bits " << std::hex << bits(f);
  }
}

TEST(Fp16, MatchesF16cHardwareIncludingNaN) {
#if defined(__x86_64__)
  if (!cpu_features().f16c) GTEST_SKIP() << "no F16C";
  std::vector<float> in = half_test_inputs();
  for (uint32_t nan : {0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0x7FA12345u, 0xFF812345u}) in.push_back(from_bits(nan));
  in.push_back(INFINITY);
  in.push_back(-INFINITY);
  for (float f : in) ASSERT_EQ(fp32_to_fp16(f), hardware_to_half(f)) << "float bits " << std::hex << bits(f);
  for (uint32_t h = 0; h < 65536; ++h)
    ASSERT_EQ(bits(fp16_to_fp32(static_cast<uint16_t>(h))), bits(hardware_from_half(static_cast<uint16_t>(h))))
        << "half " << h;
#else
  GTEST_SKIP() << "not x86";
#endif
}

TEST(Bf16, AllValuesToFloatAreTheHighHalf) {
  for (uint32_t h = 0; h < 65536; ++h) ASSERT_EQ(bits(bf16_to_fp32(static_cast<uint16_t>(h))), h << 16);
}

TEST(Bf16, FloatToBf16RoundsToNearestEvenAndKeepsNaNQuiet) {
  std::mt19937 rng(11);
  for (int i = 0; i < 1000000; ++i) {
    const uint32_t u = rng();
    const float f = from_bits(u);
    const uint16_t got = fp32_to_bf16(f);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_fp32(got)));
      EXPECT_TRUE(got & 0x40) << "quiet bit";
      continue;
    }
    // Reference: compare the distances to the two neighbours in double.
    const uint16_t down = static_cast<uint16_t>(u >> 16);
    const uint16_t up = static_cast<uint16_t>(down + 1);
    const double dd = std::fabs(static_cast<double>(f) - bf16_to_fp32(down));
    const double up_value = (up & 0x7FFF) == 0x7F80 ? std::copysign(std::ldexp(1.0, 128), f) : bf16_to_fp32(up);
    const double du = std::fabs(static_cast<double>(f) - up_value);
    uint16_t want = dd < du ? down : du < dd ? up : (down & 1) ? up : down;
    if ((u & 0xFFFF) == 0) want = down;
    ASSERT_EQ(got, want) << std::hex << u;
  }
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3F808000u)), 0x3F80);  // tie, even stays
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3F818000u)), 0x3F82);  // tie, odd rounds up
  EXPECT_EQ(fp32_to_bf16(from_bits(0x7F800001u)), 0x7FC0);  // signalling NaN made quiet
}

// ------------------------------------------------------------ hand-made blocks

void put16(std::vector<uint8_t>& b, size_t at, uint16_t v) { std::memcpy(&b[at], &v, 2); }

std::vector<float> dequant(GgmlType t, const std::vector<uint8_t>& b, int64_t n) {
  EXPECT_EQ(b.size(), row_size(t, n));
  std::vector<float> out(n);
  dequantize_row(t, b.data(), out.data(), n);
  return out;
}

TEST(Dequantize, F32F16Bf16) {
  float f[2] = {1.5f, -2.25f};
  std::vector<float> out(2);
  dequantize_row(GgmlType::F32, f, out.data(), 2);
  EXPECT_EQ(out, (std::vector<float>{1.5f, -2.25f}));
  uint16_t h[3] = {0x3C00, 0xC000, 0x3555};  // 1, -2, 0.333251953125
  std::vector<float> o3(3);
  dequantize_row(GgmlType::F16, h, o3.data(), 3);
  EXPECT_EQ(o3, (std::vector<float>{1.f, -2.f, 0.333251953125f}));
  uint16_t b[2] = {0x3FC0, 0xC040};  // 1.5, -3
  dequantize_row(GgmlType::BF16, b, out.data(), 2);
  EXPECT_EQ(out, (std::vector<float>{1.5f, -3.f}));
}

TEST(Dequantize, Q4_0) {
  // d = 0.5; byte j: low nibble j, high nibble 15 - j.
  std::vector<uint8_t> b(18);
  put16(b, 0, 0x3800);
  for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  auto y = dequant(GgmlType::Q4_0, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j - 8) * 0.5f);
    EXPECT_EQ(y[j + 16], (7 - j) * 0.5f);
  }
  EXPECT_EQ(y[0], -4.0f);
  EXPECT_EQ(y[16], 3.5f);
}

TEST(Dequantize, Q4_1) {
  // d = 0.25, m = -1; byte j: j in both nibbles.
  std::vector<uint8_t> b(20);
  put16(b, 0, 0x3400);
  put16(b, 2, 0xBC00);
  for (int j = 0; j < 16; ++j) b[4 + j] = static_cast<uint8_t>(j | (j << 4));
  auto y = dequant(GgmlType::Q4_1, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], j * 0.25f - 1);
    EXPECT_EQ(y[j + 16], j * 0.25f - 1);
  }
  EXPECT_EQ(y[15], 2.75f);
}

TEST(Dequantize, Q5_0) {
  // d = 1; fifth bit set for values 16..31 only.
  std::vector<uint8_t> b(22);
  put16(b, 0, 0x3C00);
  uint32_t qh = 0xFFFF0000u;
  std::memcpy(&b[2], &qh, 4);
  for (int j = 0; j < 16; ++j) b[6 + j] = static_cast<uint8_t>(j | (j << 4));
  auto y = dequant(GgmlType::Q5_0, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], j - 16.f);
    EXPECT_EQ(y[j + 16], static_cast<float>(j));
  }
}

TEST(Dequantize, Q5_1) {
  // d = 2, m = 1; fifth bit set for values 0..15 only.
  std::vector<uint8_t> b(24);
  put16(b, 0, 0x4000);
  put16(b, 2, 0x3C00);
  uint32_t qh = 0x0000FFFFu;
  std::memcpy(&b[4], &qh, 4);
  for (int j = 0; j < 16; ++j) b[8 + j] = static_cast<uint8_t>(j | (j << 4));
  auto y = dequant(GgmlType::Q5_1, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j + 16) * 2.f + 1);
    EXPECT_EQ(y[j + 16], j * 2.f + 1);
  }
  EXPECT_EQ(y[15], 63.f);
}

TEST(Dequantize, Q8_0) {
  std::vector<uint8_t> b(34 * 2);
  put16(b, 0, 0x3000);   // 0.125
  put16(b, 34, 0xC000);  // -2
  for (int j = 0; j < 32; ++j) {
    b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 16));
    b[36 + j] = static_cast<uint8_t>(static_cast<int8_t>(j == 0 ? -127 : j));
  }
  auto y = dequant(GgmlType::Q8_0, b, 64);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], (j - 16) * 0.125f);
  EXPECT_EQ(y[32], 254.f);
  EXPECT_EQ(y[63], -62.f);
}

TEST(Dequantize, Q8_1) {
  std::vector<uint8_t> b(36);
  put16(b, 0, 0x3800);  // d = 0.5 (s is not used to dequantize)
  for (int j = 0; j < 32; ++j) b[4 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 10));
  auto y = dequant(GgmlType::Q8_1, b, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], (j - 10) * 0.5f);
}

// Q2_K: scales[j] = (j%8 + 1) | (j%2) << 4, d = 1, dmin = 0.5; every qs byte
// 0b11100100, so the values of quarter s (bit pair s) of each group of 128 are
// level s.
TEST(Dequantize, Q2_K) {
  std::vector<uint8_t> b(84);
  for (int j = 0; j < 16; ++j) b[j] = static_cast<uint8_t>((j % 8 + 1) | ((j % 2) << 4));
  for (int l = 0; l < 64; ++l) b[16 + l] = 0xE4;
  put16(b, 80, 0x3C00);
  put16(b, 82, 0x3800);
  auto y = dequant(GgmlType::Q2_K, b, 256);
  for (int v = 0; v < 256; ++v) {
    const int j = v / 16, s = (v % 128) / 32;
    EXPECT_EQ(y[v], (j % 8 + 1) * s - 0.5f * (j % 2)) << v;
  }
  EXPECT_EQ(y[0], 0.f);
  EXPECT_EQ(y[40], 3.f);
  EXPECT_EQ(y[48], 3.5f);
  EXPECT_EQ(y[255], 23.5f);
}

// Q3_K: the 6-bit scale of sub-block j is j + 24 (so j - 8 after the offset),
// every qs byte 0b11100100 (level s in quarter s), all high bits set (no -4)
// except value 0's.
TEST(Dequantize, Q3_K) {
  std::vector<uint8_t> b(110, 0);
  for (int l = 0; l < 32; ++l) b[l] = 0xFF;  // hmask
  b[0] = 0xFE;                                // value 0 (bit 0 of hmask[0]) has no high bit
  for (int l = 0; l < 64; ++l) b[32 + l] = 0xE4;
  uint8_t* sc = &b[96];
  for (int j = 0; j < 16; ++j) {
    const int raw = j + 24;
    if (j < 8)
      sc[j] |= raw & 0xF;
    else
      sc[j - 8] |= (raw & 0xF) << 4;
    sc[8 + j % 4] |= (raw >> 4) << (2 * (j / 4));
  }
  put16(b, 108, 0x3C00);
  auto y = dequant(GgmlType::Q3_K, b, 256);
  for (int v = 1; v < 256; ++v) EXPECT_EQ(y[v], (v / 16 - 8) * ((v % 128) / 32)) << v;
  EXPECT_EQ(y[0], 32.f);  // scale -8, level 0 - 4
  EXPECT_EQ(y[40], -6.f);
  EXPECT_EQ(y[255], 21.f);
}

// Q4_K / Q5_K: scales 1..8 except sub-block 5 = 63, mins alternate 0/1 except
// sub-block 5 = 40; qs byte l of each 32-byte slice: low nibble l%16, high 15 - l%16.
std::vector<uint8_t> k4_header() {
  std::vector<uint8_t> h(16, 0);
  put16(h, 0, 0x3C00);  // d = 1
  put16(h, 2, 0x3C00);  // dmin = 1
  const int sc[8] = {1, 2, 3, 4, 5, 63, 7, 8};
  const int mn[8] = {0, 1, 0, 1, 0, 40, 0, 1};
  uint8_t* s = &h[4];
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<uint8_t>(sc[j]);
    s[j + 4] = static_cast<uint8_t>(mn[j]);
  }
  for (int j = 4; j < 8; ++j) {
    s[j + 4] = static_cast<uint8_t>((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
    s[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
    s[j] |= static_cast<uint8_t>((mn[j] >> 4) << 6);
  }
  return h;
}

float k4_expected(int v, int extra) {
  const int sc[8] = {1, 2, 3, 4, 5, 63, 7, 8};
  const int mn[8] = {0, 1, 0, 1, 0, 40, 0, 1};
  const int p = v / 64, within = v % 64, l = within % 32, j = 2 * p + within / 32;
  const int q = (within < 32 ? l % 16 : 15 - l % 16) + extra;
  return static_cast<float>(sc[j] * q - mn[j]);
}

TEST(Dequantize, Q4_K) {
  std::vector<uint8_t> b = k4_header();
  for (int p = 0; p < 4; ++p)
    for (int l = 0; l < 32; ++l) b.push_back(static_cast<uint8_t>((l % 16) | ((15 - l % 16) << 4)));
  auto y = dequant(GgmlType::Q4_K, b, 256);
  for (int v = 0; v < 256; ++v) EXPECT_EQ(y[v], k4_expected(v, 0)) << v;
  EXPECT_EQ(y[0], 0.f);
  EXPECT_EQ(y[33], 27.f);
  EXPECT_EQ(y[160], 905.f);  // 63 * 15 - 40
  EXPECT_EQ(y[255], -1.f);
}

TEST(Dequantize, Q5_K) {
  std::vector<uint8_t> b = k4_header();
  for (int l = 0; l < 32; ++l) b.push_back(0x01);  // qh: fifth bit of the low nibbles of pair 0
  for (int p = 0; p < 4; ++p)
    for (int l = 0; l < 32; ++l) b.push_back(static_cast<uint8_t>((l % 16) | ((15 - l % 16) << 4)));
  auto y = dequant(GgmlType::Q5_K, b, 256);
  for (int v = 0; v < 256; ++v) EXPECT_EQ(y[v], k4_expected(v, v < 32 ? 16 : 0)) << v;
  EXPECT_EQ(y[0], 16.f);
  EXPECT_EQ(y[33], 27.f);
}

// Q6_K: d = 1, scales j - 8; ql bytes 0x21 (low 1, high 2), qh bytes
// 0b11100100 (quarter s gets high bits s): levels -31, -15, 2, 18 by quarter.
TEST(Dequantize, Q6_K) {
  std::vector<uint8_t> b(210, 0);
  for (int l = 0; l < 128; ++l) b[l] = 0x21;
  for (int l = 0; l < 64; ++l) b[128 + l] = 0xE4;
  for (int j = 0; j < 16; ++j) b[192 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 8));
  put16(b, 208, 0x3C00);
  auto y = dequant(GgmlType::Q6_K, b, 256);
  const int level[4] = {-31, -15, 2, 18};
  for (int v = 0; v < 256; ++v) EXPECT_EQ(y[v], static_cast<float>((v / 16 - 8) * level[(v % 128) / 32])) << v;
  EXPECT_EQ(y[0], 248.f);
  EXPECT_EQ(y[40], 90.f);
  EXPECT_EQ(y[70], -8.f);
  EXPECT_EQ(y[255], 126.f);
}

TEST(Dequantize, Q8_K) {
  std::vector<uint8_t> b(292, 0);
  const float d = 0.5f;
  std::memcpy(&b[0], &d, 4);
  for (int j = 0; j < 256; ++j) b[4 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 128));
  auto y = dequant(GgmlType::Q8_K, b, 256);
  for (int j = 0; j < 256; ++j) EXPECT_EQ(y[j], (j - 128) * 0.5f);
}

// ------------------------------------------------------------ bad input

TEST(BadInput, RowLengthNotMultipleOfBlock) {
  std::vector<uint8_t> buf(1024);
  std::vector<float> out(300);
  try {
    dequantize_row(GgmlType::Q4_K, buf.data(), out.data(), 300);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q4_K"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("300"), std::string::npos) << e.what();
  }
  EXPECT_THROW(quantize_row(GgmlType::Q8_0, out.data(), buf.data(), 33), Error);
  EXPECT_THROW(vec_dot(GgmlType::Q4_0, 48, buf.data(), buf.data()), Error);
  EXPECT_THROW(quantize_activation_row(GgmlType::Q8_K, out.data(), buf.data(), 128), Error);
  EXPECT_THROW(dequantize_row(GgmlType::Q8_0, buf.data(), out.data(), -32), Error);
}

TEST(BadInput, UnsupportedTypesNameTheType) {
  std::vector<uint8_t> buf(1024);
  std::vector<float> out(256);
  try {
    dequantize_row(GgmlType::IQ2_XXS, buf.data(), out.data(), 256);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("iq2_xxs"), std::string::npos) << e.what();
  }
  EXPECT_THROW(quantize_row(GgmlType::IQ4_NL, out.data(), buf.data(), 32), Error);
  EXPECT_THROW(vec_dot_type(GgmlType::TQ1_0), Error);
  EXPECT_THROW(vec_dot(GgmlType::I32, 4, buf.data(), buf.data()), Error);
  EXPECT_THROW(vec_dot(GgmlType::Q8_K, 256, buf.data(), buf.data()), Error);  // an activation type, no weight kernel
  EXPECT_THROW(quantize_activation_row(GgmlType::Q4_0, out.data(), buf.data(), 32), Error);
}

TEST(VecDotType, AsInGgml) {
  EXPECT_EQ(vec_dot_type(GgmlType::F32), GgmlType::F32);
  EXPECT_EQ(vec_dot_type(GgmlType::F16), GgmlType::F16);
  EXPECT_EQ(vec_dot_type(GgmlType::BF16), GgmlType::BF16);
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0}) EXPECT_EQ(vec_dot_type(t), GgmlType::Q8_0);
  for (GgmlType t : {GgmlType::Q4_1, GgmlType::Q5_1}) EXPECT_EQ(vec_dot_type(t), GgmlType::Q8_1);
  for (GgmlType t : {GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K})
    EXPECT_EQ(vec_dot_type(t), GgmlType::Q8_K);
}

}  // namespace
}  // namespace hai
