// Matrix-vector and matrix-matrix throughput of the quant kernels, per weight
// type and kernel level (scalar / avx2 / avx512), 1 and 2 threads.
//
// Shapes like a 0.5B-class model's FFN (hidden 896, FFN 4864); the hidden
// size is rounded up to 1024 in "up" so that the K-quants (blocks of 256) fit:
//   up:   4864 rows x 1024 cols      down: 896 rows x 4864 cols
// The figure to read is bytes_per_second = weight bytes streamed per second
// (decode is bound by it); items_per_second counts multiply-adds.
//
//   build-*/benchmarks/bench_kernels --benchmark_filter='Matvec/q4_K'
//   build-*/benchmarks/bench_kernels --benchmark_filter='GgmlOrder/Prefill64'
//   build-*/benchmarks/bench_kernels --benchmark_filter='GgmlOrder/Decode'
// (GgmlOrder/...: the model's bit-exact tiled kernels, one thread.)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "engine/common/cpu.h"
#include "engine/common/thread_pool.h"
#include "engine/model/ggml_order.h"
#include "engine/quant/kernels.h"
#include "engine/quant/matmul.h"
#include "engine/quant/quant.h"

namespace {

using hai::CpuLevel;
using hai::GgmlType;

struct Weights {
  std::vector<uint8_t> w, act;
};

Weights make(GgmlType t, int64_t rows, int64_t cols, int64_t tokens) {
  Weights m;
  const size_t wrow = hai::row_size(t, cols);
  m.w.resize(wrow * rows);
  std::vector<float> x(static_cast<size_t>(cols));
  uint32_t s = 12345;
  auto next = [&] {
    s = s * 1664525u + 1013904223u;
    return static_cast<float>(static_cast<int32_t>(s >> 8) % 2000 - 1000) / 1000.0f;
  };
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& v : x) v = next();
    hai::quantize_row(t, x.data(), m.w.data() + r * wrow, cols);
  }
  std::vector<float> a(static_cast<size_t>(cols * tokens));
  for (auto& v : a) v = next();
  m.act.resize(hai::activation_row_size(t, cols) * tokens);
  hai::quantize_activations(t, a.data(), tokens, cols, m.act.data());
  return m;
}

