// JSON schema "pattern" -> GBNF (internal to the JSON schema translation).
#pragma once

#include <string>

namespace hai::grammar {

// A GBNF expression for the characters (JSON-escaped where JSON needs it)
// between the quotes of a string that matches the whole regular expression
// `pattern` (ECMA-262 subset, see pattern.cpp). Throws hai::Error starting
// with `where` (e.g. "JSON schema at '#/properties/id/pattern'") for a
// construct outside the subset.
std::string pattern_to_gbnf(const std::string& pattern, const std::string& where);

}  // namespace hai::grammar
