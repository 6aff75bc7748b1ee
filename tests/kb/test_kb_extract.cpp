// Each document format, generated in the test, and each broken input.
#include <gtest/gtest.h>

#include "engine/common/error.h"
#include "kb/extract.h"
#include "kb/text.h"
#include "kb/kb_test_util.h"

using namespace hai::kb;
using hai::kbtest::TempDir;
using hai::kbtest::WriteFile;

namespace {

std::string AllText(const Extracted& e) {
  std::string s;
  for (auto& sec : e.sections) s += sec.text + "\n";
  return s;
}

// Expects ExtractFile(path) to throw an error whose message has the path
// and `fragment`.
void ExpectError(const std::string& path, const std::string& fragment) {
  try {
    ExtractFile(path);
    ADD_FAILURE() << path << " was accepted";
  } catch (const hai::Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find(fragment), std::string::npos) << m;
  }
}

}  // namespace

TEST(KbExtract, TypesFromExtensions) {
  EXPECT_EQ(TypeForPath("a/b.TXT"), "txt");
  EXPECT_EQ(TypeForPath("x.markdown"), "md");
  EXPECT_EQ(TypeForPath("x.htm"), "html");
  EXPECT_EQ(TypeForPath("x.pdf"), "pdf");
  EXPECT_EQ(TypeForPath("x.docx"), "docx");
  EXPECT_EQ(TypeForPath("x.tsv"), "csv");
  EXPECT_EQ(TypeForPath("x.xlsx"), "xlsx");
  EXPECT_EQ(TypeForPath("x.exe"), "");
  EXPECT_EQ(TypeForPath("dir.d/noext"), "");
}

TEST(KbExtract, PlainTextWithHeadings) {
  TempDir d;
  WriteFile(d / "a.txt", "一、总体态势\n大模型发展迅速。\n(一)技术\n缩放定律依然有效。\n");
  Extracted e = ExtractFile(d / "a.txt");
  EXPECT_EQ(e.type, "txt");
  EXPECT_EQ(e.encoding, "UTF-8");
  ASSERT_EQ(e.sections.size(), 2u);
  EXPECT_EQ(e.sections[0].heading, "一、总体态势");
  EXPECT_EQ(e.sections[1].heading, "一、总体态势 > (一)技术");
  EXPECT_NE(e.sections[1].text.find("缩放定律依然有效。"), std::string::npos);
}

TEST(KbExtract, Markdown) {
  TempDir d;
  WriteFile(d / "a.md",
            "---\ntitle: 报告\ndate: 2024\n---\n# Intro\nSee [the docs](http://x) and **bold** text.\n"
            "![img](http://i)\n## Part two\nMore `code` here.\n");
  Extracted e = ExtractFile(d / "a.md");
  std::string all = AllText(e);
  EXPECT_NE(all.find("See the docs and bold text."), std::string::npos) << all;
  EXPECT_EQ(all.find("http://"), std::string::npos) << all;
  EXPECT_EQ(all.find("date:"), std::string::npos) << all;
  EXPECT_EQ(e.sections.back().heading, "Intro > Part two");
}

TEST(KbExtract, Html) {
  TempDir d;
  WriteFile(d / "p.html",
            "<html><head><title>T</title><style>body{color:red}</style><script>var x=1;</script></head>"
            "<body><h1>大模型 报告</h1><p>第一段 文字，<b>加粗</b>。</p><h2>Details</h2><ul><li>one</li>"
            "<li>two</li></ul><table><tr><td>a</td><td>b</td></tr></table></body></html>");
  Extracted e = ExtractFile(d / "p.html");
  std::string all = AllText(e);
  EXPECT_EQ(all.find("color:red"), std::string::npos);
  EXPECT_EQ(all.find("var x"), std::string::npos);
  EXPECT_NE(all.find("第一段文字,加粗。"), std::string::npos) << all;
  EXPECT_NE(all.find("one\ntwo"), std::string::npos) << all;
  EXPECT_EQ(e.sections.back().heading, "大模型报告 > Details");
}

TEST(KbExtract, CsvRowsAsRecords) {
  TempDir d;
  WriteFile(d / "t.csv", "name,city,note\nAlice,北京,\"says \"\"hi\"\", twice\"\nBob,上海,\"multi\nline\"\n\n");
  Extracted e = ExtractFile(d / "t.csv");
  ASSERT_EQ(e.sections.size(), 2u);
  EXPECT_EQ(e.sections[0].text, "name: Alice; city: 北京; note: says \"hi\", twice");
  EXPECT_EQ(e.sections[0].row, 2);
  EXPECT_EQ(e.sections[1].row, 3);
  EXPECT_NE(e.sections[1].text.find("multi\nline"), std::string::npos);
}

