#include "kb/analyzer.h"

#include <libstemmer.h>
#include <utf8proc.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <set>
#include <unordered_set>

#include "engine/common/error.h"
#include "kb/text.h"

namespace hai::kb {

namespace {

const std::unordered_set<std::string>& StopWords() {
  static const std::unordered_set<std::string> kStop = {
      // English
      "a", "an", "the", "and", "or", "of", "to", "in", "on", "for", "with", "by", "at", "from", "as", "is", "are",
      "was", "were", "be", "been", "it", "its", "this", "that", "these", "those", "what", "which", "who", "whom",
      "how", "why", "when", "where", "do", "doe", "does", "did", "not", "no", "but", "if", "than", "then", "so",
      "can", "could", "would", "should", "will", "about", "into", "there", "their", "they", "we", "you", "i",
      // Chinese function words and question words
      "的", "了", "和", "与", "及", "是", "在", "等", "对", "为", "中", "将", "也", "而", "并", "或", "其", "之",
      "以", "于", "把", "被", "这", "那", "个", "有", "我", "你", "他", "她", "它", "们", "我们", "你们", "他们",
      "什么", "哪些", "哪个", "如何", "怎么", "怎样", "怎么样", "吗", "呢", "吧", "啊", "呀", "多少", "哪", "谁",
      "为什么", "是否", "一个", "一些", "这个", "那个", "这些", "那些", "就", "都", "还", "又", "很", "会", "能",
      "要", "让", "给", "从", "到", "上", "下", "来", "去", "说", "着", "过", "所", "得", "地", "请问", "请",
      "一下", "告诉", "知道", "想", "问", "问题", "有没有", "哪儿", "哪里", "几", "啥", "咋", "么", "嘛", "吗",
      "里", "方面", "主要", "情况", "具体", "相关", "可以", "有关", "关于", "以及", "通过", "进行", "已经",
      // colloquial question fillers
      "为啥", "干嘛", "何时", "何种", "何地", "多长", "多快", "能不能", "会不会", "是不是", "有没有", "一共", "大概", "大约", "最近", "现在", "以后",
      "到底", "究竟", "多大", "多远", "多久", "哪家", "哪些地方", "什么样", "怎么办", "这么", "那么", "还有",
      "就是", "一般", "比较", "真的", "应该", "需要", "能够", "一下子", "咱们", "人家", "东西",
      // general function words and adverbs (session 3): they say nothing
      // about what a question is about
      "不会", "会不会", "一样", "越来越", "越来", "不只", "只是", "只有", "不仅", "而且", "但是", "可是", "因为",
      "所以", "如果", "虽然", "还是", "或者", "这样", "那样", "这种", "那种", "这么样", "之类", "一直", "总是",
      "经常", "非常", "特别", "十分", "更加", "最", "更", "挺", "太", "真", "很多", "许多", "好多", "好几",
      "几个", "多少个", "哪几", "哪一", "哪种", "哪类", "哪方面", "有多", "多么", "有些", "某些", "各种",
      "自己", "自家", "大家", "别人", "别的", "其他", "其它", "所有", "一切", "每个", "整个", "本身", "到时候",
      "时候", "的话", "而已", "罢了", "来说", "来讲", "看来", "看看", "听说", "据说", "觉得", "认为", "以为",
      "叫什么", "叫做", "是谁", "是啥", "干什么", "做什么", "用什么", "靠什么", "算是", "算", "呗", "哦", "嗯",
      "没有", "没", "不是", "不能", "可能", "也许", "或许", "已", "曾", "曾经", "正在", "在于", "成为", "变得",
  };
  return kStop;
}

std::string Lower(std::u32string_view w) {
  std::string out;
  for (char32_t c : w) AppendUtf8(&out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
  return out;
}

bool IsLetterOrDigit(char32_t c) {
  if (c < 0x80) return IsAsciiAlnum(c);
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT ||
         cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_LO || cat == UTF8PROC_CATEGORY_ND ||
         cat == UTF8PROC_CATEGORY_MN;
}

}  // namespace

bool Analyzer::IsStopWord(std::string_view term) { return StopWords().count(std::string(term)) > 0; }

Analyzer::Analyzer(std::shared_ptr<const Segmenter> segmenter)
    : segmenter_(segmenter ? std::move(segmenter) : Segmenter::Default()) {
  stemmer_ = sb_stemmer_new("english", "UTF_8");
}

Analyzer::~Analyzer() {
  if (stemmer_) sb_stemmer_delete(stemmer_);
}

std::string Analyzer::Stem(const std::string& word) const {
  if (!stemmer_) return word;
  std::lock_guard<std::mutex> lock(stem_mu_);
  const sb_symbol* s = sb_stemmer_stem(stemmer_, reinterpret_cast<const sb_symbol*>(word.data()),
                                       static_cast<int>(word.size()));
  if (!s) return word;
  return std::string(reinterpret_cast<const char*>(s), sb_stemmer_length(stemmer_));
}

std::vector<std::string> Analyzer::Terms(std::string_view text) const {
  std::vector<std::string> terms;
  std::u32string u = DecodeUtf8(Nfkc(text));
  auto emit = [&](std::string t) {
    if (!t.empty() && !IsStopWord(t)) terms.push_back(std::move(t));
  };
  for (size_t i = 0; i < u.size();) {
    char32_t c = u[i];
    if (IsHan(c)) {
      size_t j = i;
      while (j < u.size() && IsHan(u[j])) ++j;
      for (auto& w : segmenter_->CutForSearch(std::u32string_view(u).substr(i, j - i))) emit(EncodeUtf8(w));
      i = j;
    } else if (IsLetterOrDigit(c) && !IsCjk(c)) {
      size_t j = i;
      bool alpha = false;
      auto digit = [&](size_t k) { return k < u.size() && u[k] >= '0' && u[k] <= '9'; };
      while (j < u.size()) {
        if (IsLetterOrDigit(u[j]) && !IsCjk(u[j]) && !IsHan(u[j])) {
          alpha |= !digit(j);
          ++j;
        } else if (u[j] == '.' && j > i && digit(j - 1) && digit(j + 1)) {
          ++j;  // a decimal number or version stays one term: "1.0", "3.5"
        } else {
          break;
        }
      }
      std::string w = Lower(std::u32string_view(u).substr(i, j - i));
      if (alpha && !IsStopWord(w)) w = Stem(w);
      emit(std::move(w));
      i = j;
    } else if (IsCjk(c) && IsLetterOrDigit(c)) {  // kana, hangul: bigrams
      size_t j = i;
      while (j < u.size() && IsCjk(u[j]) && IsLetterOrDigit(u[j]) && !IsHan(u[j])) ++j;
      if (j - i == 1) emit(EncodeUtf8(u.substr(i, 1)));
      for (size_t k = i; k + 1 < j; ++k) emit(EncodeUtf8(u.substr(k, 2)));
      i = j;
    } else {
      ++i;
    }
  }
  return terms;
}

std::vector<std::string> Analyzer::HanBigrams(std::string_view text) const {
  std::vector<std::string> out;
  std::u32string u = DecodeUtf8(Nfkc(text));
  for (size_t i = 0; i + 1 < u.size(); ++i) {
    if (!IsHan(u[i]) || !IsHan(u[i + 1])) continue;
    std::string b = EncodeUtf8(std::u32string_view(u).substr(i, 2));
    if (!IsStopWord(b)) out.push_back("~" + b);
  }
  return out;
}

std::map<std::string, double> Analyzer::QueryTerms(std::string_view query, double related_weight) const {
  std::map<std::string, double> out;
  // A single Han character says less than a word: it weighs half.
  for (auto& t : Terms(query)) {
    bool single_han = CountCodePoints(t) == 1 && IsHan(DecodeUtf8(t)[0]);
    double w = single_han ? 0.5 : 1.0;
    out[t] = std::max(out[t], w);
  }
  // A group is touched when the (normalised, lowercased) query contains one
  // of its members; the other members' terms join the query. A member of a
  // single Han character ("大", "车") must be a word of the query's own
  // segmentation: inside a longer word ("大模型") it means something else.
  // A Latin member must not be part of a longer Latin word.
  std::string q = Lower(DecodeUtf8(Nfkc(query)));
  std::set<std::string> words;
  for (auto& w : segmenter_->Cut(DecodeUtf8(q))) words.insert(EncodeUtf8(w));
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  auto found = [&](const Member& m) {
    if (CountCodePoints(m.text) == 1 && IsHan(DecodeUtf8(m.text)[0])) return words.count(m.text) > 0;
    // A Latin member stands alone: "ar" is not found in "large".
    for (size_t p = q.find(m.text); p != std::string::npos; p = q.find(m.text, p + 1)) {
      const size_t e = p + m.text.size();
      if (alnum(m.text.front()) && p > 0 && alnum(q[p - 1])) continue;
      if (alnum(m.text.back()) && e < q.size() && alnum(q[e])) continue;
      return true;
    }
    return false;
  };
  for (auto& group : groups_) {
    bool touched = false;
    for (auto& m : group) touched |= m.key && found(m);
    if (!touched) continue;
    for (auto& m : group)
      for (auto& t : m.terms) {
        // A member the segmenter breaks into single characters ("算力" without
        // a dictionary entry) would add noise: its characters are skipped.
        if (CountCodePoints(t) == 1 && IsHan(DecodeUtf8(t)[0])) continue;
        out.try_emplace(t, related_weight);
      }
  }
  return out;
}

void Analyzer::LoadSynonyms(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read synonym file " + path);
  groups_.clear();
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (auto h = line.find('#'); h != std::string::npos) line.resize(h);
    // "a,b => c,d": a and b lead to c and d (and to each other), c and d to
    // nothing. Without "=>" every member leads to every other.
    const bool one_way = line.find("=>") != std::string::npos;
    std::string keys = line, others;
    if (auto arrow = line.find("=>"); one_way) {
      keys = line.substr(0, arrow);
      others = line.substr(arrow + 2);
      if (others.find("=>") != std::string::npos)
        throw Error(path + ":" + std::to_string(lineno) + ": more than one '=>'");
    }
    std::vector<Member> group;
    auto add = [&](const std::string& part, bool key) {
      size_t before = group.size();
      std::string cur;
      for (char ch : part + ",") {
        if (ch == ',' || ch == '|') {
          std::string m = Trim(cur);
          if (!m.empty()) group.push_back({Lower(DecodeUtf8(Nfkc(m))), Terms(m), key});
          cur.clear();
        } else {
          cur.push_back(ch);
        }
      }
      return group.size() - before;
    };
    const size_t n_keys = add(keys, true);
    const size_t n_others = one_way ? add(others, false) : 0;
    if (one_way && (n_keys == 0 || n_others == 0))
      throw Error(path + ":" + std::to_string(lineno) + ": '=>' needs words on both sides");
    if (group.size() >= 2) groups_.push_back(std::move(group));
  }
}

void Analyzer::LoadDefaultSynonyms() {
  const std::string dir = Segmenter::DataDir();
  if (dir.empty()) return;
  std::ifstream probe(dir + "/synonyms.txt");
  if (probe.good()) LoadSynonyms(dir + "/synonyms.txt");
}

}  // namespace hai::kb
