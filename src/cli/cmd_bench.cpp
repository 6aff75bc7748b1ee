// hai bench: prompt-processing and generation speed of a model, like
// llama-bench's pp/tg tests, plus the memory bandwidth the decode reaches.
//
//   hai bench -m MODEL.gguf [-p 512] [-n 128] [-t THREADS] [-r REPS] [--json] [--bandwidth]
//   hai bench --bandwidth [-t THREADS] [--json]   (the machine's read bandwidth only)
//
// pp: REPS times, a fresh context evaluates p random tokens in one batch.
// tg: REPS times, a fresh context decodes n random tokens one at a time.
// Each test runs once as a warm-up first (it pages the weights in). As in
// llama-bench, every repetition gives a speed (tokens / seconds of that
// repetition) and the figures are the mean and the sample standard deviation
// of those speeds. Creating the context is not timed.
//
// decode_gbps is the bytes of weights one decoded token streams (every tensor
// of the file; the token embedding only when it is also the output matrix)
// times the tg speed: compared with the machine's read bandwidth it says how
// close decoding is to its ceiling.
//
// weights_huge_pages is the share of the model file's resident pages that
// the kernel maps with 2 MiB pages (-1: unknown). Decode streams the weights
// from the file mapping: with 4 KiB pages it reads markedly slower (see
// gguf::File::open), and which pages a file gets depends on how the page
// cache first read it, so the figure explains run-to-run differences.
//
// peak_rss_mb is the process's peak resident set, read before the bandwidth
// measurement (whose 1 GiB buffer would otherwise dominate it). The weights
// are used in place from the file mapping, so it should stay close to the
// file size + the KV cache (kv_cache_mb) + scratch buffers.
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cli/command.h"
#include "engine/common/error.h"
#include "engine/common/membw.h"
#include "engine/model/forward.h"
#include "engine/model/model.h"

