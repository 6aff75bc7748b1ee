// The text of one generation as it is streamed: the bytes of each token's
// piece go in, and text comes out only once it is certain to belong to the
// output.
//
//   TextStream t({"\n\n", "END"});
//   out += t.push(piece);          // per token; may be "" while bytes are held
//   if (t.stopped()) ...           // a stop string appeared: generation ends
//   out += t.finish();             // at the end: what was held back
//
// Two things hold bytes back:
//   - a possible start of a stop string at the end of the text (it could be
//     completed by the next token, and no part of a stop string is output);
//   - an incomplete UTF-8 character at the end (a token may carry half of
//     one).
// The output is always valid UTF-8: byte sequences that are not UTF-8, and
// an incomplete character left at the end, become U+FFFD. Stop strings are
// matched on the raw bytes; the text before the first one is output and
// everything from it on is dropped.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hai::sched {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stops = {});

  // Appends `bytes` and returns the text that can be output now. After a
  // stop string appeared (stopped()), further input is ignored.
  std::string push(std::string_view bytes);
  bool stopped() const { return stopped_; }
  // The text still held back (nothing after a stop string). The stream is
  // empty afterwards.
  std::string finish();

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

// `bytes` as valid UTF-8: each maximal invalid subpart (ill-formed or
// incomplete sequence, as Unicode's "substitution of maximal subparts")
// becomes U+FFFD.
std::string sanitize_utf8(std::string_view bytes);

// How many bytes at the end of `bytes` are the beginning of a UTF-8
// character that is not complete yet (0..3).
size_t incomplete_utf8_tail(std::string_view bytes);

}  // namespace hai::sched
