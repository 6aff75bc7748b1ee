#include "engine/chat/template.h"

#include <ctime>

#include "engine/chat/jinja.h"
#include "engine/chat/utf8.h"
#include "engine/common/error.h"

namespace hai::chat {

const char* const kChatMlTemplate =
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] if message['content'] is string else '') + "
    "'<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

Template::Template(std::string_view source, std::string name) : name_(std::move(name)) {
  size_t bad = utf8::find_invalid(source);
  if (bad != std::string_view::npos) {
    int line = 1;
    for (size_t k = 0; k < bad; ++k) line += source[k] == '\n';
    throw hai::Error(name_ + ":" + std::to_string(line) + ": template is not valid UTF-8 (byte offset " +
                     std::to_string(bad) + ")");
  }
  program_ = std::make_shared<const std::vector<jinja::NodePtr>>(jinja::parse(source, name_));
}

Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const nlohmann::ordered_json& context, const RenderOptions& options) const {
  if (!context.is_object() && !context.is_null()) {
    throw hai::Error(name_ + ": the render context must be a JSON object, got " + std::string(context.type_name()));
  }
  jinja::Dict globals;
  if (context.is_object()) {
    for (auto it = context.begin(); it != context.end(); ++it) {
      globals.set(it.key(), jinja::Value::from_json(it.value()));
    }
  }
  jinja::Limits limits;
  limits.max_depth = options.max_depth;
  limits.max_steps = options.max_steps;
  limits.max_output = options.max_output;
  int64_t now = options.now >= 0 ? options.now : int64_t(std::time(nullptr));
  jinja::Interpreter interp(name_, limits, now);
  return interp.render(*program_, globals);
}

std::string render_chat(const Template& tmpl, const nlohmann::ordered_json& messages,
                        const nlohmann::ordered_json& tools, bool add_generation_prompt, const std::string& bos_token,
                        const std::string& eos_token, const nlohmann::ordered_json& extra,
                        const RenderOptions& options) {
  if (!messages.is_array()) throw hai::Error("chat: messages must be a JSON array");
  if (!tools.is_null() && !tools.is_array()) throw hai::Error("chat: tools must be a JSON array or null");
  if (!extra.is_null() && !extra.is_object()) throw hai::Error("chat: extra context must be a JSON object");
  nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
  ctx["messages"] = messages;
  ctx["tools"] = tools;
  ctx["add_generation_prompt"] = add_generation_prompt;
  ctx["bos_token"] = bos_token;
  ctx["eos_token"] = eos_token;
  if (extra.is_object()) {
    for (auto it = extra.begin(); it != extra.end(); ++it) ctx[it.key()] = it.value();
  }
  return tmpl.render(ctx, options);
}

}  // namespace hai::chat
