// Chat templates: the Jinja programs that models ship (GGUF key
// `tokenizer.chat_template`, Hugging Face `tokenizer_config.json`) to turn a
// list of chat messages into the model's prompt text.
//
//   hai::chat::Template t(source);                 // parse once (throws on syntax errors)
//   std::string prompt = t.render(context);        // render many times
//
// The context is a JSON object; Hugging Face passes `messages`, `tools`,
// `add_generation_prompt`, `bos_token`, `eos_token` and any extra keys.
// render_chat() builds that context.
//
// The language is Jinja2 as Hugging Face configures it (trim_blocks,
// lstrip_blocks, loop controls): statements if/elif/else, for (with else,
// `if` filter, tuple unpacking, loop.*), set (incl. block set and namespace
// attributes), macro / call, filter blocks, break / continue, generation;
// expressions with literals, attribute / subscript / slice access, `in`,
// tests, filters, arithmetic, `~`, printf-style `%` / format, and/or/not and
// `x if c else y`; methods on strings, dicts and lists (strip, split,
// startswith, items, get, append, ...); globals range, namespace, dict,
// raise_exception, strftime_now. Not supported: recursive loops, * / **
// argument unpacking, {% include %} / {% extends %} / {% import %}.
//
// Values print as @huggingface/jinja prints them (see jinja.h); undefined
// values behave like Jinja's default Undefined (print as nothing, are false,
// have undefined attributes) and raise an error where Jinja would (arithmetic,
// calls).
//
// Every failure is a hai::Error whose message starts with "NAME:LINE:" — a
// syntax error, an unknown filter or test (found at parse time), a runtime
// type error, raise_exception("...") from the template, or a resource limit
// (recursion depth, steps, output size) that a hostile template would hit.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace hai::chat {

namespace jinja {
struct Node;
}

struct RenderOptions {
  // Seconds since the epoch used by strftime_now() (local time zone);
  // < 0 means the current time.
  int64_t now = -1;
  int max_depth = 200;                // nested macro calls
  uint64_t max_steps = 50'000'000;    // executed statements + loop iterations
  size_t max_output = 64u << 20;      // bytes of rendered text
};

class Template {
 public:
  // Parses `source`. `name` prefixes error messages ("NAME:LINE: ...").
  // Throws hai::Error on invalid UTF-8 or a syntax error.
  explicit Template(std::string_view source, std::string name = "template");
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // Renders with `context` (a JSON object; its keys become variables).
  // Thread-safe: a Template can render on several threads at once.
  std::string render(const nlohmann::ordered_json& context, const RenderOptions& options = {}) const;

  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::shared_ptr<const std::vector<std::unique_ptr<jinja::Node>>> program_;
};

// Renders a chat with Hugging Face's context: messages (array of
// {role, content, ...}), tools (array, or null for none),
// add_generation_prompt, bos_token, eos_token, and the members of `extra`
// (an object, or null) added on top.
std::string render_chat(const Template& tmpl, const nlohmann::ordered_json& messages,
                        const nlohmann::ordered_json& tools, bool add_generation_prompt, const std::string& bos_token,
                        const std::string& eos_token, const nlohmann::ordered_json& extra = nullptr,
                        const RenderOptions& options = {});

// The ChatML template (<|im_start|>role\ncontent<|im_end|>\n ...), used for
// models whose file carries no chat template.
extern const char* const kChatMlTemplate;

}  // namespace hai::chat
