// Office Open XML: DOCX paragraphs and headings, XLSX rows as records.
// Both are zip archives of XML parts (libzip + libxml2).
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <zip.h>

#include <cstring>
#include <functional>
#include <map>
#include <memory>

#include "engine/common/error.h"
#include "kb/extract.h"
#include "kb/text.h"

namespace hai::kb {

namespace {

class ZipArchive {
 public:
  ZipArchive(std::string_view bytes, const std::string& what) : what_(what) {
    if (bytes.substr(0, 2) != "PK") throw Error(what + ": not a zip archive (Office files are zip archives)");
    zip_error_t err;
    zip_error_init(&err);
    zip_source_t* src = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &err);
    if (!src) throw Error(what + ": cannot read archive");
    zip_ = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &err);
    if (!zip_) {
      zip_source_free(src);
      std::string msg = zip_error_strerror(&err);
      zip_error_fini(&err);
      throw Error(what + ": broken zip archive (" + msg + ")");
    }
    zip_error_fini(&err);
  }
  ~ZipArchive() {
    if (zip_) zip_discard(zip_);
  }
  bool Has(const std::string& name) { return zip_name_locate(zip_, name.c_str(), 0) >= 0; }
  std::string Read(const std::string& name) {
    zip_stat_t st;
    if (zip_stat(zip_, name.c_str(), 0, &st) != 0) throw Error(what_ + ": missing part " + name);
    zip_file_t* f = zip_fopen(zip_, name.c_str(), 0);
    if (!f) throw Error(what_ + ": cannot open part " + name);
    std::string out(st.size, '\0');
    zip_int64_t n = zip_fread(f, out.data(), st.size);
    zip_fclose(f);
    if (n < 0 || static_cast<zip_uint64_t>(n) != st.size) throw Error(what_ + ": corrupt part " + name);
    return out;
  }

 private:
  std::string what_;
  zip_t* zip_ = nullptr;
};

struct XmlDoc {
  xmlDocPtr doc = nullptr;
  XmlDoc(const std::string& xml, const std::string& what, const std::string& part) {
    doc = xmlReadMemory(xml.data(), static_cast<int>(xml.size()), part.c_str(), nullptr,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_HUGE);
    if (!doc) throw Error(what + ": malformed XML in " + part);
  }
  ~XmlDoc() { xmlFreeDoc(doc); }
  xmlNodePtr root() const { return xmlDocGetRootElement(doc); }
};

bool Is(xmlNodePtr n, const char* local) {
  return n && n->type == XML_ELEMENT_NODE && std::strcmp(reinterpret_cast<const char*>(n->name), local) == 0;
}

std::string Attr(xmlNodePtr n, const char* local) {
  for (xmlAttrPtr a = n->properties; a; a = a->next) {
    if (std::strcmp(reinterpret_cast<const char*>(a->name), local) == 0) {
      xmlChar* v = xmlNodeListGetString(n->doc, a->children, 1);
      std::string s = v ? reinterpret_cast<char*>(v) : "";
      xmlFree(v);
      return s;
    }
  }
  return "";
}

std::string NodeText(xmlNodePtr n) {
  xmlChar* v = xmlNodeGetContent(n);
  std::string s = v ? reinterpret_cast<char*>(v) : "";
  xmlFree(v);
  return s;
}

// ---- DOCX ----

// Text of a w:p: runs' w:t, tabs and breaks.
void ParagraphText(xmlNodePtr n, std::string* out) {
  for (xmlNodePtr c = n->children; c; c = c->next) {
    if (c->type != XML_ELEMENT_NODE) continue;
    if (Is(c, "t")) {
      *out += NodeText(c);
    } else if (Is(c, "tab")) {
      *out += '\t';
    } else if (Is(c, "br") || Is(c, "cr")) {
      *out += '\n';
    } else if (!Is(c, "pPr") && !Is(c, "rPr") && !Is(c, "instrText") && !Is(c, "delText")) {
      ParagraphText(c, out);
    }
  }
}

