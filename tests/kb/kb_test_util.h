// Helpers for the knowledge-base tests: temporary folders, files, and
// documents generated on the fly (zip-based Office files, a hand-made PDF).
#pragma once

#include <unistd.h>
#include <zip.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "engine/common/error.h"

namespace hai::kbtest {

// The message of the hai::Error that f throws, or "" when it throws none.
inline std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const hai::Error& e) {
    return e.what();
  }
  return "";
}

// A fresh temporary directory, removed when the object goes away.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/hai_kb_test_XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

inline void WriteFile(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

// Writes a zip archive holding `entries` (name -> content).
inline void WriteZip(const std::string& path, const std::map<std::string, std::string>& entries) {
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  if (!z) std::abort();
  for (auto& [name, content] : entries) {
    // libzip reads the buffer at zip_close: keep copies alive until then.
    char* copy = static_cast<char*>(std::malloc(content.size() + 1));
    std::copy(content.begin(), content.end(), copy);
    zip_source_t* src = zip_source_buffer(z, copy, content.size(), 1);
    zip_file_add(z, name.c_str(), src, ZIP_FL_OVERWRITE);
  }
  zip_close(z);
}

// A DOCX: paragraphs as (style, text); style "" for body text, "Heading1"...
inline std::string DocxXml(const std::vector<std::pair<std::string, std::string>>& paras) {
  std::string x =
      "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>"
      "<w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>";
  for (auto& [style, text] : paras) {
    x += "<w:p>";
    if (!style.empty()) x += "<w:pPr><w:pStyle w:val=\"" + style + "\"/></w:pPr>";
    x += "<w:r><w:t xml:space=\"preserve\">" + text + "</w:t></w:r></w:p>";
  }
  x += "</w:body></w:document>";
  return x;
}

inline void WriteDocx(const std::string& path, const std::vector<std::pair<std::string, std::string>>& paras) {
  WriteZip(path, {{"[Content_Types].xml", "<?xml version=\"1.0\"?><Types/>"}, {"word/document.xml", DocxXml(paras)}});
}

// An XLSX with one sheet `sheet`; rows of inline strings (first = header).
inline void WriteXlsx(const std::string& path, const std::string& sheet,
                      const std::vector<std::vector<std::string>>& rows) {
  std::string wb =
      "<?xml version=\"1.0\"?><workbook xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" "
      "xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"><sheets><sheet name=\"" +
      sheet + "\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>";
  std::string rels =
      "<?xml version=\"1.0\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
      "<Relationship Id=\"rId1\" Type=\"worksheet\" Target=\"worksheets/sheet1.xml\"/></Relationships>";
  // Strings go to the shared-string table, to exercise it.
  std::vector<std::string> shared;
  std::string sh = "<?xml version=\"1.0\"?><worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><sheetData>";
  for (size_t r = 0; r < rows.size(); ++r) {
    sh += "<row r=\"" + std::to_string(r + 1) + "\">";
    for (size_t c = 0; c < rows[r].size(); ++c) {
      std::string ref = std::string(1, static_cast<char>('A' + c)) + std::to_string(r + 1);
      sh += "<c r=\"" + ref + "\" t=\"s\"><v>" + std::to_string(shared.size()) + "</v></c>";
      shared.push_back(rows[r][c]);
    }
    sh += "</row>";
  }
  sh += "</sheetData></worksheet>";
  std::string sst = "<?xml version=\"1.0\"?><sst xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">";
  for (auto& s : shared) sst += "<si><t>" + s + "</t></si>";
  sst += "</sst>";
  WriteZip(path, {{"xl/workbook.xml", wb},
                  {"xl/_rels/workbook.xml.rels", rels},
                  {"xl/worksheets/sheet1.xml", sh},
                  {"xl/sharedStrings.xml", sst}});
}

// A minimal PDF, one page per string (ASCII text, Helvetica), with a
// correct cross-reference table.
inline std::string MakePdf(const std::vector<std::string>& pages) {
  std::vector<std::string> objs;
  const size_t n = pages.size();
  // 1: catalog, 2: pages, 3: font, then per page: page object, content stream.
  objs.push_back("<< /Type /Catalog /Pages 2 0 R >>");
  std::string kids;
  for (size_t i = 0; i < n; ++i) kids += std::to_string(4 + 2 * i) + " 0 R ";
  objs.push_back("<< /Type /Pages /Kids [" + kids + "] /Count " + std::to_string(n) + " >>");
  objs.push_back("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>");
  for (size_t i = 0; i < n; ++i) {
    objs.push_back("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents " + std::to_string(5 + 2 * i) +
                   " 0 R /Resources << /Font << /F1 3 0 R >> >> >>");
    std::string stream = "BT /F1 12 Tf 72 700 Td (" + pages[i] + ") Tj ET";
    objs.push_back("<< /Length " + std::to_string(stream.size()) + " >>\nstream\n" + stream + "\nendstream");
  }
  std::string pdf = "%PDF-1.4\n";
  std::vector<size_t> offsets;
  for (size_t i = 0; i < objs.size(); ++i) {
    offsets.push_back(pdf.size());
    pdf += std::to_string(i + 1) + " 0 obj\n" + objs[i] + "\nendobj\n";
  }
  size_t xref = pdf.size();
  pdf += "xref\n0 " + std::to_string(objs.size() + 1) + "\n0000000000 65535 f \n";
  for (size_t off : offsets) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%010zu 00000 n \n", off);
    pdf += buf;
  }
  pdf += "trailer\n<< /Size " + std::to_string(objs.size() + 1) + " /Root 1 0 R >>\nstartxref\n" +
         std::to_string(xref) + "\n%%EOF\n";
  return pdf;
}

}  // namespace hai::kbtest
