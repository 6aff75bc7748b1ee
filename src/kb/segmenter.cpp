#include "kb/segmenter.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <mutex>

#include "engine/common/error.h"
#include "kb/text.h"

namespace hai::kb {

void Segmenter::Add(std::u32string word, double freq) {
  if (word.empty()) return;
  max_len_ = std::max(max_len_, word.size());
  for (size_t n = 1; n < word.size(); ++n) freq_.try_emplace(word.substr(0, n), 0.0);
  freq_[word] = freq;
}

double Segmenter::Freq(std::u32string_view w) const {
  auto it = freq_.find(w);
  return it == freq_.end() ? 0.0 : it->second;
}

std::shared_ptr<const Segmenter> Segmenter::FromWords(const std::vector<std::pair<std::string, double>>& words) {
  auto s = std::make_shared<Segmenter>();
  double total = 0;
  for (auto& [w, f] : words) {
    s->Add(DecodeUtf8(w), f);
    total += f;
  }
  s->log_total_ = std::log(std::max(total, 1.0));
  return s;
}

std::shared_ptr<const Segmenter> Segmenter::FromDictionary(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read segmentation dictionary " + path);
  auto s = std::make_shared<Segmenter>();
  s->freq_.reserve(700000);
  std::string line;
  double total = 0;
  size_t n = 0;
  while (std::getline(in, line)) {
    size_t sp = line.find(' ');
    if (sp == std::string::npos || sp == 0) continue;
    double f = std::atof(line.c_str() + sp + 1);
    if (f <= 0) continue;
    s->Add(DecodeUtf8(std::string_view(line).substr(0, sp)), f);
    total += f;
    ++n;
  }
  if (n == 0) throw Error("segmentation dictionary " + path + " has no \"word freq\" lines");
  s->log_total_ = std::log(total);
  return s;
}

void Segmenter::LoadUser(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read user dictionary " + path);
  double total = std::exp(log_total_);
  std::string line;
  while (std::getline(in, line)) {
    if (auto h = line.find('#'); h != std::string::npos) line.resize(h);
    std::string t = Trim(line);
    if (t.empty()) continue;
    size_t sp = t.find(' ');
    double f = sp == std::string::npos ? 100.0 : std::atof(t.c_str() + sp + 1);
    if (f <= 0) f = 100.0;
    Add(DecodeUtf8(t.substr(0, sp)), f);
    total += f;
  }
  log_total_ = std::log(std::max(total, 1.0));
}

std::shared_ptr<const Segmenter> Segmenter::WithUserDictionary(const std::string& path) const {
  auto s = std::make_shared<Segmenter>(*this);
  s->LoadUser(path);
  return s;
}

std::shared_ptr<const Segmenter> Segmenter::FromDictionaries(const std::string& path, const std::string& user_path) {
  auto base = FromDictionary(path);
  // FromDictionary's result is not shared yet: extend it in place.
  auto s = std::const_pointer_cast<Segmenter>(base);
  if (!user_path.empty()) s->LoadUser(user_path);
  return s;
}

std::string Segmenter::DefaultDictionaryPath() {
  if (const char* p = std::getenv("HAI_JIEBA_DICT")) return p;
  return "/usr/lib/python3/dist-packages/jieba/dict.txt";
}

std::string Segmenter::DataDir() {
  if (const char* d = std::getenv("HAI_KB_DATA_DIR")) return d;
#ifdef HAI_KB_DEFAULT_DATA_DIR
  return HAI_KB_DEFAULT_DATA_DIR;
#else
  return "";
#endif
}

std::shared_ptr<const Segmenter> Segmenter::Default() {
  static std::once_flag once;
  static std::shared_ptr<const Segmenter> seg;
  std::call_once(once, [] {
    std::string path = DefaultDictionaryPath();
    std::ifstream probe(path);
    if (!path.empty() && probe.good()) {
      const std::string dir = DataDir();
      std::string user = dir.empty() ? "" : dir + "/user_dict.txt";
      if (!user.empty() && !std::ifstream(user).good()) user.clear();
      seg = FromDictionaries(path, user);
    } else {
      seg = std::make_shared<Segmenter>();
    }
  });
  return seg;
}

std::vector<std::u32string> Segmenter::Cut(std::u32string_view s) const {
  std::vector<std::u32string> words;
  const size_t n = s.size();
  if (n == 0) return words;
  if (!has_dictionary()) {
    for (char32_t c : s) words.emplace_back(1, c);
    return words;
  }
  // route[i] = (best log probability of s[i..n), end of the first word).
  std::vector<double> best(n + 1, 0.0);
  std::vector<size_t> next(n + 1, n);
  for (size_t i = n; i-- > 0;) {
    best[i] = -1e300;
    // Every dictionary word starting at i (a single character is always allowed).
    for (size_t j = i + 1; j <= n && j - i <= max_len_; ++j) {
      auto it = freq_.find(s.substr(i, j - i));
      if (it == freq_.end()) break;  // no longer a prefix of any word
      if (it->second <= 0) continue;  // only a prefix of longer words
      double p = std::log(it->second) - log_total_ + best[j];
      if (p > best[i]) {
        best[i] = p;
        next[i] = j;
      }
    }
    if (best[i] == -1e300) {  // a character unknown to the dictionary
      best[i] = std::log(1.0) - log_total_ + best[i + 1];
      next[i] = i + 1;
    }
  }
  for (size_t i = 0; i < n; i = next[i]) words.emplace_back(s.substr(i, next[i] - i));
  return words;
}

std::vector<std::u32string> Segmenter::CutForSearch(std::u32string_view s) const {
  std::vector<std::u32string> out;
  if (!has_dictionary()) {
    if (s.size() == 1) {
      out.emplace_back(s);
      return out;
    }
    for (size_t i = 0; i + 1 < s.size(); ++i) out.emplace_back(s.substr(i, 2));
    return out;
  }
  for (auto& w : Cut(s)) {
    for (size_t len : {2u, 3u}) {
      if (w.size() <= len) continue;
      for (size_t i = 0; i + len <= w.size(); ++i) {
        std::u32string_view sub = std::u32string_view(w).substr(i, len);
        if (Freq(sub) > 0) out.emplace_back(sub);
      }
    }
    out.push_back(w);
  }
  return out;
}

}  // namespace hai::kb
