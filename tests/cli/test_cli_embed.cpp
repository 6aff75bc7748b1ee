// `hai embed`: JSON lines out, checked against the reference embeddings of
// the tiny BERT fixture; stdin input, options, decoder models, `hai synth
// --arch bert`, and every bad input giving a clear error.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "common/test_util.h"
#include "engine/gguf/gguf.h"

namespace {

using hai::test::fixture;
using hai::test::run;
using hai::test::run_hai;
using ::testing::HasSubstr;

const std::string kBert = fixture("models/tiny-bert-bge-f16.gguf");
const std::string kLlama = fixture("models/tiny-llama-spm-q8_0.gguf");

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') q.append("'\\''");
    else q.push_back(c);
  }
  q.push_back('\'');
  return q;
}

std::vector<nlohmann::json> lines(const std::string& out) {
  std::vector<nlohmann::json> v;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON: " << line;
    v.push_back(j);
  }
  return v;
}

using hai::test::cosine;

std::string tmp(const std::string& name) {
  return ::testing::TempDir() + "cli_embed_" + std::to_string(::getpid()) + "_" + name;
}

TEST(CliEmbed, MatchesReference) {
  const auto ref = nlohmann::json::parse(hai::test::read_file(fixture("reference/tiny-bert-bge-f16.embeddings.json")));
  std::string args = "embed -m " + kBert;
  for (const auto& r : ref) {
    args.push_back(' ');
    args.append(quote(r["text"].get<std::string>()));
  }
  auto r = run_hai(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto got = lines(r.out);
  ASSERT_EQ(got.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_EQ(got[i]["index"], i);
    EXPECT_EQ(got[i]["n_tokens"], ref[i]["tokens"].size());
    EXPECT_EQ(got[i]["truncated"], false);
    const auto v = got[i]["embedding"].get<std::vector<float>>();
    ASSERT_EQ(v.size(), 128u);
    EXPECT_GE(cosine(v, ref[i]["embedding"].get<std::vector<float>>()), 0.9999) << i;
  }
  // The keys come in the documented order.
  EXPECT_EQ(r.out.rfind("{\"index\":0,\"n_tokens\":9,\"truncated\":false,\"embedding\":[", 0), 0u) << r.out.substr(0, 80);
}

TEST(CliEmbed, StdinLinesEqualArguments) {
  const std::string in = tmp("in.txt");
  {
    std::FILE* f = std::fopen(in.c_str(), "wb");
    std::fputs("hello world\r\n\nsecond line\n", f);
    std::fclose(f);
  }
  auto a = run_hai("embed -m " + kBert + " -t 1 - < " + in);
  auto b = run_hai("embed -m " + kBert + " -t 2 'hello world' '' 'second line'");
  std::remove(in.c_str());
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(lines(a.out).size(), 3u);
  EXPECT_EQ(a.out, b.out);
}

TEST(CliEmbed, NormalizeAndPooling) {
  auto n = run_hai("embed -m " + kBert + " --normalize 'hello world'");
  ASSERT_EQ(n.exit_code, 0) << n.err;
  const auto v = lines(n.out)[0]["embedding"].get<std::vector<float>>();
  double len = 0;
  for (float x : v) len += double(x) * x;
  EXPECT_NEAR(std::sqrt(len), 1.0, 1e-5);

  auto cls = run_hai("embed -m " + kBert + " 'hello world'");
  auto cls2 = run_hai("embed -m " + kBert + " --pooling cls 'hello world'");
  auto mean = run_hai("embed -m " + kBert + " --pooling mean 'hello world'");
  ASSERT_EQ(mean.exit_code, 0) << mean.err;
  EXPECT_EQ(cls.out, cls2.out);  // the fixture's metadata says cls
  EXPECT_NE(cls.out, mean.out);
}

TEST(CliEmbed, DecoderModel) {
  auto r = run_hai("embed -m " + kLlama + " hello 'another text'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto got = lines(r.out);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0]["embedding"].size(), 256u);
  EXPECT_EQ(got[1]["index"], 1);
  auto last = run_hai("embed -m " + kLlama + " --pooling last hello 'another text'");
  ASSERT_EQ(last.exit_code, 0) << last.err;
  EXPECT_NE(last.out, r.out);
}

TEST(CliEmbed, SynthBertLoadsAndEmbeds) {
  const std::string out = tmp("synth-bert.gguf");
  auto s = run_hai("synth --arch bert --n-embd 64 --n-layer 2 --n-head 4 --n-ff 128 --ctx 64 --pooling 1 --vocab " +
                   fixture("tokenizer/ggml-vocab-bert-bge.gguf") + " " + out);
  ASSERT_EQ(s.exit_code, 0) << s.err;
  auto info = run_hai("gguf info " + out);
  EXPECT_THAT(info.out, HasSubstr("bert.pooling_type"));
  EXPECT_THAT(info.out, HasSubstr("blk.1.layer_output_norm.bias"));
  auto e = run_hai("embed -m " + out + " 'hello world'");
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const auto got = lines(e.out);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]["embedding"].size(), 64u);
  EXPECT_EQ(got[0]["n_tokens"], 4);  // [CLS] hello world [SEP]
  // A long text is cut to the 64 positions of --ctx.
  std::string long_text;
  for (int i = 0; i < 100; ++i) long_text += "word ";
  auto cut = run_hai("embed -m " + out + " '" + long_text + "'");
  ASSERT_EQ(cut.exit_code, 0) << cut.err;
  EXPECT_EQ(lines(cut.out)[0]["n_tokens"], 64);
  EXPECT_EQ(lines(cut.out)[0]["truncated"], true);
  // Same seed, same file; bad shapes are errors.
  auto heads = run_hai("synth --arch bert --n-embd 64 --n-layer 1 --n-head 5 --n-ff 128 --vocab " +
                       fixture("tokenizer/ggml-vocab-bert-bge.gguf") + " " + tmp("x.gguf"));
  EXPECT_EQ(heads.exit_code, 1);
  EXPECT_THAT(heads.err, HasSubstr("--n-embd 64 is not a multiple of --n-head 5"));
  auto kv = run_hai("synth --arch bert --n-embd 64 --n-layer 1 --n-head 4 --n-head-kv 2 --n-ff 128 --vocab " +
                    fixture("tokenizer/ggml-vocab-bert-bge.gguf") + " " + tmp("x.gguf"));
  EXPECT_EQ(kv.exit_code, 1);
  EXPECT_THAT(kv.err, HasSubstr("--n-head-kv 2 must equal --n-head"));
  auto pool = run_hai("synth --arch bert --n-embd 64 --n-layer 1 --n-head 4 --n-ff 128 --pooling 7 --vocab " +
                      fixture("tokenizer/ggml-vocab-bert-bge.gguf") + " " + tmp("x.gguf"));
  EXPECT_EQ(pool.exit_code, 1);
  EXPECT_THAT(pool.err, HasSubstr("--pooling"));
  auto nokv = run_hai("synth --arch llama --n-embd 64 --n-layer 1 --n-head 4 --n-ff 128 --vocab " +
                      fixture("tokenizer/ggml-vocab-llama-spm.gguf") + " " + tmp("x.gguf"));
  EXPECT_EQ(nokv.exit_code, 1);
  EXPECT_THAT(nokv.err, HasSubstr("--n-head-kv is required"));
  EXPECT_FALSE(std::filesystem::exists(tmp("x.gguf")));
  std::remove(out.c_str());
}

