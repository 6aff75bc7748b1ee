// Shared by the single-token matrix product tests (test_gemv*.cpp): random
// matrices of every ggml-order type placed right before an unreadable page,
// so that a kernel reading past the end of its rows crashes the test, and a
// bit-for-bit comparison of one path against the portable kernels.
#pragma once

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/model/ggml_order.h"
#include "engine/quant/quant.h"

namespace hai::model::test {

// `bytes` of memory whose last byte is followed by a PROT_NONE page.
class GuardedBuffer {
 public:
  explicit GuardedBuffer(size_t bytes) : bytes_(bytes) {
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    map_bytes_ = (bytes + page - 1) / page * page + page;
    void* p = ::mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
    base_ = static_cast<uint8_t*>(p);
    ::mprotect(base_ + map_bytes_ - page, page, PROT_NONE);
    data_ = base_ + map_bytes_ - page - bytes;
  }
  ~GuardedBuffer() { ::munmap(base_, map_bytes_); }
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;
  uint8_t* data() { return data_; }
  size_t size() const { return bytes_; }

 private:
  size_t bytes_ = 0, map_bytes_ = 0;
  uint8_t* base_ = nullptr;
  uint8_t* data_ = nullptr;
};

// A weight matrix (rows of `type`, `stride` bytes apart) and one activation
// row as matmul prepares it (F16-rounded floats for F16, else a row of
// vec_dot_type(type)).
struct Problem {
  GgmlType type;
  int64_t n = 0, rows = 0;
  size_t stride = 0;
  std::unique_ptr<GuardedBuffer> w, a;
};

inline Problem make_problem(GgmlType type, int64_t n, int64_t rows, uint32_t seed, size_t extra_stride = 0,
                            bool raw_activations = false) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Problem p;
  p.type = type;
  p.n = n;
  p.rows = rows;
  const size_t row_bytes = row_size(type, n);
  p.stride = row_bytes + extra_stride;
  p.w = std::make_unique<GuardedBuffer>(p.stride * (rows - 1) + row_bytes);
  std::memset(p.w->data(), 0xA5, p.w->size());  // the gaps between strided rows
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t r = 0; r < rows; ++r) {
    // Rows of different magnitudes, some with outliers, so scales and levels vary.
    const float scale = std::exp(nd(rng));
    for (auto& v : x) v = nd(rng) * scale;
    if (r % 3 == 1) x[static_cast<size_t>(rng() % n)] *= 40.0f;
    quantize_row(type, x.data(), p.w->data() + p.stride * r, n);
  }
  for (auto& v : x) v = nd(rng) * 3.0f;
  if (type == GgmlType::F16) {
    p.a = std::make_unique<GuardedBuffer>(sizeof(float) * n);
    float* xa = reinterpret_cast<float*>(p.a->data());
    for (int64_t j = 0; j < n; ++j) xa[j] = fp16_to_fp32(fp32_to_fp16(x[j]));
  } else {
    const GgmlType act = vec_dot_type(type);
    p.a = std::make_unique<GuardedBuffer>(row_size(act, n));
    quantize_activation_row(act, x.data(), p.a->data(), n);
    if (raw_activations && act == GgmlType::Q8_0) {
      // Any int8 value, -128 included (the integer parts' extremes).
      for (int64_t b = 0; b < n / 32; ++b)
        for (int j = 0; j < 32; ++j) p.a->data()[34 * b + 2 + j] = static_cast<uint8_t>(rng());
    }
  }
  return p;
}

inline ggml_order::GemmArgs args(Problem& p, float* y) {
  ggml_order::GemmArgs g;
  g.n = p.n;
  g.w = p.w->data();
  g.w_stride = p.stride;
  g.n_rows = p.rows;
  g.a = p.a->data();
  g.a_stride = p.a->size();
  g.n_tok = 1;
  g.y = y;
  g.ldy = static_cast<size_t>(p.rows);
  return g;
}

// The row lengths to try for a type: its minimum, odd and even block
// counts, and the shapes of a 0.5B-class model.
inline std::vector<int64_t> lengths(GgmlType type) {
  switch (type) {
    case GgmlType::F16: return {16, 32, 48, 80, 896, 4864};
    case GgmlType::Q4_K:
    case GgmlType::Q6_K: return {256, 512, 768, 4864};
    default: return {32, 64, 96, 160, 896, 4864, 4896};
  }
}

inline const std::vector<GgmlType>& gemm_types() {
  static const std::vector<GgmlType> t = {GgmlType::F16,  GgmlType::Q8_0, GgmlType::Q5_0,
                                          GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K};
  return t;
}

inline const std::vector<int64_t>& row_counts() {
  static const std::vector<int64_t> r = {1, 2, 3, 7, 8, 9, 17, 37};
  return r;
}

// Every output of `run` (filling y for one token) equals the portable
// kernel's, bit for bit. Returns the number of outputs compared.
template <typename Run>
int64_t expect_bits_equal_portable(Problem& p, Run&& run, const std::string& what) {
  std::vector<float> want(static_cast<size_t>(p.rows), -1.0f), got(static_cast<size_t>(p.rows), -2.0f);
  ggml_order::gemm_portable(p.type, args(p, want.data()));
  run(args(p, got.data()));
  for (int64_t r = 0; r < p.rows; ++r) {
    uint32_t wb, gb;
    std::memcpy(&wb, &want[r], 4);
    std::memcpy(&gb, &got[r], 4);
    EXPECT_EQ(wb, gb) << what << " " << type_name(p.type) << " n=" << p.n << " rows=" << p.rows << " row " << r
                      << ": " << want[r] << " vs " << got[r];
    if (wb != gb) return r;
  }
  return p.rows;
}

// For a test run under a forced HAI_CPU level: ggml_order::gemm on one
// token, every type, its row lengths and 1, 8, 9, 17 rows, bit-compared with
// the portable kernels. Returns the number of outputs compared.
inline int64_t expect_forced_gemm_equals_portable(const std::string& what) {
  uint32_t seed = 7;
  int64_t compared = 0;
  for (GgmlType type : gemm_types())
    for (int64_t n : lengths(type))
      for (int64_t rows : {int64_t(1), int64_t(8), int64_t(9), int64_t(17)}) {
        auto p = make_problem(type, n, rows, seed++);
        compared += expect_bits_equal_portable(
            p, [&](const ggml_order::GemmArgs& g) { ggml_order::gemm(type, g); }, what);
      }
  return compared;
}

}  // namespace hai::model::test
