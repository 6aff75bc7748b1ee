// Text utilities for the knowledge base: UTF-8 decoding, character classes,
// encoding detection, Unicode normalisation and the clean-up of text that
// came out of a PDF (hard-wrapped lines, stray spaces between CJK characters).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hai::kb {

// Decodes `s` into code points. Invalid sequences become U+FFFD.
std::u32string DecodeUtf8(std::string_view s);
// Encodes code points as UTF-8.
std::string EncodeUtf8(std::u32string_view s);
void AppendUtf8(std::string* out, char32_t c);
// Number of code points in valid UTF-8 `s`.
size_t CountCodePoints(std::string_view s);
// True when `s` is well-formed UTF-8.
bool IsValidUtf8(std::string_view s);

// Character classes.
bool IsHan(char32_t c);          // CJK unified ideographs (and extensions)
bool IsCjk(char32_t c);          // Han, kana, hangul, CJK punctuation, fullwidth forms
bool IsAsciiAlnum(char32_t c);
bool IsSpace(char32_t c);        // Unicode white space, not newlines
bool IsSentenceEnd(char32_t c);  // 。！？!?；; and the ellipsis
// East-Asian display width: 2 for CJK, 1 otherwise.
int DisplayWidth(char32_t c);

// Converts raw file bytes to UTF-8. UTF-8 (with or without BOM) passes
// through; UTF-16 with a BOM and GB18030/GBK are converted with iconv.
// `*encoding` receives the detected encoding name. Throws hai::Error naming
// `what` (usually the file path) when the bytes are in no supported encoding.
std::string ToUtf8(std::string_view bytes, const std::string& what, std::string* encoding = nullptr);

// Unicode NFKC normalisation (fullwidth forms to ASCII, compatibility
// ideographs to their canonical form ...).
std::string Nfkc(std::string_view s);

// Removes white space between two CJK characters, and between a CJK
// character and a digit ("2024 年" -> "2024年"). Newlines are kept.
std::string DropCjkSpaces(std::string_view s);

// A heading recognised in plain text, with its nesting level (1 = top).
struct HeadingMatch {
  bool is_heading = false;
  int level = 0;
  std::string text;  // the heading without markdown '#' marks
};
// Recognises a heading line: markdown "# Title", Chinese numbering
// ("第二章 ...", "一、...", "(一)...", "1.2 ..."), slide numbering ("01. ...").
HeadingMatch DetectHeading(std::string_view line);

// Cleans text extracted from a PDF or a plain-text file: NFKC, CJK space
// removal, drops page numbers, table-of-contents dot leaders and running
// headers, and joins hard-wrapped lines into paragraphs (lines that end
// without sentence punctuation at about the wrap width continue on the next
// line). Paragraphs are separated by one '\n'.
std::string CleanExtractedText(std::string_view text);

// Trims ASCII/Unicode white space at both ends.
std::string Trim(std::string_view s);

}  // namespace hai::kb
