// Extraction: from a file's bytes to the document's text, in sections. A
// section is a run of text with one location: a PDF page, the heading path
// it sits under ("一、总体态势 > (二) ..."), or a table row for CSV/XLSX
// records. Supported: plain text (UTF-8, UTF-16 with BOM, GB18030/GBK),
// Markdown, HTML, PDF (text layer), DOCX, CSV/TSV and XLSX.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hai::kb {

struct Section {
  std::string text;     // cleaned UTF-8, paragraphs separated by '\n'
  int page = 0;         // 1-based PDF page; 0 when the format has no pages
  int row = 0;          // spreadsheet/CSV row of a record; 0 otherwise
  std::string heading;  // heading path, or sheet name for records; may be empty
};

struct Extracted {
  std::string type;      // txt, md, html, pdf, docx, csv, xlsx
  std::string encoding;  // for text formats: the detected source encoding
  std::vector<Section> sections;
};

// The document type for a path, from its extension; empty when unsupported.
std::string TypeForPath(const std::string& path);

// Reads and extracts a file. Throws hai::Error with a message naming the
// file for an unsupported type, unreadable, corrupt or empty document.
Extracted ExtractFile(const std::string& path);
// Extracts bytes of a known type; `what` names the source in messages.
Extracted ExtractBytes(std::string_view bytes, const std::string& type, const std::string& what);

// Builds sections from paragraphs and headings as a document is walked.
class SectionBuilder {
 public:
  // Starts a section under a heading of `level` (1 = top); the heading text
  // is the section's first line.
  void Heading(int level, const std::string& text);
  void Paragraph(const std::string& text);
  // Starts a new page: following text goes into a section with that page.
  void Page(int page);
  // One record (a table row) as a section of its own.
  void Record(const std::string& text, int row, const std::string& heading);
  // Splits cleaned plain text into lines, recognising headings (DetectHeading).
  void PlainText(const std::string& cleaned);
  std::vector<Section> Finish();

 private:
  void Flush();
  std::string HeadingPath() const;

  std::vector<Section> sections_;
  std::vector<std::pair<int, std::string>> stack_;  // open headings
  std::string cur_;
  int page_ = 0;
};

// Per-format extractors (each in its own file). Each throws hai::Error.
Extracted ExtractPdf(std::string_view bytes, const std::string& what);
Extracted ExtractDocx(std::string_view bytes, const std::string& what);
Extracted ExtractXlsx(std::string_view bytes, const std::string& what);
Extracted ExtractHtml(std::string_view bytes, const std::string& what);

// Parses CSV (RFC 4180 quoting; ',' ';' or tab, guessed from the first line)
// into rows of fields. Throws hai::Error on an unterminated quoted field.
std::vector<std::vector<std::string>> ParseCsv(std::string_view text, const std::string& what, char delim = 0);
// Turns a table (first row = header) into record sections "h1: v1; h2: v2".
void AddRecords(SectionBuilder* b, const std::vector<std::vector<std::string>>& rows, const std::string& sheet);

}  // namespace hai::kb
