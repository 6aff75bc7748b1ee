// Retrieval evaluation of the knowledge base on the shared corpus.
//
//   bench_kb_eval [--corpus DIR] [--questions FILE] [--top 5] [--chunk-size N] [--overlap N]
//                 [--mode bm25|dense|hybrid|all] [--embed-model FILE.gguf|hash] [--verbose] [--verbose-all]
//
// --mode all (the default) reports every mode the knowledge base supports:
// bm25 alone without --embed-model. --embed-model hash uses a stand-in
// embedder (hashed character bigrams): it exercises the dense and hybrid
// code paths, but its vectors carry only lexical overlap, not meaning.
// Ingests the corpus into a fresh knowledge base (reporting MB/s), asks each
// question of benchmarks/kb_eval/questions.jsonl, and reports recall@1,
// recall@5 and MRR per kind (direct / paraphrase) and split (dev /
// heldout), plus the median chunk length. A hit is relevant when it comes
// from the question's document and contains the answer substring (compared
// after NFKC with white space removed, so chunking does not matter).
// --verbose lists the misses of the dev split (the one methods are tuned on);
// --verbose-all lists those of every split.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kb/analyzer.h"
#include "kb/knowledge_base.h"
#include "kb/llm.h"
#include "kb/text.h"
#include "hash_embed.h"

