// hai embed -m MODEL.gguf [--normalize] [--pooling mean|cls|last] [-t THREADS] TEXT... | -
//   -> one JSON line per text: {"index":i,"n_tokens":n,"truncated":false,"embedding":[...]}
//
// The model is a BERT-family encoder (pooling from its metadata) or a
// decoder (llama, qwen2, qwen3: pooling from metadata, else mean). With "-"
// the texts are the lines of stdin (a final newline does not start another
// text).
#include <charconv>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/command.h"
#include "engine/common/error.h"
#include "engine/model/embed.h"

namespace {

using hai::Error;
using hai::model::Embedder;
using hai::model::Pooling;

struct EmbedArgs {
  std::string model;
  bool normalize = false;
  std::string pooling;
  int threads = 0;
  std::vector<std::string> texts;
};

std::vector<std::string> stdin_lines() {
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

void run_embed(const EmbedArgs& a) {
  if (a.texts.empty()) throw Error("give the texts to embed, or - to read them from stdin (one per line)");
  std::vector<std::string> texts = a.texts;
  if (texts.size() == 1 && texts[0] == "-") texts = stdin_lines();
  if (a.threads < 0) throw Error("--threads must not be negative, got " + std::to_string(a.threads));

  Embedder::Options o;
  o.n_threads = a.threads;
  o.normalize = a.normalize;
  if (a.pooling == "mean") o.pooling = Pooling::Mean;
  else if (a.pooling == "cls") o.pooling = Pooling::Cls;
  else if (a.pooling == "last") o.pooling = Pooling::Last;
  auto embedder = Embedder::load(a.model, o);

  // One call: the embedder batches the texts itself and names a bad one by
  // its index in `texts`.
  const std::vector<hai::model::Embedding> vecs = embedder->embed(texts);
  std::string out;
  char buf[32];
  for (size_t i = 0; i < vecs.size(); ++i) {
    out += "{\"index\":" + std::to_string(i) + ",\"n_tokens\":" + std::to_string(vecs[i].n_tokens) +
           ",\"truncated\":" + (vecs[i].truncated ? "true" : "false") + ",\"embedding\":[";
    for (size_t j = 0; j < vecs[i].vector.size(); ++j) {
      if (j) out += ',';
      // The shortest text that reads back as the same float.
      const auto r = std::to_chars(buf, buf + sizeof buf, vecs[i].vector[j]);
      out.append(buf, r.ptr);
    }
    out += "]}\n";
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
}

hai::cli::Register reg([](CLI::App& app) {
  auto a = std::make_shared<EmbedArgs>();
  auto* sub = app.add_subcommand("embed", "Embed texts with an embedding model (BERT family) or a decoder; JSON lines out");
  sub->add_option("-m,--model", a->model, "GGUF model")->required();
  sub->add_flag("--normalize", a->normalize, "L2-normalize every vector");
  sub->add_option("--pooling", a->pooling, "Pooling instead of the model's: mean, cls or last")
      ->check(CLI::IsMember({"mean", "cls", "last"}));
  sub->add_option("-t,--threads", a->threads, "Threads (default: all cores)");
  sub->add_option("TEXT", a->texts, "Texts to embed, or - for the lines of stdin");
  sub->callback([a] { run_embed(*a); });
});

}  // namespace
