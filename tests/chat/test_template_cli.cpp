// `hai template`: the command-line layer over chat::Template — template from a
// file or a GGUF model, context from a file or stdin, batch mode, and the
// error messages for bad input.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "common/test_util.h"

using hai::test::fixture;
using hai::test::run_hai;

namespace {

class TemplateCli : public ::testing::Test {
 protected:
  std::string dir_;
  void SetUp() override {
    dir_ = "/tmp/hai_template_cli_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ::mkdir(dir_.c_str(), 0700);
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }
  std::string write(const std::string& name, const std::string& content) {
    std::string p = dir_ + "/" + name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
};

const char* kTpl =
    "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}{{ eos_token }}";

}  // namespace

TEST_F(TemplateCli, RendersFileContext) {
  std::string t = write("t.jinja", kTpl);
  std::string c = write("c.json", R"({"messages":[{"role":"user","content":"héllo"}],"bos_token":"<s>","eos_token":"</s>"})");
  auto r = run_hai("template --template " + t + " --messages " + c);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "<s>[user]héllo</s>");
  r = run_hai("template --template " + t + " --messages " + c + " --add-generation-prompt --bos B --eos E");
  EXPECT_EQ(r.out, "B[user]héllo[assistant]E");
}

TEST_F(TemplateCli, ReadsStdinAndBareMessageArrays) {
  std::string t = write("t.jinja", kTpl);
  std::string c = write("c.json", R"([{"role":"user","content":"a"},{"role":"assistant","content":"b"}])");
  auto r = hai::test::run("cat " + c + " | " + hai::test::hai_bin() + " template --template " + t + " --messages -");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[user]a[assistant]b");
}

TEST_F(TemplateCli, TemplateFromModelAndChatMlFallback) {
  std::string c = write("c.json", R"([{"role":"user","content":"hi"}])");
  auto r = run_hai("template -m " + fixture("tokenizer/ggml-vocab-phi-3.gguf") + " --messages " + c + " --add-generation-prompt");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "<s><|user|>\nhi<|end|>\n<|assistant|>\n");
  r = run_hai("template -m " + fixture("models/tiny-llama-spm-q8_0.gguf") + " --messages " + c + " --add-generation-prompt");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_NE(r.err.find("no tokenizer.chat_template; using ChatML"), std::string::npos) << r.err;
}

TEST_F(TemplateCli, JsonLinesBatch) {
  std::string t = write("t.jinja", "{% if messages | length == 0 %}{{ raise_exception('no messages') }}{% endif %}"
                                   "{{ messages[0].content }}|{{ strftime_now('%Y') }}");
  std::string c = write("c.jsonl", "{\"messages\":[{\"role\":\"user\",\"content\":\"one\"}]}\n\n{\"messages\":[]}\n[{\"content\":\"two\"}]\n");
  auto r = run_hai("template --template " + t + " --messages " + c + " --jsonl --now 1721995200");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string l1, l2, l3, extra;
  std::getline(lines, l1);
  std::getline(lines, l2);
  std::getline(lines, l3);
  EXPECT_FALSE(std::getline(lines, extra));
  EXPECT_EQ(nlohmann::json::parse(l1)["text"], "one|2024");
  EXPECT_NE(nlohmann::json::parse(l2)["error"].get<std::string>().find(":1: template raised an exception: no messages"),
            std::string::npos) << l2;
  EXPECT_EQ(nlohmann::json::parse(l3)["text"], "two|2024");
}

TEST_F(TemplateCli, BadInputIsAnErrorNamingTheCulprit) {
  std::string t = write("t.jinja", kTpl);
  auto expect_error = [&](const std::string& args, const std::string& needle) {
    auto r = run_hai("template " + args);
    EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.out;
    EXPECT_NE(r.err.find(needle), std::string::npos) << args << "\nstderr: " << r.err;
    EXPECT_EQ(r.err.find("terminate"), std::string::npos);
  };
  expect_error("", "give the template with --template FILE or -m MODEL.gguf");
  expect_error("--template " + dir_ + "/missing.jinja", "missing.jinja: cannot open file");
  expect_error("--template " + t + " --messages " + dir_ + "/missing.json", "missing.json: cannot open file");
  expect_error("--template " + t + " --messages " + write("bad.json", "{\"messages\": [") , "bad.json: malformed JSON");
  expect_error("--template " + t + " --messages " + write("num.json", "42"), "num.json: the context must be a JSON object or an array");
  expect_error("--template " + t + " --messages " + write("m.json", "{\"messages\": 3}"), "m.json: \"messages\" must be an array");
  expect_error("--template " + t + " --jsonl --messages " + write("b.jsonl", "{}\n{oops\n"), "b.jsonl:2: malformed JSON");
  expect_error("--template " + write("syn.jinja", "ok\n{% if %}"), "syn.jinja:2: syntax error");
  expect_error("--template " + write("raise.jinja", "{{ raise_exception('nope') }}"), "raise.jinja:1: template raised an exception: nope");
  expect_error("--template " + write("utf8.jinja", "\xC3\x28"), "utf8.jinja:1: template is not valid UTF-8");
  expect_error("--template " + t + " --messages " + write("u.json", "[{\"content\": \"\xFF\"}]"), "u.json: malformed JSON");
  expect_error("-m " + dir_ + "/none.gguf", "none.gguf");
  expect_error("-m " + write("junk.gguf", "not a gguf file at all"), "junk.gguf");
  auto r = run_hai("template --template " + t + " -m x.gguf");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("excludes"), std::string::npos) << r.err;
}