TEST(CliEmbed, BadInput) {
  auto missing = run_hai("embed -m /nonexistent/model.gguf hello");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("/nonexistent/model.gguf"));

  auto utf8 = run_hai("embed -m " + kBert + " fine $(printf 'bad\\377')");
  EXPECT_EQ(utf8.exit_code, 1);
  EXPECT_THAT(utf8.err, HasSubstr("text 1"));
  EXPECT_THAT(utf8.err, HasSubstr("UTF-8"));
  EXPECT_EQ(utf8.out, "");

  auto none = run_hai("embed -m " + kBert);
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_THAT(none.err, HasSubstr("give the texts"));

  auto pooling = run_hai("embed -m " + kBert + " --pooling max hello");
  EXPECT_NE(pooling.exit_code, 0);
  EXPECT_THAT(pooling.err, HasSubstr("--pooling"));

  auto threads = run_hai("embed -m " + kBert + " -t -3 hello");
  EXPECT_NE(threads.exit_code, 0);

  auto nomodel = run_hai("embed hello");
  EXPECT_NE(nomodel.exit_code, 0);
  EXPECT_THAT(nomodel.err, HasSubstr("--model"));

  // A vocabulary-only GGUF is no model; an unknown architecture is named.
  auto vocab = run_hai("embed -m " + fixture("tokenizer/ggml-vocab-bert-bge.gguf") + " hello");
  EXPECT_EQ(vocab.exit_code, 1);
  EXPECT_FALSE(vocab.err.empty());
  hai::gguf::Writer w;
  w.set("general.architecture", hai::gguf::Value::make_string("t5"));
  const std::string t5 = tmp("t5.gguf");
  w.write(t5);
  auto arch = run_hai("embed -m " + t5 + " hello");
  std::remove(t5.c_str());
  EXPECT_EQ(arch.exit_code, 1);
  EXPECT_THAT(arch.err, HasSubstr("architecture 't5'"));
  EXPECT_THAT(arch.err, HasSubstr("cannot embed"));

  // Not a GGUF at all.
  const std::string txt = tmp("text.gguf");
  {
    std::FILE* f = std::fopen(txt.c_str(), "wb");
    std::fputs("hello", f);
    std::fclose(f);
  }
  auto text = run_hai("embed -m " + txt + " hello");
  std::remove(txt.c_str());
  EXPECT_EQ(text.exit_code, 1);
  EXPECT_THAT(text.err, HasSubstr(txt));
}

}  // namespace
