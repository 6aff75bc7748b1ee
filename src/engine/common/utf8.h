// The one UTF-8 codec of the project: decoding to code points and encoding
// back. Invalid bytes decode as U+FFFD, one byte at a time (overlong forms,
// surrogates and values past U+10FFFF included), so no input can make these
// functions read out of bounds or loop forever.
//
// Parts with their own rules on top (the tokenizer's llama.cpp-compatible
// decoding, the Jinja string methods, the knowledge base's character
// classes) build on these.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hai::utf8 {

constexpr uint32_t kReplacement = 0xFFFD;

// Decodes the code point at s[pos] (pos < s.size()) and advances pos past it.
uint32_t decode(std::string_view s, size_t& pos);
// Appends the UTF-8 bytes of `cp` (< 0x110000).
void append(std::string& out, uint32_t cp);
std::vector<uint32_t> code_points(std::string_view s);
std::string encode(const std::vector<uint32_t>& cps);
// Byte offset of the first invalid sequence, or npos when s is valid UTF-8.
size_t find_invalid(std::string_view s);

}  // namespace hai::utf8
