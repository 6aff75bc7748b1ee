// UTF-8 helpers for the string filters and methods of the Jinja interpreter:
// decoding to code points, case mapping (utf8proc) and Unicode whitespace.
// Invalid bytes decode as U+FFFD, one byte at a time, so no input can make
// these functions read out of bounds or loop forever.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/utf8.h"

namespace hai::chat::utf8 {

// The codec itself is the project's one (engine/common/utf8.h).
using hai::utf8::append;
using hai::utf8::code_points;
using hai::utf8::decode;
using hai::utf8::encode;
using hai::utf8::find_invalid;
using hai::utf8::kReplacement;

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
