// hai rerank -m RERANKER.gguf [--json] [--top-n N] [--token-types segment|zero] [-t THREADS] QUERY DOC... | QUERY -
//
// Scores every document against the query with a cross-encoder (a BERT
// reranker: bert.pooling_type 4 and a classification head) and prints them
// best first (ties keep the input order):
//   text:   SCORE<TAB>INDEX<TAB>DOCUMENT          one line per document
//   --json: [{"index":i,"relevance_score":s,"n_tokens":n,"truncated":false,"document":"..."}, ...]
// INDEX is the document's position in the input (from 0). With "-" the
// documents are the lines of stdin. Scores print as the shortest text that
// reads back as the same float.
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "cli/command.h"
#include "engine/common/error.h"
#include "engine/model/rerank.h"

namespace {

using hai::Error;
using hai::model::Reranker;

struct RerankArgs {
  std::string model;
  bool json = false;
  int top_n = 0;
  int threads = 0;
  std::string token_types = "segment";
  std::vector<std::string> args;  // QUERY DOC...
};

std::string float_text(float v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

void run_rerank(const RerankArgs& a) {
  if (a.args.size() < 2)
    throw Error("give a query and at least one document (or - to read the documents from stdin, one per line)");
  if (a.threads < 0) throw Error("--threads must not be negative, got " + std::to_string(a.threads));
  if (a.top_n < 0) throw Error("--top-n must not be negative, got " + std::to_string(a.top_n));
  const std::string& query = a.args[0];
  std::vector<std::string> docs(a.args.begin() + 1, a.args.end());
  if (docs.size() == 1 && docs[0] == "-") {
    docs.clear();
    std::string line;
    while (std::getline(std::cin, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      docs.push_back(line);
    }
    if (docs.empty()) throw Error("no documents on stdin");
  }

  Reranker::Options o;
  o.n_threads = a.threads;
  o.token_types = a.token_types == "zero" ? hai::model::TokenTypes::Zero : hai::model::TokenTypes::Segment;
  auto reranker = Reranker::load(a.model, o);
  const std::vector<hai::model::RerankScore> scores = reranker->score(query, docs);

  std::vector<size_t> order(docs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return scores[x].score > scores[y].score; });
  if (a.top_n > 0 && static_cast<size_t>(a.top_n) < order.size()) order.resize(static_cast<size_t>(a.top_n));

  std::string out;
  if (a.json) {
    // Scores as numbers with the float's shortest text (not widened to a
    // double's digits).
    out = "[";
    for (size_t k = 0; k < order.size(); ++k) {
      const size_t i = order[k];
      if (k) out += ",";
      out += "{\"index\":" + std::to_string(i) + ",\"relevance_score\":" + float_text(scores[i].score) +
             ",\"n_tokens\":" + std::to_string(scores[i].n_tokens) +
             ",\"truncated\":" + (scores[i].truncated ? "true" : "false") +
             ",\"document\":" + nlohmann::json(docs[i]).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
             "}";
    }
    out += "]\n";
  } else {
    for (size_t i : order) out += float_text(scores[i].score) + "\t" + std::to_string(i) + "\t" + docs[i] + "\n";
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
}

hai::cli::Register reg([](CLI::App& app) {
  auto a = std::make_shared<RerankArgs>();
  auto* sub = app.add_subcommand("rerank", "Score documents against a query with a reranker (cross-encoder), best first");
  sub->add_option("-m,--model", a->model, "GGUF reranker (bert with pooling rank and a cls head)")->required();
  sub->add_flag("--json", a->json, "JSON array out: index, relevance_score, n_tokens, truncated, document");
  sub->add_option("--top-n", a->top_n, "Print only the N best (default: all)");
  sub->add_option("--token-types", a->token_types,
                  "segment (default: query 0, document 1, as Hugging Face) or zero (all 0, as llama.cpp)")
      ->check(CLI::IsMember({"segment", "zero"}));
  sub->add_option("-t,--threads", a->threads, "Threads (default: all cores)");
  sub->add_option("QUERY DOC", a->args, "The query, then the documents (or - for the lines of stdin)");
  sub->callback([a] { run_rerank(*a); });
});

}  // namespace
