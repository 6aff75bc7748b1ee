// HTML: visible text through libxml2's forgiving HTML parser; h1-h6 become
// headings, block elements end paragraphs, script/style are dropped.
#include <libxml/HTMLparser.h>
#include <libxml/tree.h>

#include <cstring>
#include <set>

#include "engine/common/error.h"
#include "kb/extract.h"
#include "kb/text.h"

namespace hai::kb {

namespace {

const std::set<std::string>& BlockTags() {
  static const std::set<std::string> k = {"p",     "div",   "li",      "ul",     "ol",   "tr",      "table",
                                          "br",    "hr",    "section", "article", "pre", "blockquote", "header",
                                          "footer", "nav",  "main",    "aside",  "dt",   "dd",      "dl",
                                          "figure", "figcaption", "form", "body", "caption", "title"};
  return k;
}

struct HtmlWalker {
  SectionBuilder* b;
  std::string para;

  void Flush() {
    // Collapse runs of white space (HTML rendering rules).
    std::string out;
    bool space = false;
    for (char c : para) {
      if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
        space = true;
      } else {
        if (space && !out.empty()) out += ' ';
        space = false;
        out += c;
      }
    }
    para.clear();
    out = DropCjkSpaces(Nfkc(out));
    if (!Trim(out).empty()) b->Paragraph(out);
  }

  void Walk(xmlNodePtr n) {
    for (xmlNodePtr c = n->children; c; c = c->next) {
      if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
        if (c->content) para += reinterpret_cast<const char*>(c->content);
        continue;
      }
      if (c->type != XML_ELEMENT_NODE) continue;
      std::string tag = reinterpret_cast<const char*>(c->name);
      if (tag == "script" || tag == "style" || tag == "noscript" || tag == "template" || tag == "svg") continue;
      if (tag.size() == 2 && tag[0] == 'h' && tag[1] >= '1' && tag[1] <= '6') {
        Flush();
        xmlChar* v = xmlNodeGetContent(c);
        std::string t = v ? reinterpret_cast<char*>(v) : "";
        xmlFree(v);
        para = t;
        std::string collapsed;
        std::swap(collapsed, para);
        for (char& ch : collapsed)
          if (ch == '\n' || ch == '\t' || ch == '\r') ch = ' ';
        b->Heading(tag[1] - '0', DropCjkSpaces(Nfkc(collapsed)));
        continue;
      }
      bool block = BlockTags().count(tag) > 0;
      if (tag == "td" || tag == "th") para += '\t';
      if (block) Flush();
      Walk(c);
      if (block) Flush();
    }
  }
};

}  // namespace

Extracted ExtractHtml(std::string_view bytes, const std::string& what) {
  Extracted e;
  e.type = "html";
  std::string text = ToUtf8(bytes, what, &e.encoding);
  htmlDocPtr doc = htmlReadMemory(text.data(), static_cast<int>(text.size()), what.c_str(), "UTF-8",
                                  HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                                      HTML_PARSE_NONET | HTML_PARSE_NOBLANKS);
  if (!doc) throw Error(what + ": cannot parse HTML");
  SectionBuilder b;
  HtmlWalker w{&b, ""};
  if (xmlNodePtr root = xmlDocGetRootElement(doc)) {
    w.Walk(root);
    w.Flush();
  }
  xmlFreeDoc(doc);
  e.sections = b.Finish();
  return e;
}

}  // namespace hai::kb