// Heading level from the paragraph style ("Heading2", "heading 2", "Title").
int HeadingLevel(xmlNodePtr p) {
  for (xmlNodePtr c = p->children; c; c = c->next) {
    if (!Is(c, "pPr")) continue;
    for (xmlNodePtr s = c->children; s; s = s->next) {
      if (Is(s, "outlineLvl")) return std::atoi(Attr(s, "val").c_str()) + 1;
      if (!Is(s, "pStyle")) continue;
      std::string v = Attr(s, "val");
      for (auto& ch : v) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (v == "title") return 1;
      if (v.rfind("heading", 0) == 0) {
        std::string d;
        for (char ch : v)
          if (ch >= '0' && ch <= '9') d += ch;
        return d.empty() ? 1 : std::atoi(d.c_str());
      }
    }
  }
  return 0;
}

void WalkBody(xmlNodePtr n, SectionBuilder* b) {
  for (xmlNodePtr c = n->children; c; c = c->next) {
    if (Is(c, "p")) {
      std::string t;
      ParagraphText(c, &t);
      t = DropCjkSpaces(Nfkc(t));
      if (int level = HeadingLevel(c); level > 0) {
        b->Heading(level, t);
      } else {
        b->Paragraph(t);
      }
    } else if (Is(c, "tbl")) {
      // A table row becomes one line, its cells separated by tabs.
      for (xmlNodePtr tr = c->children; tr; tr = tr->next) {
        if (!Is(tr, "tr")) continue;
        std::string line;
        for (xmlNodePtr tc = tr->children; tc; tc = tc->next) {
          if (!Is(tc, "tc")) continue;
          std::string cell;
          for (xmlNodePtr p = tc->children; p; p = p->next)
            if (Is(p, "p")) {
              if (!cell.empty()) cell += ' ';
              ParagraphText(p, &cell);
            }
          if (!line.empty()) line += '\t';
          line += Trim(cell);
        }
        b->Paragraph(DropCjkSpaces(Nfkc(line)));
      }
    } else if (c->type == XML_ELEMENT_NODE) {
      WalkBody(c, b);  // w:body, w:sdt, w:sdtContent ...
    }
  }
}

// ---- XLSX ----

int ColumnIndex(const std::string& ref) {
  int col = 0;
  for (char ch : ref) {
    if (ch >= 'A' && ch <= 'Z') {
      col = col * 26 + (ch - 'A' + 1);
    } else {
      break;
    }
  }
  return col - 1;
}

}  // namespace

Extracted ExtractDocx(std::string_view bytes, const std::string& what) {
  ZipArchive zip(bytes, what);
  if (!zip.Has("word/document.xml")) throw Error(what + ": not a DOCX document (no word/document.xml)");
  XmlDoc xml(zip.Read("word/document.xml"), what, "word/document.xml");
  SectionBuilder b;
  WalkBody(xml.root(), &b);
  Extracted e;
  e.type = "docx";
  e.sections = b.Finish();
  return e;
}