namespace {

constexpr double kMiB = 1024.0 * 1024.0;

struct BenchOptions {
  std::string model;
  int pp = 512;
  int tg = 128;
  int threads = 0;
  int reps = 5;
  bool json = false;
  bool bandwidth = false;
  std::string cache_type = "f16";
};

// Mean and sample standard deviation of per-repetition speeds.
struct Speed {
  double mean = 0;
  double stddev = 0;
  std::vector<double> samples;  // tokens per second of each repetition
};

Speed summarize(std::vector<double> samples) {
  Speed s;
  s.samples = std::move(samples);
  const double n = double(s.samples.size());
  if (n == 0) return s;
  for (double x : s.samples) s.mean += x;
  s.mean /= n;
  if (n > 1) {
    double ss = 0;
    for (double x : s.samples) ss += (x - s.mean) * (x - s.mean);
    s.stddev = std::sqrt(ss / (n - 1));
  }
  return s;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

double file_mib(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return double(st.st_size) / kMiB;
}

std::vector<int32_t> random_tokens(int n, int64_t n_vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> dist(0, n_vocab - 1);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = int32_t(dist(rng));
  return t;
}

// Seconds to evaluate `tokens` as one batch in a fresh context.
double time_prefill(const hai::model::Model& m, const std::vector<int32_t>& tokens, int threads,
                    hai::model::KvType kv) {
  hai::model::Context ctx(m, int64_t(tokens.size()) + 1, threads, 1, kv);
  std::vector<float> logits;
  double t0 = now_s();
  ctx.eval(tokens, false, logits);
  return now_s() - t0;
}

// Seconds to decode `tokens` one by one in a fresh context.
double time_decode(const hai::model::Model& m, const std::vector<int32_t>& tokens, int threads,
                   hai::model::KvType kv) {
  hai::model::Context ctx(m, int64_t(tokens.size()) + 1, threads, 1, kv);
  std::vector<float> logits;
  double t0 = now_s();
  for (int32_t t : tokens) ctx.eval({t}, false, logits);
  return now_s() - t0;
}

// Bytes of weights one decoded token reads: all tensors, except the token
// embedding when a separate output matrix exists (then only one row of it is
// read per token).
size_t decode_bytes_per_token(const hai::model::Model& m) {
  size_t bytes = 0;
  for (const auto& t : m.file().tensors()) bytes += t.nbytes;
  const bool tied = m.output.data == m.token_embd.data;
  if (!tied && m.token_embd.info) bytes -= m.token_embd.info->nbytes - m.token_embd.row_bytes;
  return bytes;
}

// Bytes of the KV cache of a context of n_ctx positions (F16 keys and values).
// The cache of n_ctx positions: 2 bytes a value in F16, 34 bytes per 32
// values in Q8_0.
double kv_cache_mib(const hai::model::Hparams& hp, int64_t n_ctx, hai::model::KvType kv) {
  const double bytes_per_value = kv == hai::model::KvType::kQ8_0 ? 34.0 / 32.0 : 2.0;
  return double(hp.n_layer) * double(n_ctx) * double(hp.n_embd_k() + hp.n_embd_v()) * bytes_per_value / kMiB;
}

void print_bandwidth_only(int threads, const hai::BandwidthResult& bw, bool json) {
  if (json) {
    nlohmann::json out;
    out["threads"] = threads;
    out["bandwidth_gbps"] = bw.gb_per_s;
    out["bandwidth_kernel"] = bw.kernel;
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("memory read bandwidth, %d threads: %.1f GB/s (%s loads)\n", threads, bw.gb_per_s, bw.kernel.c_str());
  }
}

void run_bench(const BenchOptions& o) {
  if (o.reps < 1) throw hai::Error("bench: -r/--repetitions must be at least 1, got " + std::to_string(o.reps));
  if (o.pp < 0) throw hai::Error("bench: -p/--n-prompt must not be negative, got " + std::to_string(o.pp));
  if (o.tg < 0) throw hai::Error("bench: -n/--n-gen must not be negative, got " + std::to_string(o.tg));
  if (o.threads < 0) throw hai::Error("bench: -t/--threads must not be negative, got " + std::to_string(o.threads));
  if (o.model.empty() && !o.bandwidth) throw hai::Error("bench: give a model with -m, or --bandwidth");
  if (!o.model.empty() && o.pp == 0 && o.tg == 0) throw hai::Error("bench: -p and -n are both 0: nothing to measure");
  const int threads = o.threads > 0 ? o.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  hai::model::KvType kv;
  try {
    kv = hai::model::kv_type_from_string(o.cache_type);
  } catch (const hai::Error& e) {
    throw hai::Error(std::string("bench: --cache-type: ") + e.what());
  }

  if (o.model.empty()) {
    print_bandwidth_only(threads, hai::measure_read_bandwidth(threads), o.json);
    return;
  }

  const double t_load = now_s();
  auto model = hai::model::Model::load(o.model);
  const double load_s = now_s() - t_load;
  const auto& hp = model->hparams();
  if (hp.n_ctx_train > 0 && std::max(o.pp, o.tg) > hp.n_ctx_train)
    std::fprintf(stderr, "bench: note: %d tokens exceed the model's training context %lld\n", std::max(o.pp, o.tg),
                 (long long)hp.n_ctx_train);
  size_t model_bytes = 0;
  for (const auto& t : model->file().tensors()) model_bytes += t.nbytes;

  Speed pp, tg;
  if (o.pp > 0) {
    auto toks = random_tokens(o.pp, hp.n_vocab, 1);
    time_prefill(*model, toks, threads, kv);  // warm-up: pages in the weights
    std::vector<double> tps;
    for (int r = 0; r < o.reps; ++r) tps.push_back(o.pp / time_prefill(*model, toks, threads, kv));
    pp = summarize(tps);
  }
  if (o.tg > 0) {
    auto toks = random_tokens(o.tg, hp.n_vocab, 2);
    time_decode(*model, std::vector<int32_t>(toks.begin(), toks.begin() + std::min(o.tg, 8)), threads, kv);
    std::vector<double> tps;
    for (int r = 0; r < o.reps; ++r) tps.push_back(o.tg / time_decode(*model, toks, threads, kv));
    tg = summarize(tps);
  }
  const double decode_gbps = double(decode_bytes_per_token(*model)) * tg.mean / 1e9;
  const double rss = peak_rss_mib();  // before the bandwidth buffer exists
  const double huge = model->file().huge_page_share();
  const double kv_mib = kv_cache_mib(hp, int64_t(std::max(o.pp, o.tg)) + 1, kv);
  const hai::BandwidthResult bw_result = o.bandwidth ? hai::measure_read_bandwidth(threads) : hai::BandwidthResult{};
  const double bw = bw_result.gb_per_s;

  nlohmann::json out;
  out["model"] = o.model;
  out["arch"] = hp.arch_name;
  out["threads"] = threads;
  out["repetitions"] = o.reps;
  out["load_s"] = load_s;
  out["pp_tokens"] = o.pp;
  out["pp_tps"] = pp.mean;
  out["pp_tps_stddev"] = pp.stddev;
  out["pp_tps_samples"] = pp.samples;
  out["tg_tokens"] = o.tg;
  out["tg_tps"] = tg.mean;
  out["tg_tps_stddev"] = tg.stddev;
  out["tg_tps_samples"] = tg.samples;
  out["peak_rss_mb"] = rss;
  out["model_mb"] = double(model_bytes) / kMiB;
  out["file_mb"] = file_mib(o.model);
  out["kv_cache_mb"] = kv_mib;
  out["cache_type"] = hai::model::to_string(kv);
  out["decode_gbps"] = decode_gbps;
  out["weights_huge_pages"] = huge;
  if (o.bandwidth) {
    out["bandwidth_gbps"] = bw;
    out["bandwidth_kernel"] = bw_result.kernel;
    out["bandwidth_share"] = bw > 0 ? decode_gbps / bw : 0.0;
  }
  if (o.json) {
    std::printf("%s\n", out.dump().c_str());
    return;
  }

  // A table shaped like llama-bench's.
  std::printf("| model | size | threads | test | t/s |\n|---|---:|---:|---:|---:|\n");
  const double size_mib = double(model_bytes) / kMiB;
  if (o.pp > 0)
    std::printf("| %s | %.2f MiB | %d | pp%d | %.2f ± %.2f |\n", hp.arch_name.c_str(), size_mib, threads, o.pp,
                pp.mean, pp.stddev);
  if (o.tg > 0)
    std::printf("| %s | %.2f MiB | %d | tg%d | %.2f ± %.2f |\n", hp.arch_name.c_str(), size_mib, threads, o.tg,
                tg.mean, tg.stddev);
  std::printf("\n");
  if (o.tg > 0) {
    std::printf("decode reads %.2f GB/s of weights", decode_gbps);
    if (o.bandwidth && bw > 0) std::printf(" = %.0f%% of the measured %.2f GB/s", 100.0 * decode_gbps / bw, bw);
    std::printf("\n");
  }
  std::printf("peak RSS %.1f MiB (file %.1f MiB + KV cache %.1f MiB)\n", rss, file_mib(o.model), kv_mib);
  if (huge >= 0) std::printf("weights mapped with 2 MiB pages: %.0f%% of the resident file\n", 100.0 * huge);
}

hai::cli::Register reg([](CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  auto* sub = app.add_subcommand("bench", "Measure prompt processing (pp) and generation (tg) speed of a model");
  sub->add_option("-m,--model", o->model, "GGUF model file")->check(CLI::ExistingFile);
  sub->add_option("-p,--n-prompt", o->pp, "prompt tokens evaluated in one batch (0: skip)")->capture_default_str();
  sub->add_option("-n,--n-gen", o->tg, "tokens generated one at a time (0: skip)")->capture_default_str();
  sub->add_option("-t,--threads", o->threads, "threads (default: all cores)");
  sub->add_option("--cache-type", o->cache_type, "KV cache storage: f16 or q8_0")->capture_default_str();
  sub->add_option("-r,--repetitions", o->reps, "repetitions of each test (after one warm-up)")->capture_default_str();
  sub->add_flag("--json", o->json, "print one JSON object");
  sub->add_flag("--bandwidth", o->bandwidth,
                "measure the machine's memory read bandwidth (STREAM-style) and the share decode reaches");
  sub->callback([o] { run_bench(*o); });
});

}  // namespace
