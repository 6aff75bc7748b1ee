#include "kb/extract.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "engine/common/error.h"
#include "kb/text.h"

namespace hai::kb {

// ---- SectionBuilder ----

std::string SectionBuilder::HeadingPath() const {
  std::string h;
  for (auto& [level, text] : stack_) {
    if (!h.empty()) h += " > ";
    h += text;
  }
  return h;
}

void SectionBuilder::Flush() {
  std::string t = Trim(cur_);
  cur_.clear();
  if (t.empty()) return;
  Section s;
  s.text = std::move(t);
  s.page = page_;
  s.heading = HeadingPath();
  sections_.push_back(std::move(s));
}

void SectionBuilder::Heading(int level, const std::string& text) {
  std::string t = Trim(text);
  if (t.empty()) return;
  Flush();
  while (!stack_.empty() && stack_.back().first >= level) stack_.pop_back();
  stack_.emplace_back(level, t);
  cur_ = t + "\n";
}

void SectionBuilder::Paragraph(const std::string& text) {
  std::string t = Trim(text);
  if (t.empty()) return;
  cur_ += t;
  cur_ += "\n";
}

void SectionBuilder::Page(int page) {
  Flush();
  page_ = page;
}

void SectionBuilder::Record(const std::string& text, int row, const std::string& heading) {
  Flush();
  std::string t = Trim(text);
  if (t.empty()) return;
  Section s;
  s.text = std::move(t);
  s.row = row;
  s.heading = heading;
  sections_.push_back(std::move(s));
}

void SectionBuilder::PlainText(const std::string& cleaned) {
  std::istringstream in(cleaned);
  std::string line;
  while (std::getline(in, line)) {
    HeadingMatch h = DetectHeading(line);
    if (h.is_heading) {
      Heading(h.level, h.text);
    } else {
      Paragraph(line);
    }
  }
}

std::vector<Section> SectionBuilder::Finish() {
  Flush();
  return std::move(sections_);
}

// ---- type detection and dispatch ----

std::string TypeForPath(const std::string& path) {
  std::string ext;
  size_t slash = path.find_last_of('/');
  size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == "txt" || ext == "text" || ext == "log") return "txt";
  if (ext == "md" || ext == "markdown") return "md";
  if (ext == "html" || ext == "htm" || ext == "xhtml") return "html";
  if (ext == "pdf") return "pdf";
  if (ext == "docx") return "docx";
  if (ext == "csv" || ext == "tsv") return "csv";
  if (ext == "xlsx") return "xlsx";
  return "";
}

namespace {

// Markdown to plain lines: drops front matter, images, link targets,
// emphasis marks and code fences; keeps '#' headings for DetectHeading.
std::string StripMarkdown(const std::string& md) {
  std::istringstream in(md);
  std::string line, out;
  bool first = true, front = false;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (first && line == "---") {
      front = true;
      first = false;
      continue;
    }
    first = false;
    if (front) {
      if (line == "---") front = false;
      // Keep the title of the front matter as a line of text.
      if (line.rfind("title:", 0) == 0) out += Trim(line.substr(6)) + "\n";
      continue;
    }
    if (line.rfind("```", 0) == 0 || line.rfind("~~~", 0) == 0) continue;
    std::string o;
    for (size_t i = 0; i < line.size();) {
      if (line.compare(i, 2, "![") == 0) {  // image: drop entirely
        size_t close = line.find("](", i);
        size_t end = close == std::string::npos ? std::string::npos : line.find(')', close);
        if (end != std::string::npos) {
          i = end + 1;
          continue;
        }
      }
      if (line[i] == '[') {  // link: keep the text
        size_t close = line.find("](", i);
        size_t end = close == std::string::npos ? std::string::npos : line.find(')', close);
        if (end != std::string::npos && line.find('\n', i) == std::string::npos) {
          o += line.substr(i + 1, close - i - 1);
          i = end + 1;
          continue;
        }
      }
      if (line.compare(i, 2, "**") == 0 || line.compare(i, 2, "__") == 0) {
        i += 2;
        continue;
      }
      if (line[i] == '`') {
        ++i;
        continue;
      }
      o += line[i++];
    }
    // Bare URLs (left by nested links and images) are not text.
    for (size_t u = o.find("http"); u != std::string::npos; u = o.find("http", u)) {
      if (o.compare(u, 7, "http://") != 0 && o.compare(u, 8, "https://") != 0) {
        ++u;
        continue;
      }
      size_t e = u;
      while (e < o.size() && o[e] != ' ' && o[e] != ')' && o[e] != '"') ++e;
      o.erase(u, e - u);
    }
    // List markers and block quotes.
    std::string t = Trim(o);
    if (t.rfind("> ", 0) == 0) t = t.substr(2);
    out += t + "\n";
  }
  return out;
}