void run(benchmark::State& state, GgmlType t, CpuLevel level, int64_t rows, int64_t cols, int64_t tokens) {
  if (static_cast<int>(level) > static_cast<int>(hai::cpu_hardware_level())) {
    state.SkipWithError("CPU lacks this level");
    return;
  }
  const int threads = static_cast<int>(state.range(0));
  hai::ThreadPool pool(threads);
  Weights m = make(t, rows, cols, tokens);
  std::vector<float> out(static_cast<size_t>(rows * tokens));
  const hai::kernels::Table& table = hai::kernels::table(level);
  for (auto _ : state) {
    hai::kernels::matmul_with(table, t, m.w.data(), rows, cols, m.act.data(), tokens, out.data(), &pool);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(m.w.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * rows * cols * tokens);
}

void register_all() {
  const GgmlType types[] = {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::F16,
                            GgmlType::Q5_K, GgmlType::Q3_K, GgmlType::Q2_K, GgmlType::Q4_1, GgmlType::Q5_0,
                            GgmlType::Q5_1, GgmlType::BF16, GgmlType::F32};
  const CpuLevel levels[] = {CpuLevel::kScalar, CpuLevel::kAvx2, CpuLevel::kAvx512};
  struct Shape {
    const char* name;
    int64_t rows, cols, tokens;
  };
  const Shape shapes[] = {{"Matvec/up", 4864, 1024, 1}, {"Matvec/down", 896, 4864, 1}, {"Prefill64/up", 4864, 1024, 64}};
  for (const Shape& sh : shapes) {
    for (GgmlType t : types) {
      for (CpuLevel l : levels) {
        if (sh.tokens > 1 && l == CpuLevel::kScalar) continue;  // minutes per run, adds nothing
        std::string name = std::string(sh.name) + "/" + std::string(hai::type_name(t)) + "/" +
                           std::string(hai::cpu_level_name(l));
        benchmark::RegisterBenchmark(name.c_str(),
                                     [=](benchmark::State& st) { run(st, t, l, sh.rows, sh.cols, sh.tokens); })
            ->Arg(1)
            ->Arg(2)
            ->ArgName("threads")
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
    }
  }
}

// The model's matrix products in the reference's summation order
// (ggml_order::gemm and its paths), one thread: "per-element" is the
// portable kernels one output at a time, "avx2"/"avx512" the SIMD paths.
void run_ggml_order(benchmark::State& state, GgmlType t, int path, int64_t rows, int64_t cols, int64_t tokens) {
  namespace go = hai::model::ggml_order;
  if ((path == 1 && !go::have_avx2()) || (path == 2 && !go::have_avx512())) {
    state.SkipWithError("CPU lacks this level");
    return;
  }
  Weights m = make(t, rows, cols, tokens);
  if (t == GgmlType::F16) {  // F16 weights take F16-rounded floats
    std::vector<float> x(static_cast<size_t>(cols * tokens));
    for (size_t i = 0; i < x.size(); ++i) x[i] = hai::fp16_to_fp32(hai::fp32_to_fp16(0.001f * static_cast<float>(i % 1000)));
    m.act.assign(reinterpret_cast<const uint8_t*>(x.data()), reinterpret_cast<const uint8_t*>(x.data() + x.size()));
  }
  std::vector<float> out(static_cast<size_t>(rows * tokens));
  go::GemmArgs g;
  g.n = cols;
  g.w = m.w.data();
  g.w_stride = hai::row_size(t, cols);
  g.n_rows = rows;
  g.a = m.act.data();
  g.a_stride = m.act.size() / static_cast<size_t>(tokens);
  g.n_tok = tokens;
  g.y = out.data();
  g.ldy = static_cast<size_t>(rows);
  void (*fn)(GgmlType, const go::GemmArgs&) = path == 0 ? go::gemm_portable : path == 1 ? go::gemm_avx2 : go::gemm_avx512;
  for (auto _ : state) {
    fn(t, g);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(m.w.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * rows * cols * tokens);
}

void register_ggml_order() {
  const GgmlType types[] = {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::F16};
  const char* paths[] = {"per-element", "avx2", "avx512"};
  struct Shape {
    const char* name;
    int64_t rows, cols, tokens;
  };
  const Shape shapes[] = {{"GgmlOrder/Matvec/up", 4864, 1024, 1},
                          {"GgmlOrder/Batch8/up", 4864, 1024, 8},
                          {"GgmlOrder/Prefill64/up", 4864, 1024, 64}};
  for (const Shape& sh : shapes)
    for (GgmlType t : types)
      for (int p = 0; p < 3; ++p) {
        if (sh.tokens > 8 && p == 0) continue;  // slow, adds nothing
        std::string name = std::string(sh.name) + "/" + std::string(hai::type_name(t)) + "/" + paths[p];
        benchmark::RegisterBenchmark(name.c_str(),
                                     [=](benchmark::State& st) { run_ggml_order(st, t, p, sh.rows, sh.cols, sh.tokens); })
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
}

// Decode as the model runs it: one token through 64 MiB of weights (twice
// the last-level cache, so they stream from memory) in matrices of the
// model's shapes, with the dispatched single-token products
// (ggml_order::gemm -> gemv_avx512) and the rows split over 1 or 2 threads
// in groups of 8 as model::matmul does. bytes_per_second against
// `hai bench --bandwidth` says how close decode gets to the memory's limit.
// in_cache: one matrix of at most 256 KiB (the same row length, fewer
// rows), read again and again from the L2 cache: the kernel's own speed,
// without the memory's limit.
void run_decode_stream(benchmark::State& state, GgmlType t, bool in_cache) {
  namespace go = hai::model::ggml_order;
  const bool k_quant = t == GgmlType::Q4_K || t == GgmlType::Q6_K;
  const int64_t cols = k_quant ? 4864 : 896;
  const size_t row_bytes = hai::row_size(t, cols);
  const int64_t model_rows = k_quant ? 896 : 4864;
  const int64_t rows = in_cache ? std::max<int64_t>(8, static_cast<int64_t>((size_t(256) << 10) / row_bytes) / 8 * 8)
                                : model_rows;
  const Weights proto = make(t, 64, cols, 1);  // 64 distinct rows, copied over the matrices
  const size_t matrix_bytes = row_bytes * static_cast<size_t>(rows);
  const size_t n_matrices = in_cache ? 1 : ((size_t(64) << 20) + matrix_bytes - 1) / matrix_bytes;
  std::vector<uint8_t> w(matrix_bytes * n_matrices);
  for (size_t r = 0; r < w.size() / row_bytes; ++r)
    std::memcpy(w.data() + r * row_bytes, proto.w.data() + (r * 7 % 64) * row_bytes, row_bytes);
  std::vector<uint8_t> act = proto.act;
  if (t == GgmlType::F16) {  // F16 weights take F16-rounded floats
    std::vector<float> x(static_cast<size_t>(cols));
    for (size_t i = 0; i < x.size(); ++i) x[i] = hai::fp16_to_fp32(hai::fp32_to_fp16(0.001f * static_cast<float>(i % 1000)));
    act.assign(reinterpret_cast<const uint8_t*>(x.data()), reinterpret_cast<const uint8_t*>(x.data() + x.size()));
  }
  hai::ThreadPool pool(static_cast<int>(state.range(0)));
  std::vector<float> out(static_cast<size_t>(rows));
  constexpr int64_t kGroup = 8;
  for (auto _ : state) {
    for (size_t m = 0; m < n_matrices; ++m) {
      pool.parallel_for(0, (rows + kGroup - 1) / kGroup, [&](int64_t g0, int64_t g1) {
        const int64_t r0 = g0 * kGroup, r1 = std::min(rows, g1 * kGroup);
        go::GemmArgs g;
        g.n = cols;
        g.w = w.data() + m * matrix_bytes + static_cast<size_t>(r0) * row_bytes;
        g.w_stride = row_bytes;
        g.n_rows = r1 - r0;
        g.a = act.data();
        g.a_stride = act.size();
        g.n_tok = 1;
        g.y = out.data() + r0;
        g.ldy = static_cast<size_t>(rows);
        go::gemm(t, g);
      });
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(w.size()));
}

void register_decode_stream() {
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::F16}) {
    const std::string name = "GgmlOrder/Decode/" + std::string(hai::type_name(t));
    benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { run_decode_stream(st, t, false); })
        ->Arg(1)
        ->Arg(2)
        ->ArgName("threads")
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::F16}) {
    const std::string name = "GgmlOrder/DecodeInCache/" + std::string(hai::type_name(t));
    benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { run_decode_stream(st, t, true); })
        ->Arg(1)
        ->ArgName("threads")
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
}

// Cost of one empty parallel job: what every matmul pays to wake and join
// the workers.
void BM_ThreadPoolEmptyJob(benchmark::State& state) {
  hai::ThreadPool pool(static_cast<int>(state.range(0)));
  std::atomic<int> sink{0};
  for (auto _ : state) pool.run([&](int ith, int) { sink.fetch_add(ith, std::memory_order_relaxed); });
  benchmark::DoNotOptimize(sink.load());
}
BENCHMARK(BM_ThreadPoolEmptyJob)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  register_all();
  register_ggml_order();
  register_decode_stream();
  benchmark::Initialize(&argc, argv);
  benchmark::AddCustomContext("cpu", std::string(hai::cpu_description()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