namespace {

std::string Norm(const std::string& s) {
  std::string n = hai::kb::Nfkc(s), out;
  for (char c : n)
    if (c != ' ' && c != '\n' && c != '\t' && c != '\r' && c != '\f') out += c;
  return out;
}

// The stand-in embedder of --embed-model hash.

struct Tally {
  int n = 0, r1 = 0, r5 = 0;
  double rr = 0;
  void Add(int rank) {  // 1-based; 0 = not found
    ++n;
    r1 += rank == 1;
    r5 += rank >= 1 && rank <= 5;
    rr += rank ? 1.0 / rank : 0.0;
  }
  void Print(const std::string& label) const {
    if (!n) return;
    std::printf("%-22s n=%-3d recall@1=%.3f recall@5=%.3f MRR=%.3f\n", label.c_str(), n, double(r1) / n,
                double(r5) / n, rr / n);
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string corpus = std::string(HAI_SHARED_DIR) + "/corpus";
  std::string questions = std::string(HAI_SOURCE_DIR) + "/benchmarks/kb_eval/questions.jsonl";
  int top = 5;
  bool verbose = false, verbose_all = false;
  std::string mode_arg = "all", embed_model;
  hai::kb::ChunkerOptions chunking;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--corpus" && i + 1 < argc) {
      corpus = argv[++i];
    } else if (a == "--questions" && i + 1 < argc) {
      questions = argv[++i];
    } else if (a == "--top" && i + 1 < argc) {
      top = std::atoi(argv[++i]);
    } else if (a == "--chunk-size" && i + 1 < argc) {
      chunking.size = std::atoi(argv[++i]);
    } else if (a == "--overlap" && i + 1 < argc) {
      chunking.overlap = std::atoi(argv[++i]);
    } else if (a == "--mode" && i + 1 < argc) {
      mode_arg = argv[++i];
    } else if (a == "--embed-model" && i + 1 < argc) {
      embed_model = argv[++i];
    } else if (a == "--verbose") {
      verbose = true;
    } else if (a == "--verbose-all") {
      verbose = verbose_all = true;
    } else {
      std::fprintf(stderr, "usage: %s [--corpus DIR] [--questions FILE] [--top K] [--chunk-size N] [--overlap N] [--mode bm25|dense|hybrid|all] [--embed-model FILE|hash] [--verbose] [--verbose-all]\n", argv[0]);
      return 2;
    }
  }
  namespace fs = std::filesystem;
  std::string dir = fs::temp_directory_path() / ("hai_kb_eval_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  try {
    hai::kb::KnowledgeBase::Create(dir, "eval", chunking, embed_model);
    auto kb = hai::kb::KnowledgeBase::Open(dir, "eval");  // loads the dictionary: not part of ingest time
    if (embed_model == "hash") {
      kb->AttachEmbedder(hai::bench::HashEmbed);
    } else if (!embed_model.empty()) {
      kb->AttachEmbedder(hai::kb::LoadEmbedder(embed_model));
    }
    hai::kb::Analyzer analyzer;  // to show the query terms of misses
    analyzer.LoadDefaultSynonyms();
    std::vector<hai::kb::SearchMode> modes;
    if (mode_arg == "all") {
      modes.push_back(hai::kb::SearchMode::kBm25);
      if (!embed_model.empty()) {
        modes.push_back(hai::kb::SearchMode::kDense);
        modes.push_back(hai::kb::SearchMode::kHybrid);
      }
    } else {
      modes.push_back(hai::kb::ParseSearchMode(mode_arg));
    }
    auto t0 = std::chrono::steady_clock::now();
    auto results = kb->Add({corpus});
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int64_t bytes = 0, chunks = 0;
    for (auto& r : results) {
      bytes += r.bytes;
      chunks += r.chunks;
      if (r.status == hai::kb::AddResult::kFailed) std::fprintf(stderr, "failed: %s: %s\n", r.path.c_str(), r.message.c_str());
    }
    std::printf("ingest: %zu files, %.2f MB, %lld chunks in %.3f s = %.2f MB/s\n", results.size(), bytes / 1e6,
                static_cast<long long>(chunks), secs, bytes / 1e6 / secs);
    // Median chunk length (code points).
    {
      std::vector<int64_t> lens = kb->ChunkLengths();
      std::sort(lens.begin(), lens.end());
      if (!lens.empty())
        std::printf("chunks: %zu, median %lld chars, p90 %lld chars\n", lens.size(),
                    static_cast<long long>(lens[lens.size() / 2]), static_cast<long long>(lens[lens.size() * 9 / 10]));
    }
    for (auto mode : modes) {
    std::printf("--- mode %s\n", hai::kb::SearchModeName(mode));
    std::ifstream in(questions);
    if (!in) {
      std::fprintf(stderr, "cannot read %s\n", questions.c_str());
      return 1;
    }
    std::map<std::string, Tally> tallies;
    std::string line;
    std::vector<double> lat_ms;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      auto q = nlohmann::json::parse(line);
      hai::kb::SearchOptions o;
      o.top_k = top;
      o.mode = mode;
      auto s0 = std::chrono::steady_clock::now();
      auto hits = kb->Search(q["question"].get<std::string>(), o);
      lat_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s0).count());
      std::string want = Norm(q["answer"].get<std::string>());
      int rank = 0;
      for (size_t i = 0; i < hits.size() && !rank; ++i)
        if (hits[i].doc == q["doc"].get<std::string>() && Norm(hits[i].text).find(want) != std::string::npos)
          rank = static_cast<int>(i) + 1;
      std::string kind = q["kind"], split = q.value("split", "dev");
      tallies["all"].Add(rank);
      tallies[kind].Add(rank);
      tallies[kind + "/" + split].Add(rank);
      // Misses are listed for the tuning split only, so that held-out
      // questions stay unseen while methods are tuned (--verbose-all lists all).
      if (verbose && rank != 1 && (verbose_all || split == "dev")) {
        std::printf("  #%d %s rank=%d: %s\n", q["id"].get<int>(), kind.c_str(), rank,
                    q["question"].get<std::string>().c_str());
        std::string terms;
        for (auto& [t, w] : analyzer.QueryTerms(q["question"].get<std::string>()))
          terms += " " + t + (w == 1.0 ? "" : ":" + std::to_string(w).substr(0, 4));
        std::printf("      terms:%s\n", terms.c_str());
        if (!hits.empty())
          std::printf("      top: %s %s\n", hits[0].doc.c_str(),
                      hai::kb::EncodeUtf8(hai::kb::DecodeUtf8(hits[0].text).substr(0, 60)).c_str());
      }
    }
    for (auto& [label, t] : tallies) t.Print(label);
    std::sort(lat_ms.begin(), lat_ms.end());
    if (!lat_ms.empty())
      std::printf("search latency on the corpus: p50 %.2f ms, max %.2f ms\n", lat_ms[lat_ms.size() / 2], lat_ms.back());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    fs::remove_all(dir);
    return 1;
  }
  fs::remove_all(dir);
  return 0;
}