Extracted ExtractText(std::string_view bytes, const std::string& type, const std::string& what) {
  Extracted e;
  e.type = type;
  std::string text = ToUtf8(bytes, what, &e.encoding);
  // Markdown saved as .txt (front matter first) is read as Markdown.
  bool front_matter = text.rfind("---\n", 0) == 0 && text.find("\n---", 3) != std::string::npos &&
                      text.find("\n---", 3) < 4000;
  if (type == "md" || front_matter) text = StripMarkdown(text);
  SectionBuilder b;
  b.PlainText(CleanExtractedText(text));
  e.sections = b.Finish();
  return e;
}

Extracted ExtractCsv(std::string_view bytes, const std::string& what) {
  Extracted e;
  e.type = "csv";
  std::string text = ToUtf8(bytes, what, &e.encoding);
  char delim = 0;
  if (what.size() > 4 && what.substr(what.size() - 4) == ".tsv") delim = '\t';
  SectionBuilder b;
  AddRecords(&b, ParseCsv(text, what, delim), "");
  e.sections = b.Finish();
  return e;
}

}  // namespace

std::vector<std::vector<std::string>> ParseCsv(std::string_view text, const std::string& what, char delim) {
  if (delim == 0) {
    std::string_view first = text.substr(0, text.find('\n'));
    size_t commas = std::count(first.begin(), first.end(), ',');
    size_t tabs = std::count(first.begin(), first.end(), '\t');
    size_t semis = std::count(first.begin(), first.end(), ';');
    delim = tabs > commas && tabs >= semis ? '\t' : (semis > commas ? ';' : ',');
  }
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, field_started = false;
  size_t line = 1, quote_line = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"' && !field_started) {
      quoted = true;
      field_started = true;
      quote_line = line;
    } else if (c == delim) {
      row.push_back(field);
      field.clear();
      field_started = false;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      row.push_back(field);
      field.clear();
      field_started = false;
      rows.push_back(std::move(row));
      row.clear();
      ++line;
    } else {
      field += c;
      field_started = true;
    }
  }
  if (quoted) throw Error(what + ": unterminated quoted field starting at line " + std::to_string(quote_line));
  if (field_started || !row.empty()) {
    row.push_back(field);
    rows.push_back(std::move(row));
  }
  // Drop empty lines.
  std::erase_if(rows, [](const std::vector<std::string>& r) {
    return std::all_of(r.begin(), r.end(), [](const std::string& f) { return Trim(f).empty(); });
  });
  return rows;
}

void AddRecords(SectionBuilder* b, const std::vector<std::vector<std::string>>& rows, const std::string& sheet) {
  if (rows.empty()) return;
  const auto& header = rows[0];
  for (size_t r = 1; r < rows.size(); ++r) {
    std::string rec;
    for (size_t c = 0; c < rows[r].size(); ++c) {
      std::string v = Trim(DropCjkSpaces(Nfkc(rows[r][c])));
      if (v.empty()) continue;
      std::string h = c < header.size() ? Trim(Nfkc(header[c])) : "";
      if (h.empty()) h = "column " + std::to_string(c + 1);
      if (!rec.empty()) rec += "; ";
      rec += h + ": " + v;
    }
    // Row numbers count the header as row 1, as a spreadsheet shows them.
    b->Record(rec, static_cast<int>(r + 1), sheet);
  }
  if (rows.size() == 1) {  // a header only: keep it as one record
    std::string rec;
    for (auto& f : header) rec += (rec.empty() ? "" : "; ") + Trim(Nfkc(f));
    b->Record(rec, 1, sheet);
  }
}

Extracted ExtractBytes(std::string_view bytes, const std::string& type, const std::string& what) {
  Extracted e;
  if (type == "txt" || type == "md") {
    e = ExtractText(bytes, type, what);
  } else if (type == "csv") {
    e = ExtractCsv(bytes, what);
  } else if (type == "html") {
    e = ExtractHtml(bytes, what);
  } else if (type == "pdf") {
    e = ExtractPdf(bytes, what);
  } else if (type == "docx") {
    e = ExtractDocx(bytes, what);
  } else if (type == "xlsx") {
    e = ExtractXlsx(bytes, what);
  } else {
    throw Error(what + ": unsupported document type '" + type + "'");
  }
  if (e.sections.empty()) throw Error(what + ": no text found in the " + e.type + " document");
  return e;
}

Extracted ExtractFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw Error(path + ": no such file");
  if (!S_ISREG(st.st_mode)) throw Error(path + ": not a regular file");
  std::string type = TypeForPath(path);
  if (type.empty())
    throw Error(path + ": unsupported file type (supported: .txt .md .html .htm .pdf .docx .csv .tsv .xlsx)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open for reading");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return ExtractBytes(bytes, type, path);
}

}  // namespace hai::kb
