// PDF: the text layer of each page, through poppler's C++ API.
#include <poppler-document.h>
#include <poppler-global.h>
#include <poppler-page.h>

#include <memory>
#include <mutex>

#include "engine/common/error.h"
#include "kb/extract.h"
#include "kb/text.h"

namespace hai::kb {

namespace {
// poppler reports syntax problems on stderr; our errors say it better.
void Quiet(const std::string&, void*) {}
}  // namespace

Extracted ExtractPdf(std::string_view bytes, const std::string& what) {
  static std::once_flag once;
  std::call_once(once, [] { poppler::set_debug_error_function(Quiet, nullptr); });
  if (bytes.substr(0, 5) != "%PDF-") throw Error(what + ": not a PDF file (no %PDF- header)");
  std::vector<char> data(bytes.begin(), bytes.end());
  std::unique_ptr<poppler::document> doc(poppler::document::load_from_data(&data));
  if (!doc) throw Error(what + ": broken PDF (poppler cannot parse it)");
  if (doc->is_locked()) throw Error(what + ": encrypted PDF (password required)");
  const int pages = doc->pages();
  if (pages <= 0) throw Error(what + ": broken PDF (no pages)");
  // Pages joined with form feeds, so that running headers and hard wraps are
  // judged over the whole document, then split back into pages.
  std::string all;
  for (int i = 0; i < pages; ++i) {
    std::unique_ptr<poppler::page> p(doc->create_page(i));
    if (i > 0) all += '\f';
    if (!p) continue;
    poppler::byte_array utf8 = p->text().to_utf8();
    std::string t(utf8.begin(), utf8.end());
    for (char& c : t)
      if (c == '\f') c = '\n';
    all += t;
  }
  std::string cleaned = CleanExtractedText(all);
  Extracted e;
  e.type = "pdf";
  SectionBuilder b;
  int page = 1;
  size_t start = 0;
  while (true) {
    size_t ff = cleaned.find('\f', start);
    b.Page(page);
    b.PlainText(cleaned.substr(start, ff == std::string::npos ? std::string::npos : ff - start));
    if (ff == std::string::npos) break;
    start = ff + 1;
    ++page;
  }
  e.sections = b.Finish();
  if (e.sections.empty()) throw Error(what + ": PDF has no text layer (a scanned document needs OCR)");
  return e;
}

}  // namespace hai::kb
