// GBNF parsing (every error names line and column) and what the parsed
// grammars accept, byte by byte, without a model.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "byte_vocab.h"
#include "engine/common/error.h"
#include "engine/grammar/grammar.h"

namespace hai::grammar {
namespace {

using test::accepts;
using test::prefix_ok;

std::string parse_error(const std::string& text) {
  try {
    Grammar::parse_gbnf(text);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

#define EXPECT_ERROR(text, ...)                                                  \
  do {                                                                           \
    const std::string msg = parse_error(text);                                   \
    for (const char* part : {__VA_ARGS__}) EXPECT_NE(msg.find(part), std::string::npos) << "message: " << msg << "\nmissing: " << part; \
  } while (0)

TEST(GbnfErrors, MissingRoot) { EXPECT_ERROR("a ::= \"x\"\n", "no rule named 'root'"); }
TEST(GbnfErrors, UndefinedRule) { EXPECT_ERROR("root ::= \"a\" thing\n", "line 1, column 14", "undefined rule 'thing'"); }
TEST(GbnfErrors, MissingAssign) { EXPECT_ERROR("root \"a\"\n", "line 1, column 6", "expected '::='"); }
TEST(GbnfErrors, MissingName) { EXPECT_ERROR("::= \"a\"\n", "line 1, column 1", "expected a rule name"); }
TEST(GbnfErrors, UnterminatedLiteral) { EXPECT_ERROR("root ::= \"abc\n", "line 1", "unterminated string literal"); }
TEST(GbnfErrors, UnterminatedClass) { EXPECT_ERROR("root ::= [a-z\n", "line 1", "unterminated character class"); }
TEST(GbnfErrors, EmptyClass) { EXPECT_ERROR("root ::= []\n", "line 1, column 10", "empty character class"); }
TEST(GbnfErrors, ReversedRange) { EXPECT_ERROR("root ::= [z-a]\n", "line 1, column 11", "reversed"); }
TEST(GbnfErrors, UnclosedGroup) { EXPECT_ERROR("root ::= ( \"a\" \n", "line 2", "expected ')'"); }
TEST(GbnfErrors, UnmatchedParen) { EXPECT_ERROR("root ::= \"a\" )\n", "line 1, column 14", "unmatched ')'"); }
TEST(GbnfErrors, UnknownEscape) { EXPECT_ERROR("root ::= \"\\q\"\n", "line 1, column 11", "unknown escape '\\q'"); }
TEST(GbnfErrors, BadHexEscape) { EXPECT_ERROR("root ::= \"\\xZ1\"\n", "line 1", "2 hexadecimal digits"); }
TEST(GbnfErrors, SurrogateEscape) { EXPECT_ERROR("root ::= \"\\uD800\"\n", "not a Unicode scalar value"); }
TEST(GbnfErrors, EscapeTooLarge) { EXPECT_ERROR("root ::= \"\\U00110000\"\n", "not a Unicode scalar value"); }
TEST(GbnfErrors, InvalidUtf8) { EXPECT_ERROR("root ::= \"\xC3\x28\"\n", "line 1, column 11", "invalid UTF-8"); }
TEST(GbnfErrors, DanglingRepetition) { EXPECT_ERROR("root ::= * \"a\"\n", "line 1, column 10", "must follow an item"); }
TEST(GbnfErrors, DoubleRepetition) { EXPECT_ERROR("root ::= \"a\"*+\n", "repetition of a repetition"); }
TEST(GbnfErrors, BadBraces) {
  EXPECT_ERROR("root ::= \"a\"{3,2}\n", "n < m");
  EXPECT_ERROR("root ::= \"a\"{x}\n", "expected a number");
  EXPECT_ERROR("root ::= \"a\"{2\n", "expected '}'");
  EXPECT_ERROR("root ::= \"a\"{1000000}\n", "larger than 100000");
}
TEST(GbnfErrors, DuplicateRule) { EXPECT_ERROR("root ::= \"a\"\nroot ::= \"b\"\n", "line 2", "defined twice"); }
TEST(GbnfErrors, TwoRulesOnOneLine) { EXPECT_ERROR("root ::= \"a\" b ::= \"c\"\n", "line break before the rule 'b'"); }
TEST(GbnfErrors, LeftRecursion) {
  EXPECT_ERROR("root ::= expr\nexpr ::= expr \"+\" num | num\nnum ::= [0-9]+\n", "left recursion", "expr -> expr");
  EXPECT_ERROR("root ::= a\na ::= b? a \"x\" | \"y\"\nb ::= \"z\"\n", "left recursion");
  EXPECT_ERROR("root ::= a \"x\"\na ::= b\nb ::= \"\" a | \"q\"\n", "left recursion", "a -> b -> a");
}

TEST(GbnfErrors, RepeatingWhatCanBeEmpty) {
  EXPECT_ERROR("root ::= (\"a\"?)*\n", "line 1, column 10", "can match the empty string");
  EXPECT_ERROR("root ::= x{0,100000}\nx ::= \"a\" | \n", "line 1, column 10", "can match the empty string");
}

TEST(GbnfErrors, DeepNesting) {
  EXPECT_ERROR("root ::= " + std::string(300, '(') + "\"a\"" + std::string(300, ')'), "nested more than 200 deep");
  // 150 levels are fine.
  EXPECT_NO_THROW(Grammar::parse_gbnf("root ::= " + std::string(150, '(') + "\"a\"" + std::string(150, ')') + "\n"));
}

// Random bytes and mutated grammars: either a grammar or hai::Error, never
// another exception or a crash.
TEST(GbnfErrors, GarbageNeverCrashes) {
  const std::string base =
      "root ::= obj\nobj ::= \"{\" ws ( kv ( \",\" ws kv )* )? \"}\"\nkv ::= [a-z]+ \":\" ws [0-9]{1,3}\n"
      "ws ::= [ \\t\\n]?\n";
  ASSERT_NO_THROW(Grammar::parse_gbnf(base));
  std::mt19937 rng(7);
  const std::string alphabet = "()[]{}|*+?\"\\:=# \n-^.,0123456789abcxu\x80\xC3\xFF";
  for (int iter = 0; iter < 3000; ++iter) {
    std::string g = base;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % (g.size() + 1);
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0: g.insert(g.begin() + static_cast<long>(pos), c); break;
        case 1: if (pos < g.size()) g.erase(pos, 1); break;
        default: if (pos < g.size()) g[pos] = c; break;
      }
    }
    try {
      auto parsed = Grammar::parse_gbnf(g);
      Matcher m(parsed, test::byte_tokenizer());
      test::feed(m, "{ab: 12,c:3}");
    } catch (const Error&) {
    }
  }
}

TEST(Gbnf, LiteralsAndAlternatives) {
  auto g = Grammar::parse_gbnf("root ::= \"yes\" | \"no\" # a comment\n");
  EXPECT_TRUE(accepts(g, "yes"));
  EXPECT_TRUE(accepts(g, "no"));
  EXPECT_FALSE(accepts(g, "ye"));
  EXPECT_TRUE(prefix_ok(g, "ye"));
  EXPECT_FALSE(prefix_ok(g, "yes!"));
  EXPECT_FALSE(accepts(g, ""));
}

TEST(Gbnf, MultiLineRulesAndComments) {
  auto g = Grammar::parse_gbnf(
      "# leading comment\n"
      "root ::=\n"
      "  item (\n"
      "    \",\" item  # inside a group\n"
      "  )*\n"
      "item ::= \"a\"\n"
      "       | \"b\"\n"
      "\n");
  EXPECT_TRUE(accepts(g, "a"));
  EXPECT_TRUE(accepts(g, "a,b,a"));
  EXPECT_FALSE(accepts(g, "a,"));
  EXPECT_FALSE(accepts(g, "c"));
}

TEST(Gbnf, Repetitions) {
  auto g = Grammar::parse_gbnf("root ::= \"x\"{2,4} \"y\"? [0-9]+ \"z\"{3} \"w\"{1,}\n");
  EXPECT_TRUE(accepts(g, "xx1zzzw"));
  EXPECT_TRUE(accepts(g, "xxxxy123zzzwww"));
  EXPECT_FALSE(accepts(g, "x1zzzw"));
  EXPECT_FALSE(accepts(g, "xxxxx1zzzw"));
  EXPECT_FALSE(accepts(g, "xx1zzw"));
  EXPECT_FALSE(accepts(g, "xxzzzw"));
  EXPECT_FALSE(accepts(g, "xx1zzz"));
  auto star = Grammar::parse_gbnf("root ::= (\"ab\" | \"c\")*\n");
  EXPECT_TRUE(accepts(star, ""));
  EXPECT_TRUE(accepts(star, "abcab"));
  EXPECT_FALSE(accepts(star, "abb"));
}

TEST(Gbnf, CharacterClasses) {
  auto g = Grammar::parse_gbnf("root ::= [a-cx\\-] [^0-9] .\n");
  EXPECT_TRUE(accepts(g, "a!z"));
  EXPECT_TRUE(accepts(g, "-bq"));
  EXPECT_FALSE(accepts(g, "d!z"));
  EXPECT_FALSE(accepts(g, "a5z"));
  EXPECT_TRUE(accepts(g, "x\xC3\xA9\xE4\xB8\xAD"));  // é then 中
}

TEST(Gbnf, Utf8ClassesMatchWholeCharacters) {
  auto g = Grammar::parse_gbnf("root ::= [一-龥]+\n");  // CJK unified ideographs
  EXPECT_TRUE(accepts(g, "中文"));
  EXPECT_FALSE(accepts(g, "中a"));
  EXPECT_TRUE(prefix_ok(g, "\xE4\xB8"));        // half of 中: fine so far
  EXPECT_FALSE(accepts(g, "\xE4\xB8"));         // but not complete
  EXPECT_FALSE(prefix_ok(g, "\xE4\x28"));       // not UTF-8
  auto neg = Grammar::parse_gbnf("root ::= [^a]*\n");
  EXPECT_TRUE(accepts(neg, "b\xF0\x9F\x98\x80z"));  // 😀
  EXPECT_FALSE(prefix_ok(neg, "\xED\xA0\x80"));      // an encoded surrogate is not UTF-8
  EXPECT_FALSE(prefix_ok(neg, "\xC0\xAF"));          // overlong
  EXPECT_FALSE(prefix_ok(neg, "\xFF"));
}

TEST(Gbnf, Escapes) {
  auto g = Grammar::parse_gbnf(
      "root ::= \"\\n\\t\\\"\\\\\" \"\\x41\" \"\\u00e9\" \"\\U0001F600\" [\\x30-\\x32] \"\\r\" [\\]\\[]\n");
  EXPECT_TRUE(accepts(g, "\n\t\"\\A\xC3\xA9\xF0\x9F\x98\x80" "1\r]"));
  EXPECT_FALSE(accepts(g, "\n\t\"\\A\xC3\xA9\xF0\x9F\x98\x80" "3\r]"));
}

TEST(Gbnf, Utf8Literal) {
  auto g = Grammar::parse_gbnf("root ::= \"你好\" | \"héllo\"\n");
  EXPECT_TRUE(accepts(g, "你好"));
  EXPECT_TRUE(accepts(g, "héllo"));
  EXPECT_FALSE(accepts(g, "hello"));
}

TEST(Gbnf, RightRecursionAndNesting) {
  auto g = Grammar::parse_gbnf(
      "root ::= list\n"
      "list ::= \"[\" ( elem ( \",\" elem )* )? \"]\"\n"
      "elem ::= [0-9]+ | list\n");
  EXPECT_TRUE(accepts(g, "[]"));
  EXPECT_TRUE(accepts(g, "[1,[2,[[]]],33]"));
  EXPECT_FALSE(accepts(g, "[1,[2]"));
  EXPECT_FALSE(accepts(g, "[1,]"));
  std::string deep(200, '[');
  deep += std::string(200, ']');
  EXPECT_TRUE(accepts(g, deep));
}

TEST(Gbnf, LongRepetitionDoesNotGrowStacks) {
  auto g = Grammar::parse_gbnf("root ::= \"a\"* \"b\"\n");
  EXPECT_TRUE(accepts(g, std::string(100000, 'a') + "b"));
}

TEST(Gbnf, EmptyAlternative) {
  auto g = Grammar::parse_gbnf("root ::= \"a\" opt\nopt ::= | \"b\"\n");
  EXPECT_TRUE(accepts(g, "a"));
  EXPECT_TRUE(accepts(g, "ab"));
  EXPECT_FALSE(accepts(g, "abb"));
}

TEST(Matcher, CompleteFinishedAndEog) {
  using test::byte_token;
  auto g = Grammar::parse_gbnf("root ::= \"ab\" \"c\"?\n");
  Matcher m(g, test::byte_tokenizer());
  EXPECT_FALSE(m.is_complete());
  EXPECT_FALSE(m.allows(test::kEos));
  EXPECT_THROW(m.accept(test::kEos), Error);
  EXPECT_THROW(m.accept(byte_token('x')), Error);
  EXPECT_THROW(m.accept(1), Error);      // <s>: a control token, never allowed
  EXPECT_THROW(m.accept(99999), Error);  // out of range
  m.accept(byte_token('a'));
  m.accept(byte_token('b'));
  EXPECT_TRUE(m.is_complete());
  EXPECT_FALSE(m.is_finished());
  EXPECT_TRUE(m.allows(test::kEos));
  m.accept(byte_token('c'));
  EXPECT_TRUE(m.is_finished());
  std::vector<float> logits(static_cast<size_t>(test::byte_tokenizer().n_vocab()), 1.0f);
  m.mask_logits(logits.data());
  for (size_t i = 0; i < logits.size(); ++i)
    EXPECT_EQ(std::isinf(logits[i]), static_cast<int32_t>(i) != test::kEos) << i;
  m.accept(test::kEos);
  EXPECT_TRUE(m.is_finished());
  EXPECT_THROW(m.accept(byte_token('c')), Error);
}

TEST(Matcher, MaskAgreesWithAllows) {
  auto g = Grammar::parse_gbnf("root ::= [a-f]+ (\"é\" | \"中\")\n");
  Matcher m(g, test::byte_tokenizer());
  test::feed(m, "ab\xE4");  // inside 中
  std::vector<float> logits(static_cast<size_t>(test::byte_tokenizer().n_vocab()), 0.5f);
  m.mask_logits(logits.data());
  int allowed = 0;
  for (int32_t i = 0; i < static_cast<int32_t>(logits.size()); ++i) {
    EXPECT_EQ(!std::isinf(logits[i]), m.allows(i)) << i;
    allowed += !std::isinf(logits[i]);
  }
  EXPECT_EQ(allowed, 1);
  EXPECT_FALSE(std::isinf(logits[test::byte_token(0xB8)]));
}

TEST(Matcher, MovedMatcherKeepsState) {
  auto g = Grammar::parse_gbnf("root ::= \"xy\"\n");
  Matcher a(g, test::byte_tokenizer());
  a.accept(test::byte_token('x'));
  Matcher b = std::move(a);
  EXPECT_TRUE(b.allows(test::byte_token('y')));
  EXPECT_FALSE(b.allows(test::byte_token('x')));
}

}  // namespace
}  // namespace hai::grammar
