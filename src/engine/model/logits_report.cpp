#include "engine/model/logits_report.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "engine/common/error.h"
#include "engine/tokenizer/tokenizer.h"

namespace hai::model {

std::vector<std::pair<int32_t, float>> top_k(const float* logits, int64_t n_vocab, int k) {
  std::vector<int32_t> idx(static_cast<size_t>(n_vocab));
  for (int64_t i = 0; i < n_vocab; ++i) idx[i] = static_cast<int32_t>(i);
  const int64_t kk = std::min<int64_t>(k, n_vocab);
  std::partial_sort(idx.begin(), idx.begin() + kk, idx.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  std::vector<std::pair<int32_t, float>> out;
  for (int64_t i = 0; i < kk; ++i) out.emplace_back(idx[i], logits[idx[i]]);
  return out;
}

int32_t argmax(const float* logits, int64_t n_vocab) {
  int64_t best = 0;
  for (int64_t i = 1; i < n_vocab; ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

PromptReport run_prompt(Context& ctx, const std::vector<int32_t>& tokens, int top, int n_greedy,
                        const Tokenizer* tokenizer) {
  const int64_t n_vocab = ctx.model().hparams().n_vocab;
  if (top < 1) throw Error("--top must be at least 1, got " + std::to_string(top));
  if (n_greedy < 0) throw Error("greedy length must not be negative");
  const int64_t need = static_cast<int64_t>(tokens.size()) + std::max(0, n_greedy - 1);
  if (need > ctx.n_ctx())
    throw Error("prompt of " + std::to_string(tokens.size()) + " tokens plus " + std::to_string(n_greedy) +
                " generated does not fit in the context of " + std::to_string(ctx.n_ctx()) + " tokens");
  ctx.clear();
  PromptReport r;
  r.tokens = tokens;
  std::vector<float> logits;
  ctx.eval(tokens, /*all_logits=*/true, logits);
  for (size_t pos = 0; pos < tokens.size(); ++pos) r.top.push_back(top_k(&logits[pos * n_vocab], n_vocab, top));
  r.last_logits.assign(logits.end() - n_vocab, logits.end());

  int32_t next = argmax(r.last_logits.data(), n_vocab);
  for (int i = 0; i < n_greedy; ++i) {
    r.greedy.push_back(next);
    if (i + 1 == n_greedy) break;
    ctx.eval({next}, /*all_logits=*/false, logits);
    next = argmax(logits.data(), n_vocab);
  }
  if (tokenizer) r.greedy_text = tokenizer->decode(r.greedy);
  return r;
}

namespace {

void append_json_string(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

void append_float(std::string& out, float v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", static_cast<double>(v));
  out += buf;
}

void append_ids(std::string& out, const std::vector<int32_t>& ids) {
  out += '[';
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(ids[i]);
  }
  out += ']';
}

}  // namespace

std::string to_json(const PromptReport& r, int top) {
  std::string out = "{\"prompt\":";
  append_json_string(out, r.prompt);
  out += ",\"tokens\":";
  append_ids(out, r.tokens);
  out += ",\"top" + std::to_string(top) + "\":[";
  for (size_t p = 0; p < r.top.size(); ++p) {
    if (p) out += ',';
    out += '[';
    for (size_t i = 0; i < r.top[p].size(); ++i) {
      if (i) out += ',';
      out += '[' + std::to_string(r.top[p][i].first) + ',';
      append_float(out, r.top[p][i].second);
      out += ']';
    }
    out += ']';
  }
  out += "],\"last_logits_file\":";
  append_json_string(out, r.last_logits_file);
  out += ",\"greedy\":";
  append_ids(out, r.greedy);
  out += ",\"greedy_text_hex\":\"";
  static const char* hex = "0123456789abcdef";
  for (unsigned char c : r.greedy_text) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  out += "\"}";
  return out;
}

std::vector<std::string> read_prompt_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open prompt file: " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::vector<std::string> prompts;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::string prompt;
    for (size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == 'n') {
        prompt += '\n';
        ++i;
      } else {
        prompt += line[i];
      }
    }
    prompts.push_back(std::move(prompt));
    start = end + 1;
  }
  return prompts;
}

std::string model_stem(const std::string& model_path) {
  size_t slash = model_path.find_last_of('/');
  std::string base = slash == std::string::npos ? model_path : model_path.substr(slash + 1);
  if (base.size() > 5 && base.compare(base.size() - 5, 5, ".gguf") == 0) base.resize(base.size() - 5);
  return base;
}

void write_f32_file(const std::string& path, const std::vector<float>& v) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(path + ": cannot write: " + std::strerror(errno));
  for (float f : v) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    const unsigned char b[4] = {static_cast<unsigned char>(bits), static_cast<unsigned char>(bits >> 8),
                                static_cast<unsigned char>(bits >> 16), static_cast<unsigned char>(bits >> 24)};
    out.write(reinterpret_cast<const char*>(b), 4);
  }
  if (!out) throw Error(path + ": write failed");
}

}  // namespace hai::model
