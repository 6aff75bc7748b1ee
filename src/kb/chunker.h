// Chunking: a document's sections become passages of about `size`
// characters that end on sentence boundaries (Chinese 。！？； and English
// . ! ? ;), consecutive chunks sharing about `overlap` characters of whole
// sentences. Chunks never cross a section, so each has one page/heading.
// Offsets count Unicode code points in the document text that Join()
// builds, and text == that substring, always.
#pragma once

#include <string>
#include <vector>

#include "kb/extract.h"

namespace hai::kb {

struct ChunkerOptions {
  // Defaults chosen on the dev split of benchmarks/kb_eval (400, 600, 800
  // and 1000 tried): 800 gives the best paraphrase recall at a median chunk
  // of ~480 characters (sections end chunks early).
  int size = 800;     // maximum characters per chunk (code points)
  int overlap = 150;  // characters of trailing sentences repeated in the next chunk
};

struct Chunk {
  std::string text;
  int64_t start = 0;  // code point offsets into the document text, [start, end)
  int64_t end = 0;
  int page = 0;
  int row = 0;
  std::string heading;
};

// The document text: the sections' texts joined by "\n\n".
std::string JoinSections(const std::vector<Section>& sections);

// Splits the sections into chunks. Throws hai::Error on invalid options
// (size < 50, overlap < 0 or overlap >= size).
std::vector<Chunk> ChunkSections(const std::vector<Section>& sections, const ChunkerOptions& opt);

// Sentence spans [begin, end) in code points of `text`; white space between
// sentences is left out, so every span starts and ends with a visible
// character.
std::vector<std::pair<size_t, size_t>> SplitSentences(const std::u32string& text);

void ValidateChunkerOptions(const ChunkerOptions& opt);

}  // namespace hai::kb