Extracted ExtractXlsx(std::string_view bytes, const std::string& what) {
  ZipArchive zip(bytes, what);
  if (!zip.Has("xl/workbook.xml")) throw Error(what + ": not an XLSX workbook (no xl/workbook.xml)");
  std::vector<std::string> shared;
  if (zip.Has("xl/sharedStrings.xml")) {
    XmlDoc ss(zip.Read("xl/sharedStrings.xml"), what, "xl/sharedStrings.xml");
    for (xmlNodePtr si = ss.root()->children; si; si = si->next)
      if (Is(si, "si")) {
        // Rich text: concatenate the runs' t elements, skipping phonetic runs.
        std::string s;
        for (xmlNodePtr c = si->children; c; c = c->next) {
          if (Is(c, "t")) s += NodeText(c);
          if (Is(c, "r"))
            for (xmlNodePtr t = c->children; t; t = t->next)
              if (Is(t, "t")) s += NodeText(t);
        }
        shared.push_back(s);
      }
  }
  // Sheet names and their parts, through the workbook relationships.
  std::map<std::string, std::string> rel_target;
  if (zip.Has("xl/_rels/workbook.xml.rels")) {
    XmlDoc rels(zip.Read("xl/_rels/workbook.xml.rels"), what, "xl/_rels/workbook.xml.rels");
    for (xmlNodePtr r = rels.root()->children; r; r = r->next)
      if (Is(r, "Relationship")) rel_target[Attr(r, "Id")] = Attr(r, "Target");
  }
  XmlDoc wb(zip.Read("xl/workbook.xml"), what, "xl/workbook.xml");
  std::vector<std::pair<std::string, std::string>> sheets;  // name, part
  std::function<void(xmlNodePtr)> find_sheets = [&](xmlNodePtr n) {
    for (xmlNodePtr c = n->children; c; c = c->next) {
      if (Is(c, "sheet")) {
        std::string target = rel_target[Attr(c, "id")];
        if (target.empty()) target = "worksheets/sheet" + std::to_string(sheets.size() + 1) + ".xml";
        if (target[0] == '/') {
          target = target.substr(1);
        } else {
          target = "xl/" + target;
        }
        sheets.emplace_back(Attr(c, "name"), target);
      } else if (c->type == XML_ELEMENT_NODE) {
        find_sheets(c);
      }
    }
  };
  find_sheets(wb.root());
  if (sheets.empty()) throw Error(what + ": XLSX workbook lists no sheets");
  SectionBuilder b;
  for (const auto& sheet : sheets) {
    // Named copies: a lambda below uses them (clang cannot capture a structured binding).
    const std::string& name = sheet.first;
    const std::string& part = sheet.second;
    XmlDoc sh(zip.Read(part), what, part);
    std::vector<std::vector<std::string>> rows;
    std::function<void(xmlNodePtr)> walk = [&](xmlNodePtr n) {
      for (xmlNodePtr c = n->children; c; c = c->next) {
        if (Is(c, "row")) {
          // Keep spreadsheet row numbers: pad skipped rows with empty ones.
          int r = std::atoi(Attr(c, "r").c_str());
          while (r > 0 && static_cast<int>(rows.size()) < r - 1) rows.emplace_back();
          std::vector<std::string> row;
          for (xmlNodePtr cell = c->children; cell; cell = cell->next) {
            if (!Is(cell, "c")) continue;
            int col = ColumnIndex(Attr(cell, "r"));
            if (col < 0) col = static_cast<int>(row.size());
            std::string t = Attr(cell, "t"), v;
            for (xmlNodePtr x = cell->children; x; x = x->next) {
              if (Is(x, "v")) v = NodeText(x);
              if (Is(x, "is")) v = NodeText(x);
            }
            if (t == "s") {
              size_t idx = static_cast<size_t>(std::atol(v.c_str()));
              if (idx >= shared.size())
                throw Error(what + ": " + part + ": shared string index " + v + " out of range");
              v = shared[idx];
            } else if (t == "b") {
              v = v == "1" ? "TRUE" : "FALSE";
            }
            if (static_cast<int>(row.size()) <= col) row.resize(col + 1);
            row[col] = v;
          }
          rows.push_back(std::move(row));
        } else if (c->type == XML_ELEMENT_NODE) {
          walk(c);
        }
      }
    };
    walk(sh.root());
    // Header = first non-empty row; records keep their spreadsheet row numbers.
    size_t h = 0;
    while (h < rows.size() && rows[h].empty()) ++h;
    if (h >= rows.size()) continue;
    const auto& header = rows[h];
    for (size_t r = h + 1; r < rows.size(); ++r) {
      std::string rec;
      for (size_t c = 0; c < rows[r].size(); ++c) {
        std::string v = Trim(DropCjkSpaces(Nfkc(rows[r][c])));
        if (v.empty()) continue;
        std::string hd = c < header.size() ? Trim(Nfkc(header[c])) : "";
        if (hd.empty()) hd = "column " + std::to_string(c + 1);
        if (!rec.empty()) rec += "; ";
        rec += hd + ": " + v;
      }
      b.Record(rec, static_cast<int>(r + 1), name);
    }
  }
  Extracted e;
  e.type = "xlsx";
  e.sections = b.Finish();
  return e;
}

}  // namespace hai::kb
