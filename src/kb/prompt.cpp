#include "kb/prompt.h"

#include <algorithm>
#include <cctype>

#include "engine/common/error.h"
#include "kb/text.h"

namespace hai::kb {

namespace {

// Cuts to at most `n` code points, marking the cut with "…".
std::string Cut(const std::string& s, int n) {
  if (n <= 0) return s;
  std::u32string u = DecodeUtf8(s);
  if (u.size() <= static_cast<size_t>(n)) return s;
  return EncodeUtf8(u.substr(0, static_cast<size_t>(n))) + "…";
}

const char* kGroundedRules =
    "You answer questions using only the numbered sources given by the user.\n"
    "Rules:\n"
    "1. Use only facts stated in the sources. Do not add outside knowledge.\n"
    "2. After each statement, cite the sources it comes from by number in square brackets, e.g. [1] or [2][3].\n"
    "3. If the sources do not contain the answer, say that the knowledge base does not contain it "
    "(\"资料中没有相关信息\" when the question is in Chinese); do not guess.\n"
    "4. Answer in the language of the question, briefly.";

const char* kOpenRules =
    "You answer questions using the numbered sources given by the user, together with your own knowledge.\n"
    "Rules:\n"
    "1. Prefer the sources. After each statement taken from them, cite them by number in square brackets, "
    "e.g. [1] or [2][3].\n"
    "2. Where the sources fall short you may use your own knowledge, but say that this part is not from the "
    "sources.\n"
    "3. Answer in the language of the question, briefly.";

}  // namespace

AnswerMode ParseAnswerMode(const std::string& s) {
  if (s == "grounded") return AnswerMode::kGrounded;
  if (s == "open") return AnswerMode::kOpen;
  throw Error("--mode: unknown answer mode '" + s + "' (expected grounded or open)");
}

const char* AnswerModeName(AnswerMode m) { return m == AnswerMode::kGrounded ? "grounded" : "open"; }

std::string SourceLabel(const Hit& h) {
  std::string s = h.doc;
  if (h.page > 0) s += ", page " + std::to_string(h.page);
  if (h.row > 0) s += ", row " + std::to_string(h.row);
  if (!h.heading.empty()) s += ", " + h.heading;
  return s;
}

nlohmann::ordered_json BuildAskMessages(const std::string& question, const std::vector<Hit>& sources,
                                        AnswerMode mode, int max_source_chars) {
  std::string user = "Sources:\n";
  if (sources.empty()) user += "(none: the knowledge base has no passage for this question)\n";
  for (size_t i = 0; i < sources.size(); ++i) {
    user += "\n[" + std::to_string(i + 1) + "] " + SourceLabel(sources[i]) + "\n";
    user += Cut(Trim(sources[i].text), max_source_chars) + "\n";
  }
  user += "\nQuestion: " + question + "\n";
  user += mode == AnswerMode::kGrounded ? "Answer from the sources only, citing them as [n]."
                                        : "Answer, citing the sources you use as [n].";
  nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
  msgs.push_back({{"role", "system"}, {"content", mode == AnswerMode::kGrounded ? kGroundedRules : kOpenRules}});
  msgs.push_back({{"role", "user"}, {"content", user}});
  return msgs;
}

std::vector<int> CitedSources(const std::string& answer, int n_sources) {
  std::vector<int> out;
  // Brackets holding numbers separated by commas/spaces: [1], [1, 2], [1,3].
  for (size_t i = 0; i < answer.size(); ++i) {
    if (answer[i] != '[') continue;
    size_t j = i + 1;
    std::vector<int> nums;
    bool ok = true;
    while (j < answer.size() && answer[j] != ']') {
      if (std::isdigit(static_cast<unsigned char>(answer[j]))) {
        int v = 0;
        while (j < answer.size() && std::isdigit(static_cast<unsigned char>(answer[j])) && v < 100000)
          v = v * 10 + (answer[j++] - '0');
        nums.push_back(v);
      } else if (answer[j] == ',' || answer[j] == ' ') {
        ++j;
      } else {
        ok = false;
        break;
      }
    }
    if (!ok || j >= answer.size() || nums.empty()) continue;
    for (int v : nums)
      if (v >= 1 && v <= n_sources && std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
    i = j;
  }
  return out;
}

}  // namespace hai::kb
