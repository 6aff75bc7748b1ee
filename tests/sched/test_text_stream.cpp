// TextStream: incremental output text with stop strings held back and
// UTF-8 characters never split.
#include <gtest/gtest.h>

#include "engine/sched/text_stream.h"

namespace hai::sched {
namespace {

TEST(Utf8, SanitizeKeepsValidText) {
  EXPECT_EQ(sanitize_utf8("abc \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80"), "abc \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80");
  EXPECT_EQ(sanitize_utf8(""), "");
}

TEST(Utf8, SanitizeReplacesMaximalSubparts) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(sanitize_utf8("a\x80" "b"), "a" + r + "b");              // lone continuation
  EXPECT_EQ(sanitize_utf8("a\xE4\xBD"), "a" + r);                    // cut short at the end
  EXPECT_EQ(sanitize_utf8("\xE4\xBD" "b"), r + "b");                 // cut short in the middle
  EXPECT_EQ(sanitize_utf8("\xC0\xAF"), r + r);                       // overlong: C0 never leads
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), r + r + r);               // surrogate: ED A0 ill-formed
  EXPECT_EQ(sanitize_utf8("\xF4\x90\x80\x80"), r + r + r + r);       // above U+10FFFF
  EXPECT_EQ(sanitize_utf8("\xFF"), r);
}

TEST(Utf8, IncompleteTail) {
  EXPECT_EQ(incomplete_utf8_tail(""), 0u);
  EXPECT_EQ(incomplete_utf8_tail("abc"), 0u);
  EXPECT_EQ(incomplete_utf8_tail("a\xE4"), 1u);
  EXPECT_EQ(incomplete_utf8_tail("a\xE4\xBD"), 2u);
  EXPECT_EQ(incomplete_utf8_tail("a\xE4\xBD\xA0"), 0u);        // complete
  EXPECT_EQ(incomplete_utf8_tail("\xF0\x9F\x98"), 3u);
  EXPECT_EQ(incomplete_utf8_tail("a\x80"), 0u);                // not a start of anything
  EXPECT_EQ(incomplete_utf8_tail("\xE0\x80"), 0u);             // E0 80 can never complete
}

TEST(TextStream, CharacterSplitAcrossTokens) {
  TextStream t;
  EXPECT_EQ(t.push("a\xE4"), "a");
  EXPECT_EQ(t.push("\xBD"), "");
  EXPECT_EQ(t.push("\xA0" "b"), "\xE4\xBD\xA0" "b");
  EXPECT_EQ(t.finish(), "");
  EXPECT_FALSE(t.stopped());
}

TEST(TextStream, IncompleteCharacterAtTheEndBecomesReplacement) {
  TextStream t;
  EXPECT_EQ(t.push("x\xF0\x9F"), "x");
  EXPECT_EQ(t.finish(), "\xEF\xBF\xBD");
}

TEST(TextStream, StopStringSplitAcrossTokens) {
  TextStream t({"END"});
  EXPECT_EQ(t.push("hello E"), "hello ");
  EXPECT_EQ(t.push("N"), "");
  EXPECT_EQ(t.push("D and more"), "");
  EXPECT_TRUE(t.stopped());
  EXPECT_EQ(t.finish(), "");
  EXPECT_EQ(t.push("ignored"), "");
}

TEST(TextStream, HeldPrefixThatDoesNotCompleteIsReleased) {
  TextStream t({"END"});
  EXPECT_EQ(t.push("an E"), "an ");
  EXPECT_EQ(t.push("Nx"), "ENx");
  EXPECT_EQ(t.push("EN"), "");
  EXPECT_EQ(t.finish(), "EN");  // the generation ended for another reason: it is output
}

TEST(TextStream, EarliestOfSeveralStops) {
  TextStream t({"cd", "b"});
  EXPECT_EQ(t.push("abcd"), "a");
  EXPECT_TRUE(t.stopped());
}

TEST(TextStream, StopInsideOneToken) {
  TextStream t({"\n\n"});
  EXPECT_EQ(t.push("one\n\ntwo"), "one");
  EXPECT_TRUE(t.stopped());
}

TEST(TextStream, OverlappingStopPrefixes) {
  // "aab": after "aa" the held part must be the longest stop prefix.
  TextStream t({"aab"});
  EXPECT_EQ(t.push("xa"), "x");
  EXPECT_EQ(t.push("a"), "");
  EXPECT_EQ(t.push("a"), "a");  // "aaa": the first 'a' can no longer start "aab"
  EXPECT_EQ(t.push("b"), "");
  EXPECT_TRUE(t.stopped());
}

TEST(TextStream, MultiByteStopString) {
  TextStream t({"\xE3\x80\x82"});  // "。"
  EXPECT_EQ(t.push("\xE4\xBD\xA0\xE3"), "\xE4\xBD\xA0");
  EXPECT_EQ(t.push("\x80"), "");
  EXPECT_EQ(t.push("\x82rest"), "");
  EXPECT_TRUE(t.stopped());
}

TEST(TextStream, InvalidBytesBeforeAStop) {
  TextStream t({"X"});
  EXPECT_EQ(t.push("\xE4X"), "\xEF\xBF\xBD");
  EXPECT_TRUE(t.stopped());
}

TEST(TextStream, EmptyStopStringsAreIgnored) {
  TextStream t({""});
  EXPECT_EQ(t.push("abc"), "abc");
  EXPECT_FALSE(t.stopped());
}

}  // namespace
}  // namespace hai::sched
