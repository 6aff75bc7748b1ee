// hai template: render a chat template with a JSON context.
//
//   hai template (--template FILE | -m MODEL.gguf) [--messages FILE.json|-] [--add-generation-prompt]
//                [--bos TEXT] [--eos TEXT] [--now UNIX_SECONDS] [--jsonl]
//
// The context is a JSON object {messages, tools, add_generation_prompt,
// bos_token, eos_token, ...} or just the messages array (no --messages: an
// empty chat). Missing bos_token/eos_token come from the model's vocabulary,
// a missing add_generation_prompt is false. With --jsonl the
// input holds one context per line and each result is printed as one JSON
// line: {"text": "..."} or {"error": "..."} (a template error does not stop
// the batch; a malformed input line does).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/command.h"
#include "engine/chat/template.h"
#include "engine/common/error.h"
#include "engine/gguf/gguf.h"

namespace {

struct Options {
  std::string template_file;
  std::string model;
  std::string messages;
  bool add_generation_prompt = false;
  std::string bos, eos;
  bool bos_set = false, eos_set = false;
  int64_t now = -1;
  bool jsonl = false;
};

std::string read_input(const std::string& path) {
  if (path == "-") {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    return ss.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw hai::Error(path + ": cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw hai::Error(path + ": read error");
  return ss.str();
}

std::string token_text(const hai::gguf::File& f, const char* id_key) {
  const hai::gguf::Value* id = f.find(id_key);
  const hai::gguf::Value* tokens = f.find("tokenizer.ggml.tokens");
  if (!id || !tokens || !tokens->is_array()) return "";
  int64_t k = id->as_int(id_key);
  const auto& arr = tokens->as_array("tokenizer.ggml.tokens");
  if (k < 0 || size_t(k) >= arr.size()) {
    throw hai::Error(f.path() + ": " + id_key + " = " + std::to_string(k) + " is outside the vocabulary");
  }
  return arr[size_t(k)].as_string("tokenizer.ggml.tokens");
}

nlohmann::ordered_json parse_context(const std::string& text, const std::string& where) {
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw hai::Error(where + ": malformed JSON: " + e.what());
  }
  if (j.is_array()) {
    nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
    ctx["messages"] = std::move(j);
    return ctx;
  }
  if (!j.is_object()) {
    throw hai::Error(where + ": the context must be a JSON object or an array of messages, got " +
                     std::string(j.type_name()));
  }
  if (j.contains("messages") && !j["messages"].is_array()) {
    throw hai::Error(where + ": \"messages\" must be an array");
  }
  return j;
}

void run(const Options& o) {
  std::string source, name;
  std::string bos = o.bos, eos = o.eos;
  bool have_bos = o.bos_set, have_eos = o.eos_set;
  if (!o.template_file.empty()) {
    source = read_input(o.template_file);
    name = o.template_file;
  } else {
    hai::gguf::File f = hai::gguf::File::open(o.model);
    const hai::gguf::Value* t = f.find("tokenizer.chat_template");
    if (t) {
      source = t->as_string("tokenizer.chat_template");
      name = o.model + ":tokenizer.chat_template";
    } else {
      std::fprintf(stderr, "hai: note: %s has no tokenizer.chat_template; using ChatML\n", o.model.c_str());
      source = hai::chat::kChatMlTemplate;
      name = "chatml";
    }
    if (!have_bos) {
      bos = token_text(f, "tokenizer.ggml.bos_token_id");
      have_bos = true;
    }
    if (!have_eos) {
      eos = token_text(f, "tokenizer.ggml.eos_token_id");
      have_eos = true;
    }
  }
  hai::chat::Template tmpl(source, name);
  hai::chat::RenderOptions ropts;
  ropts.now = o.now;

  auto complete = [&](nlohmann::ordered_json& ctx) {
    if (!ctx.contains("messages")) ctx["messages"] = nlohmann::ordered_json::array();
    if (o.add_generation_prompt) ctx["add_generation_prompt"] = true;
    else if (!ctx.contains("add_generation_prompt")) ctx["add_generation_prompt"] = false;
    if (have_bos && (o.bos_set || !ctx.contains("bos_token"))) ctx["bos_token"] = bos;
    if (have_eos && (o.eos_set || !ctx.contains("eos_token"))) ctx["eos_token"] = eos;
  };

  std::string input = o.messages.empty() ? (o.jsonl ? read_input("-") : "{}") : read_input(o.messages);
  std::string where = o.messages.empty() || o.messages == "-" ? "<stdin>" : o.messages;
  if (!o.jsonl) {
    nlohmann::ordered_json ctx = parse_context(input, where);
    complete(ctx);
    std::string out = tmpl.render(ctx, ropts);
    std::fwrite(out.data(), 1, out.size(), stdout);
    return;
  }
  std::istringstream lines(input);
  std::string line;
  int lineno = 0;
  while (std::getline(lines, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::ordered_json ctx = parse_context(line, where + ":" + std::to_string(lineno));
    complete(ctx);
    nlohmann::ordered_json result = nlohmann::ordered_json::object();
    try {
      result["text"] = tmpl.render(ctx, ropts);
    } catch (const hai::Error& e) {
      result["error"] = e.what();
    }
    std::string s = result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::fwrite(s.data(), 1, s.size(), stdout);
  }
}

hai::cli::Register reg([](CLI::App& app) {
  auto opts = std::make_shared<Options>();
  auto* sub = app.add_subcommand("template", "Render a chat template (Jinja) with a JSON context of messages");
  auto* t = sub->add_option("--template", opts->template_file, "Template file (Jinja)");
  auto* m = sub->add_option("-m,--model", opts->model, "GGUF model: use its tokenizer.chat_template (ChatML if none)");
  t->excludes(m);
  m->excludes(t);
  sub->add_option("--messages", opts->messages,
                  "JSON context {messages, tools, ...} or messages array; FILE or - for stdin (default: no messages; with --jsonl: stdin)");
  sub->add_flag("--add-generation-prompt", opts->add_generation_prompt, "Set add_generation_prompt = true");
  sub->add_option("--bos", opts->bos, "bos_token (default: from the model)")->each([opts](const std::string&) { opts->bos_set = true; });
  sub->add_option("--eos", opts->eos, "eos_token (default: from the model)")->each([opts](const std::string&) { opts->eos_set = true; });
  sub->add_option("--now", opts->now, "Time for strftime_now() in seconds since the epoch (default: now)");
  sub->add_flag("--jsonl", opts->jsonl, "One context per input line; print one JSON result per line");
  sub->callback([opts]() {
    if (opts->template_file.empty() && opts->model.empty()) {
      throw hai::Error("template: give the template with --template FILE or -m MODEL.gguf");
    }
    run(*opts);
  });
});

}  // namespace
