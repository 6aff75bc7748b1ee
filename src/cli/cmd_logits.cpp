// hai logits -m MODEL.gguf --prompt-file FILE [--top 5] [--last-logits-dir DIR] [-t THREADS] [-c CTX]
//
// For each line of FILE (a literal \n stands for a newline): the prompt's
// tokens, the top logits after every prompt token, the logits after the last
// one (written to DIR/M.K.last_logits.f32) and a greedy continuation of 32
// tokens, as one JSON list in the format of shared/fixtures/reference/M.json.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "cli/command.h"
#include "engine/common/error.h"
#include "engine/model/forward.h"
#include "engine/model/logits_report.h"
#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"

namespace hai::cli {
namespace {

struct LogitsArgs {
  std::string model;
  std::string prompt_file;
  int top = 5;
  std::string last_logits_dir;
  int threads = 0;
  int64_t ctx = 0;
  int greedy = 32;
};

void run_logits(const LogitsArgs& a) {
  auto model = model::Model::load(a.model);
  auto tokenizer = Tokenizer::from_gguf(model->file());
  if (a.top < 1) throw Error("--top must be at least 1, got " + std::to_string(a.top));
  const std::vector<std::string> prompts = model::read_prompt_file(a.prompt_file);
  if (prompts.empty()) throw Error(a.prompt_file + ": no prompts in the file");

  // Tokenize everything first, so that a bad line fails before any output.
  std::vector<std::vector<int32_t>> tokens;
  int64_t longest = 0;
  for (size_t k = 0; k < prompts.size(); ++k) {
    if (prompts[k].empty()) throw Error(a.prompt_file + ": line " + std::to_string(k + 1) + " is an empty prompt");
    try {
      tokens.push_back(tokenizer->encode(prompts[k], /*add_special=*/true, /*parse_special=*/true));
    } catch (const Error& e) {
      throw Error(a.prompt_file + ": line " + std::to_string(k + 1) + ": " + e.what());
    }
    if (tokens.back().empty()) throw Error(a.prompt_file + ": line " + std::to_string(k + 1) + " gives no tokens");
    longest = std::max<int64_t>(longest, static_cast<int64_t>(tokens.back().size()));
  }
  const int64_t n_ctx = a.ctx > 0 ? a.ctx : model->hparams().n_ctx_train;
  for (size_t k = 0; k < tokens.size(); ++k)
    if (static_cast<int64_t>(tokens[k].size()) + a.greedy - 1 > n_ctx)
      throw Error(a.prompt_file + ": line " + std::to_string(k + 1) + ": prompt of " +
                  std::to_string(tokens[k].size()) + " tokens plus " + std::to_string(a.greedy) +
                  " generated is longer than the context of " + std::to_string(n_ctx) + " tokens");
  const int threads = a.threads > 0 ? a.threads : std::max(1u, std::thread::hardware_concurrency());
  model::Context ctx(*model, std::min<int64_t>(n_ctx, longest + a.greedy), threads);

  if (!a.last_logits_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(a.last_logits_dir, ec);
    if (ec) throw Error(a.last_logits_dir + ": cannot create directory: " + ec.message());
  }
  const std::string stem = model::model_stem(a.model);
  std::string out = "[\n";
  for (size_t k = 0; k < prompts.size(); ++k) {
    model::PromptReport r = model::run_prompt(ctx, tokens[k], a.top, a.greedy, tokenizer.get());
    r.prompt = prompts[k];
    r.last_logits_file = stem + "." + std::to_string(k) + ".last_logits.f32";
    if (!a.last_logits_dir.empty()) model::write_f32_file(a.last_logits_dir + "/" + r.last_logits_file, r.last_logits);
    if (k) out += ",\n";
    out += model::to_json(r, a.top);
  }
  out += "\n]\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

Register reg([](CLI::App& app) {
  auto* sub = app.add_subcommand("logits", "Top logits, last logits and a greedy continuation for each prompt (JSON)");
  auto a = std::make_shared<LogitsArgs>();
  sub->add_option("-m,--model", a->model, "GGUF model file")->required();
  sub->add_option("--prompt-file", a->prompt_file, "one prompt per line; a literal \\n stands for a newline")
      ->required();
  sub->add_option("--top", a->top, "how many of the largest logits to list per position")->capture_default_str();
  sub->add_option("--last-logits-dir", a->last_logits_dir, "write the last logits of each prompt here (f32 LE)");
  sub->add_option("-t,--threads", a->threads, "threads (default: all cores)");
  sub->add_option("-c,--ctx-size", a->ctx, "context size (default: the model's)");
  sub->callback([a] { run_logits(*a); });
});

}  // namespace
}  // namespace hai::cli
