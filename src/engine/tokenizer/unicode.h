// Unicode helpers for the tokenizers: UTF-8 validation and decoding, code
// point classes (from utf8proc, Unicode 15), normalization forms, and the
// GPT-2 byte <-> printable code point mapping used by byte-level BPE.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hai::unicode {

// Length in bytes of the UTF-8 sequence that starts with `first` (1 for
// continuation or invalid lead bytes, so a scanner always moves forward).
inline size_t utf8_len(uint8_t first) {
  if (first < 0x80) return 1;
  if ((first & 0xE0) == 0xC0) return 2;
  if ((first & 0xF0) == 0xE0) return 3;
  if ((first & 0xF8) == 0xF0) return 4;
  return 1;
}

// Throws hai::Error("<what>: invalid UTF-8 at byte N ...") unless `text` is
// well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
void validate_utf8(std::string_view text, std::string_view what = "input text");
bool is_valid_utf8(std::string_view text);

// Decodes valid UTF-8 (call validate_utf8 first).
std::vector<uint32_t> decode_utf8(std::string_view text);
// Decodes the code point starting at text[pos] and advances pos.
uint32_t next_cpt(std::string_view text, size_t& pos);
void append_utf8(std::string& out, uint32_t cpt);
std::string cpt_to_utf8(uint32_t cpt);

// General categories, as the first letter of the Unicode category.
bool is_letter(uint32_t cpt);       // L*
bool is_number(uint32_t cpt);       // N*
bool is_mark(uint32_t cpt);         // M*
bool is_nonspacing_mark(uint32_t cpt);  // Mn
bool is_punctuation(uint32_t cpt);  // P*
bool is_symbol(uint32_t cpt);       // S*
bool is_control(uint32_t cpt);      // C* (Cc, Cf, Cs, Co, Cn)
bool is_separator(uint32_t cpt);    // Z*
// The White_Space property (what \s means in Unicode regexes).
bool is_whitespace(uint32_t cpt);
uint32_t to_lower(uint32_t cpt);
uint32_t to_upper(uint32_t cpt);

enum class Form { NFC, NFD, NFKC, NFKD };
// Normalizes valid UTF-8.
std::string normalize(std::string_view text, Form form);
std::string to_lower(std::string_view text);

// GPT-2 byte-level BPE: each byte is shown as a printable code point.
const std::string& byte_to_unicode(uint8_t byte);  // UTF-8 of the code point
// The byte a code point stands for, or -1 if it is not one of the 256.
int unicode_to_byte(uint32_t cpt);
// Maps every byte of `text` to its printable code point.
std::string bytes_to_unicode(std::string_view text);

}  // namespace hai::unicode
