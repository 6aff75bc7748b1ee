// hai run -m MODEL.gguf -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P]
//         [--repeat-penalty R] [--seed S] [-t THREADS] [-c CTX]
//         [--grammar FILE.gbnf | --json-schema FILE.json]
//
// Generates a continuation of PROMPT and prints it to stdout as it is made;
// stops at an end-of-generation token, after N tokens or when the context is
// full. Speeds go to stderr. With --grammar or --json-schema every token is
// chosen among those the grammar allows (grammar.h), and generation also
// stops when the grammar is finished (no further byte could be accepted).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "cli/command.h"
#include "engine/common/error.h"
#include "engine/grammar/grammar.h"
#include "engine/model/forward.h"
#include "engine/model/model.h"
#include "engine/model/sampler.h"
#include "engine/tokenizer/tokenizer.h"
#include <nlohmann/json.hpp>

namespace hai::cli {
namespace {

struct RunArgs {
  std::string model;
  std::string prompt;
  int n_predict = 128;
  model::SamplerParams sampling;
  bool seed_given = false;
  int threads = 0;
  int64_t ctx = 0;
  std::string grammar_file;
  std::string json_schema_file;
  std::string cache_type = "f16";
};

std::string read_text_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(std::string("cannot read the ") + what + " file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The grammar asked for on the command line, or null.
std::shared_ptr<const grammar::Grammar> load_grammar(const RunArgs& a) {
  if (!a.grammar_file.empty() && !a.json_schema_file.empty())
    throw Error("--grammar and --json-schema cannot be used together");
  if (!a.grammar_file.empty()) {
    const std::string text = read_text_file(a.grammar_file, "grammar");
    try {
      return grammar::Grammar::parse_gbnf(text);
    } catch (const Error& e) {
      throw Error(a.grammar_file + ": " + e.what());
    }
  }
  if (!a.json_schema_file.empty()) {
    const std::string text = read_text_file(a.json_schema_file, "JSON schema");
    nlohmann::ordered_json schema;
    try {
      schema = nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw Error(a.json_schema_file + ": malformed JSON: " + e.what());
    }
    try {
      return grammar::Grammar::from_json_schema(schema);
    } catch (const Error& e) {
      throw Error(a.json_schema_file + ": " + e.what());
    }
  }
  return nullptr;
}

// The most likely allowed token: used when the sampler, by rounding, lands
// on a token the grammar masked out. -1 if none is allowed.
int32_t best_allowed(const float* logits, int64_t n_vocab) {
  int32_t best = -1;
  for (int64_t i = 0; i < n_vocab; ++i)
    if (!std::isinf(logits[i]) && (best < 0 || logits[i] > logits[best])) best = static_cast<int32_t>(i);
  return best;
}

// Offset of the first byte that is not valid UTF-8, or npos.
size_t invalid_utf8_at(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > s.size()) return i;
    for (size_t k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string::npos;
}

void run_generate(const RunArgs& a) {
  if (a.prompt.empty()) throw Error("the prompt (-p) is empty");
  if (size_t bad = invalid_utf8_at(a.prompt); bad != std::string::npos)
    throw Error("the prompt (-p) is not valid UTF-8 (byte " + std::to_string(bad) + ")");
  if (a.n_predict < 0) throw Error("-n must not be negative, got " + std::to_string(a.n_predict));
  if (a.threads < 0) throw Error("-t must be positive, got " + std::to_string(a.threads));
  if (a.ctx < 0) throw Error("-c must be positive, got " + std::to_string(a.ctx));
  model::SamplerParams sp = a.sampling;
  if (!a.seed_given) sp.seed = std::random_device{}();
  model::validate(sp);
  const auto grammar = load_grammar(a);

  auto model = model::Model::load(a.model);
  auto tokenizer = Tokenizer::from_gguf(model->file());
  const std::vector<int32_t> prompt = tokenizer->encode(a.prompt, /*add_special=*/true, /*parse_special=*/true);
  if (prompt.empty()) throw Error("the prompt gives no tokens");
  const int64_t n_ctx = a.ctx > 0 ? a.ctx : std::min<int64_t>(model->hparams().n_ctx_train, 4096);
  if (static_cast<int64_t>(prompt.size()) > n_ctx)
    throw Error("the prompt has " + std::to_string(prompt.size()) + " tokens, more than the context of " +
                std::to_string(n_ctx) + " tokens (-c)");
  const int threads = a.threads > 0 ? a.threads : std::max(1u, std::thread::hardware_concurrency());
  model::KvType kv;
  try {
    kv = model::kv_type_from_string(a.cache_type);
  } catch (const Error& e) {
    throw Error(std::string("--cache-type: ") + e.what());
  }
  model::Context ctx(*model, n_ctx, threads, 1, kv);
  model::Sampler sampler(sp);
  for (int32_t t : prompt) sampler.accept(t);
  std::unique_ptr<grammar::Matcher> matcher;
  if (grammar) matcher = std::make_unique<grammar::Matcher>(grammar, *tokenizer);

  using clock = std::chrono::steady_clock;
  std::vector<float> logits;
  const auto t0 = clock::now();
  ctx.eval(prompt, /*all_logits=*/false, logits);
  const auto t1 = clock::now();
  int generated = 0;
  const int64_t n_vocab = model->hparams().n_vocab;
  const char* stop = "length";
  for (;;) {
    if (generated >= a.n_predict) break;
    int32_t next;
    if (matcher) {
      matcher->mask_logits(logits.data());
      next = sampler.sample(logits.data(), n_vocab);
      if (!matcher->allows(next)) next = best_allowed(logits.data(), n_vocab);
      if (next < 0) {
        stop = "grammar allows no token";
        break;
      }
      matcher->accept(next);
    } else {
      next = sampler.sample(logits.data(), n_vocab);
    }
    if (tokenizer->is_eog(next)) {
      stop = "end of generation";
      break;
    }
    const std::string piece = tokenizer->token_to_piece(next, /*render_special=*/false);
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    sampler.accept(next);
    ++generated;
    if (matcher && matcher->is_finished()) {
      stop = "grammar complete";
      break;
    }
    if (generated >= a.n_predict) break;
    if (ctx.n_past() >= ctx.n_ctx()) {
      stop = "context full";
      break;
    }
    ctx.eval({next}, /*all_logits=*/false, logits);
  }
  const auto t2 = clock::now();
  std::fputc('\n', stdout);
  std::fflush(stdout);
  const double pp_s = std::chrono::duration<double>(t1 - t0).count();
  const double tg_s = std::chrono::duration<double>(t2 - t1).count();
  std::fprintf(stderr, "hai: prompt %zu tokens in %.3f s (%.1f tok/s); generated %d tokens in %.3f s (%.1f tok/s); stop: %s\n",
               prompt.size(), pp_s, pp_s > 0 ? prompt.size() / pp_s : 0.0, generated, tg_s,
               tg_s > 0 ? generated / tg_s : 0.0, stop);
}

Register reg([](CLI::App& app) {
  auto* sub = app.add_subcommand("run", "Generate text from a prompt with a local GGUF model");
  auto a = std::make_shared<RunArgs>();
  sub->add_option("-m,--model", a->model, "GGUF model file")->required();
  sub->add_option("-p,--prompt", a->prompt, "the prompt")->required();
  sub->add_option("-n,--n-predict", a->n_predict, "tokens to generate at most")->capture_default_str();
  sub->add_option("--temp", a->sampling.temperature, "temperature (0 = greedy)")->capture_default_str();
  sub->add_option("--top-k", a->sampling.top_k, "top-k (0 = off)")->capture_default_str();
  sub->add_option("--top-p", a->sampling.top_p, "top-p in (0, 1] (1 = off)")->capture_default_str();
  sub->add_option("--min-p", a->sampling.min_p, "min-p in [0, 1] (0 = off)")->capture_default_str();
  sub->add_option("--repeat-penalty", a->sampling.repeat_penalty, "repetition penalty (1 = off)")
      ->capture_default_str();
  sub->add_option("--repeat-last-n", a->sampling.penalty_last_n, "tokens of history for the penalties")
      ->capture_default_str();
  sub->add_option("--frequency-penalty", a->sampling.frequency_penalty, "frequency penalty")->capture_default_str();
  sub->add_option("--presence-penalty", a->sampling.presence_penalty, "presence penalty")->capture_default_str();
  sub->add_option("--seed", a->sampling.seed, "random seed (default: random)")
      ->each([a](const std::string&) { a->seed_given = true; });
  sub->add_option("-t,--threads", a->threads, "threads (default: all cores)");
  sub->add_option("-c,--ctx-size", a->ctx, "context size (default: the model's, at most 4096)");
  sub->add_option("--cache-type", a->cache_type, "KV cache storage: f16 (as llama.cpp) or q8_0 (half the memory)")
      ->capture_default_str();
  sub->add_option("--grammar", a->grammar_file, "constrain the output to a GBNF grammar (file)");
  sub->add_option("--json-schema", a->json_schema_file, "constrain the output to JSON valid under a schema (file)");
  sub->callback([a] { run_generate(*a); });
});

}  // namespace
}  // namespace hai::cli