TEST(KbExtract, CsvUnterminatedQuote) {
  TempDir d;
  WriteFile(d / "bad.csv", "a,b\n1,\"open\n2,3\n");
  ExpectError(d / "bad.csv", "unterminated quoted field starting at line 2");
}

TEST(KbExtract, GbkTextFile) {
  TempDir d;
  // "人工智能报告。" in GBK.
  WriteFile(d / "gbk.txt", "\xC8\xCB\xB9\xA4\xD6\xC7\xC4\xDC\xB1\xA8\xB8\xE6\xA1\xA3");
  Extracted e = ExtractFile(d / "gbk.txt");
  EXPECT_EQ(e.encoding, "GB18030");
  ASSERT_EQ(e.sections.size(), 1u);
  EXPECT_EQ(e.sections[0].text, "人工智能报告。");
}

TEST(KbExtract, Docx) {
  TempDir d;
  hai::kbtest::WriteDocx(d / "a.docx", {{"Title", "年度报告"},
                                        {"", "引言 段落。"},
                                        {"Heading2", "市场 规模"},
                                        {"", "市场规模达到 100 亿元。"}});
  Extracted e = ExtractFile(d / "a.docx");
  EXPECT_EQ(e.type, "docx");
  ASSERT_EQ(e.sections.size(), 2u);
  EXPECT_EQ(e.sections[0].heading, "年度报告");
  EXPECT_EQ(e.sections[1].heading, "年度报告 > 市场规模");
  EXPECT_NE(e.sections[1].text.find("市场规模达到100亿元。"), std::string::npos) << e.sections[1].text;
}

TEST(KbExtract, Xlsx) {
  TempDir d;
  hai::kbtest::WriteXlsx(d / "a.xlsx", "Models", {{"模型", "厂商"}, {"GPT-4", "OpenAI"}, {"通义千问", "阿里巴巴"}});
  Extracted e = ExtractFile(d / "a.xlsx");
  EXPECT_EQ(e.type, "xlsx");
  ASSERT_EQ(e.sections.size(), 2u);
  EXPECT_EQ(e.sections[1].text, "模型: 通义千问; 厂商: 阿里巴巴");
  EXPECT_EQ(e.sections[1].row, 3);
  EXPECT_EQ(e.sections[1].heading, "Models");
}

TEST(KbExtract, PdfPages) {
  TempDir d;
  WriteFile(d / "a.pdf", hai::kbtest::MakePdf({"Quantum computing page one.", "Second page about tokenizers."}));
  Extracted e = ExtractFile(d / "a.pdf");
  EXPECT_EQ(e.type, "pdf");
  ASSERT_EQ(e.sections.size(), 2u);
  EXPECT_EQ(e.sections[0].page, 1);
  EXPECT_EQ(e.sections[1].page, 2);
  EXPECT_NE(e.sections[0].text.find("Quantum computing page one."), std::string::npos) << e.sections[0].text;
  EXPECT_NE(e.sections[1].text.find("tokenizers"), std::string::npos) << e.sections[1].text;
}

TEST(KbExtract, BrokenInputs) {
  TempDir d;
  WriteFile(d / "fake.pdf", "this is not a pdf");
  ExpectError(d / "fake.pdf", "not a PDF");
  std::string pdf = hai::kbtest::MakePdf({"hello"});
  WriteFile(d / "trunc.pdf", pdf.substr(0, 40));
  ExpectError(d / "trunc.pdf", "PDF");
  WriteFile(d / "fake.docx", "PK\x03\x04garbage that is not a zip");
  ExpectError(d / "fake.docx", "zip");
  WriteFile(d / "plain.docx", "hello");
  ExpectError(d / "plain.docx", "not a zip archive");
  hai::kbtest::WriteZip(d / "nodoc.docx", {{"other.xml", "<a/>"}});
  ExpectError(d / "nodoc.docx", "word/document.xml");
  hai::kbtest::WriteZip(d / "badxml.docx", {{"word/document.xml", "<w:document><unclosed"}});
  ExpectError(d / "badxml.docx", "malformed XML");
  hai::kbtest::WriteZip(d / "nowb.xlsx", {{"a.xml", "<a/>"}});
  ExpectError(d / "nowb.xlsx", "xl/workbook.xml");
  WriteFile(d / "x.exe", "MZ");
  ExpectError(d / "x.exe", "unsupported file type");
  ExpectError(d / "missing.txt", "no such file");
  WriteFile(d / "empty.txt", "");
  ExpectError(d / "empty.txt", "no text");
  WriteFile(d / "bin.txt", std::string("\x00\x01\x02\xff\xfe\x80", 6));
  ExpectError(d / "bin.txt", "encoding");
}
