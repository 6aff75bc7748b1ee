// Knowledge-base benchmarks: ingest throughput on the shared corpus, and
// search latency (p50/p99) in bm25, dense and hybrid mode on a synthetic
// knowledge base of 100,000 chunks built from the corpus's own sentences.
//
//   bench_kb [--chunks N] [--queries Q] [google-benchmark flags]
//
// Dense vectors come from a stand-in embedder (hashed character bigrams,
// 384 dimensions, like bge-small's width): it costs nothing, so the dense
// and hybrid figures are the retrieval side alone (HNSW + fusion), without
// the time a real embedding model needs for the query.
// The synthetic knowledge base is cached in $TMPDIR/hai_bench_kb2_<N>
// (delete it to rebuild).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "kb/chunker.h"
#include "kb/extract.h"
#include "kb/knowledge_base.h"
#include "kb/text.h"
#include "hash_embed.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::string Corpus() { return std::string(HAI_SHARED_DIR) + "/corpus"; }

// The corpus's sentences (cleaned), as material for synthetic documents.
std::vector<std::string> CorpusSentences() {
  std::vector<std::string> out;
  for (auto& e : fs::directory_iterator(Corpus())) {
    auto ex = hai::kb::ExtractFile(e.path().string());
    for (auto& s : ex.sections) {
      std::u32string u = hai::kb::DecodeUtf8(s.text);
      for (auto [b, en] : hai::kb::SplitSentences(u))
        if (en - b >= 8) out.push_back(hai::kb::EncodeUtf8(u.substr(b, en - b)));
    }
  }
  return out;
}

int64_t g_chunks = 100000;
int g_queries = 500;
std::unique_ptr<hai::kb::KnowledgeBase> g_kb;
std::vector<std::string> g_qs;

void BuildOrOpen() {
  std::string dir = (fs::temp_directory_path() / ("hai_bench_kb2_" + std::to_string(g_chunks))).string();
  auto sentences = CorpusSentences();
  std::mt19937 rng(42);
  bool exists = fs::exists(dir + "/kb/synthetic.sqlite");
  if (!exists) {
    // chunk size 200: ~100,000 chunks from ~50 MB of text.
    hai::kb::KnowledgeBase::Create(dir, "synthetic", {200, 40}, "bench-hashed-bigrams-384");
  }
  g_kb = hai::kb::KnowledgeBase::Open(dir, "synthetic");
  g_kb->AttachEmbedder(hai::bench::HashEmbed);
  if (g_kb->chunk_count() < g_chunks) {
    std::printf("building synthetic knowledge base of %lld chunks in %s ...\n", static_cast<long long>(g_chunks),
                dir.c_str());
    std::uniform_int_distribution<size_t> pick(0, sentences.size() - 1);
    int doc = 0;
    auto t0 = Clock::now();
    int64_t bytes = 0;
    while (g_kb->chunk_count() < g_chunks) {
      std::string text;
      // ~200 chunks per document, paragraphs of 3-6 sentences.
      while (text.size() < 120000) {
        int n = 3 + static_cast<int>(rng() % 4);
        for (int i = 0; i < n; ++i) text += sentences[pick(rng)];
        text += "\n";
      }
      bytes += static_cast<int64_t>(text.size());
      auto r = g_kb->AddBytes("synthetic/doc" + std::to_string(doc++) + ".txt", text);
      if (r.status == hai::kb::AddResult::kFailed) {
        std::fprintf(stderr, "ingest failed: %s\n", r.message.c_str());
        std::exit(1);
      }
    }
    g_kb->Flush();
    double s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("built: %d documents, %lld chunks, %.1f MB in %.1f s (%.2f MB/s)\n", doc,
                static_cast<long long>(g_kb->chunk_count()), bytes / 1e6, s, bytes / 1e6 / s);
  }
  // Queries: fragments of corpus sentences, 4-16 characters, as people type them.
  for (int i = 0; i < g_queries; ++i) {
    std::u32string u = hai::kb::DecodeUtf8(sentences[rng() % sentences.size()]);
    size_t len = std::min<size_t>(u.size(), 4 + rng() % 13);
    size_t start = u.size() > len ? rng() % (u.size() - len) : 0;
    g_qs.push_back(hai::kb::EncodeUtf8(u.substr(start, len)));
  }
}

void LatencyReport(hai::kb::SearchMode mode) {
  std::vector<double> ms;
  hai::kb::SearchOptions o;
  o.top_k = 10;
  o.mode = mode;
  for (auto& q : g_qs) g_kb->Search(q, o);  // warm the page cache
  for (auto& q : g_qs) {
    auto t0 = Clock::now();
    auto hits = g_kb->Search(q, o);
    benchmark::DoNotOptimize(hits);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("%-6s search top-10 on %lld chunks, %zu queries: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
              hai::kb::SearchModeName(mode), static_cast<long long>(g_kb->chunk_count()), ms.size(), ms[ms.size() / 2],
              ms[ms.size() * 9 / 10],
              ms[ms.size() * 99 / 100], ms.back());
}

void IngestCorpus() {
  std::string dir = (fs::temp_directory_path() / ("hai_bench_ingest_" + std::to_string(::getpid()))).string();
  hai::kb::KnowledgeBase::Create(dir, "c");
  auto kb = hai::kb::KnowledgeBase::Open(dir, "c");
  auto t0 = Clock::now();
  auto rs = kb->Add({Corpus()});
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  int64_t bytes = 0;
  for (auto& r : rs) bytes += r.bytes;
  std::printf("ingest of the corpus: %.2f MB in %.3f s = %.2f MB/s (%lld chunks)\n", bytes / 1e6, s, bytes / 1e6 / s,
              static_cast<long long>(kb->chunk_count()));
  kb.reset();
  fs::remove_all(dir);
}

void BM_Search(benchmark::State& state) {
  hai::kb::SearchOptions o;
  o.top_k = 10;
  o.mode = static_cast<hai::kb::SearchMode>(state.range(0));
  state.SetLabel(hai::kb::SearchModeName(o.mode));
  size_t i = 0;
  for (auto _ : state) {
    auto hits = g_kb->Search(g_qs[i++ % g_qs.size()], o);
    benchmark::DoNotOptimize(hits);
  }
}
BENCHMARK(BM_Search)
    ->Arg(static_cast<int>(hai::kb::SearchMode::kBm25))
    ->Arg(static_cast<int>(hai::kb::SearchMode::kDense))
    ->Arg(static_cast<int>(hai::kb::SearchMode::kHybrid))
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--chunks" && i + 1 < argc) {
      g_chunks = std::atoll(argv[++i]);
    } else if (a == "--queries" && i + 1 < argc) {
      g_queries = std::atoi(argv[++i]);
    } else {
      rest.push_back(argv[i]);
    }
  }
  try {
    IngestCorpus();
    BuildOrOpen();
    std::printf("vectors: %lld stored, %lld in the HNSW index\n", static_cast<long long>(g_kb->VectorCount()),
                static_cast<long long>(g_kb->DenseIndexSize()));
    for (auto m : {hai::kb::SearchMode::kBm25, hai::kb::SearchMode::kDense, hai::kb::SearchMode::kHybrid})
      LatencyReport(m);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
