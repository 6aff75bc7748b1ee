// UTF-8 helpers for the string filters and methods of the Jinja interpreter:
// decoding to code points, case mapping (utf8proc) and Unicode whitespace.
// Invalid bytes decode as U+FFFD, one byte at a time, so no input can make
// these functions read out of bounds or loop forever.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hai::chat::utf8 {

constexpr uint32_t kReplacement = 0xFFFD;

// Decodes the code point at s[pos] and advances pos past it.
uint32_t decode(std::string_view s, size_t& pos);
void append(std::string& out, uint32_t cp);
std::vector<uint32_t> code_points(std::string_view s);
std::string encode(const std::vector<uint32_t>& cps);
// Byte offset of the first invalid sequence, or npos when s is valid UTF-8.
size_t find_invalid(std::string_view s);

// Python's str.isspace() for one code point.
bool is_space(uint32_t cp);
bool is_alnum(uint32_t cp);
uint32_t to_upper(uint32_t cp);
uint32_t to_lower(uint32_t cp);

std::string upper(std::string_view s);
std::string lower(std::string_view s);
// Python's str.title(): upper-case the first letter of each run of letters.
std::string title(std::string_view s);
// Python's str.capitalize(): first character upper, the rest lower.
std::string capitalize(std::string_view s);
// Strip Unicode whitespace (or, when `chars` is given, those code points).
std::string strip(std::string_view s, bool left, bool right, const std::string* chars = nullptr);

}  // namespace hai::chat::utf8
