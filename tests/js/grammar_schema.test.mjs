// Structured output end to end: `hai run --json-schema` with the two
// random-weight fixture models (noise generators), sampled at temperature 1
// with several seeds, must print JSON that parses and that Ajv (draft
// 2020-12) accepts under the schema. Runs cut short by -n must print a
// valid JSON prefix, never garbage.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Ajv2020 from "ajv/dist/2020.js";

const HAI = process.env.HAI_BIN;
const SHARED = process.env.HAI_SHARED_DIR;
const MODELS = ["tiny-llama-spm-q8_0", "tiny-qwen2-gpt2-q8_0"];
const SEEDS = [1, 2, 3];

const SCHEMAS = {
  person: {
    type: "object",
    properties: {
      name: { type: "string", minLength: 1, maxLength: 12 },
      age: { type: "integer", minimum: 0, maximum: 120 },
      email: { type: ["string", "null"], maxLength: 20 },
      role: { enum: ["admin", "user", "guest"] },
    },
    required: ["name", "age", "role"],
    additionalProperties: false,
  },
  tags: { type: "array", items: { enum: ["a", "b", "中文", 1, null, true] }, minItems: 1, maxItems: 4 },
  nested: {
    type: "object",
    properties: {
      id: { type: "integer", minimum: 1, maximum: 9999 },
      address: {
        type: "object",
        properties: { city: { type: "string", maxLength: 8 }, zip: { type: "string", maxLength: 5 } },
        required: ["city"],
        additionalProperties: false,
      },
      active: { type: "boolean" },
    },
    required: ["id", "address"],
    additionalProperties: false,
  },
  tree: {
    $defs: {
      node: {
        type: "object",
        properties: {
          v: { type: "integer", minimum: 0, maximum: 9 },
          kids: { type: "array", items: { $ref: "#/$defs/node" }, maxItems: 2 },
        },
        required: ["v"],
        additionalProperties: false,
      },
    },
    $ref: "#/$defs/node",
  },
  anyof: { anyOf: [{ type: "integer", minimum: -5, maximum: 5 }, { type: "string", maxLength: 3 }, { type: "null" }] },
  oneof: {
    oneOf: [
      { type: "object", properties: { kind: { const: "circle" }, r: { type: "number", minimum: 0, maximum: 10 } },
        required: ["kind", "r"], additionalProperties: false },
      { type: "object", properties: { kind: { const: "rect" }, w: { type: "integer", minimum: 0, maximum: 9 },
        h: { type: "integer", minimum: 0, maximum: 9 } }, required: ["kind", "w", "h"], additionalProperties: false },
    ],
  },
  tuple: {
    type: "array",
    prefixItems: [{ type: "string", maxLength: 4 }, { type: "number", minimum: -1, maximum: 1 }, { const: { ok: true } }],
    items: false,
    minItems: 2,
  },
  formats: {
    type: "object",
    properties: { day: { type: "string", format: "date" }, id: { type: "string", format: "uuid" },
      at: { type: "string", format: "date-time" } },
    required: ["day", "id", "at"],
    additionalProperties: false,
  },
  extra: {
    type: "object",
    properties: { kind: { const: "x" } },
    required: ["kind"],
    additionalProperties: { type: "integer", minimum: 0, maximum: 9 },
    maxProperties: 100,
  },
  allof: {
    $defs: { base: { type: "object", properties: { id: { type: "integer", minimum: 0, maximum: 99 } }, required: ["id"] } },
    allOf: [{ $ref: "#/$defs/base" }, { type: "object", properties: { tag: { enum: ["p", "q"] } }, required: ["tag"] }],
  },
  escapes: { type: "string", minLength: 2, maxLength: 6 },
  pattern: {
    type: "object",
    properties: { code: { type: "string", pattern: "^[A-Z]{2}-\\d{3}$" },
      word: { type: "string", pattern: "^(yes|no|[a-z\"\\\\]{1,4})$" } },
    required: ["code", "word"],
    additionalProperties: false,
  },
};
// "extra" uses maxProperties above what the schema allows: the translation
// rejects it; the test drops that keyword and checks the error separately.
const EXTRA_REJECTED = SCHEMAS.extra;
SCHEMAS.extra = { ...EXTRA_REJECTED };
delete SCHEMAS.extra.maxProperties;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hai-grammar-js-"));

function runHai(schema, model, seed, n) {
  const file = path.join(tmp, `s${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(file, JSON.stringify(schema));
  const r = spawnSync(HAI, ["run", "-m", path.join(SHARED, "fixtures/models", `${model}.gguf`), "-p", "JSON:",
    "--temp", "1", "--seed", String(seed), "-n", String(n), "-t", "1", "--json-schema", file], { encoding: "utf8" });
  fs.unlinkSync(file);
  return r;
}

// Whether `s` is a prefix of some JSON text (syntax only).
function isJsonPrefix(s) {
  const stack = []; // "{" or "["
  // states: value (a value is expected), after (a value just ended), key (a key string expected or "}"),
  // colon, string, number, literal
  let state = "value";
  let inKey = false;
  let i = 0;
  const ws = (c) => c === " " || c === "\n" || c === "\t" || c === "\r";
  const endValue = () => { state = stack.length ? "after" : "done"; };
  while (i < s.length) {
    const c = s[i];
    if (state === "value" || state === "value1") {
      if (ws(c)) { i++; continue; }
      if (c === "{") { stack.push("{"); state = "key1"; i++; continue; }
      if (c === "[") { stack.push("["); state = "value1"; i++; continue; }
      if (c === "]" && state === "value1") { stack.pop(); endValue(); i++; continue; }
      if (c === '"') { state = "string"; inKey = false; i++; continue; }
      const lit = ["true", "false", "null"].find((w) => w.startsWith(s.slice(i, i + w.length)) && w[0] === c);
      if (lit) {
        const part = s.slice(i, i + lit.length);
        if (!lit.startsWith(part)) return false;
        i += part.length;
        if (part.length < lit.length) return i === s.length;
        endValue();
        continue;
      }
      const m = /^-?(0|[1-9][0-9]*)?(\.[0-9]*)?([eE][-+]?[0-9]*)?/.exec(s.slice(i));
      if (m && m[0].length > 0) {
        const num = m[0];
        i += num.length;
        if (i === s.length) return true;
        if (!/^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$/.test(num)) return false;
        endValue();
        continue;
      }
      return false;
    }
    if (state === "key" || state === "key1") {
      if (ws(c)) { i++; continue; }
      if (c === "}" && state === "key1") { stack.pop(); endValue(); i++; continue; }
      if (c === '"') { state = "string"; inKey = true; i++; continue; }
      return false;
    }
    if (state === "string") {
      if (c === "\\") {
        const e = s[i + 1];
        if (e === undefined) return true;
        if ('"\\/bfnrt'.includes(e)) { i += 2; continue; }
        if (e === "u") {
          const h = s.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]*$/.test(h)) return false;
          i += 2 + h.length;
          continue;
        }
        return false;
      }
      if (c === '"') { i++; if (inKey) state = "colon"; else endValue(); continue; }
      if (c.charCodeAt(0) < 0x20) return false;
      i++;
      continue;
    }
    if (state === "colon") {
      if (ws(c)) { i++; continue; }
      if (c === ":") { state = "value"; i++; continue; }
      return false;
    }
    if (state === "after") {
      if (ws(c)) { i++; continue; }
      const top = stack[stack.length - 1];
      if (c === ",") { state = top === "{" ? "key" : "value"; i++; continue; }
      if ((c === "}" && top === "{") || (c === "]" && top === "[")) { stack.pop(); endValue(); i++; continue; }
      return false;
    }
    if (state === "done") return false;
  }
  return true;
}

function makeAjv() {
  const ajv = new Ajv2020({ strict: true, strictTuples: false, allErrors: true });
  ajv.addFormat("date", /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/);
  ajv.addFormat("uuid", /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
  ajv.addFormat("date-time", /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/);
  return ajv;
}

test("the JSON prefix checker itself", () => {
  for (const ok of ['{"a": [1, tr', '{"a', '[', '"x\\u00', '-', '{"a":1}', '[1,2', '{"k": "v", "n": nu'])
    assert.ok(isJsonPrefix(ok), ok);
  for (const bad of ['{"a" 1', '[1,,', '{a', 'nul!', '{"a":1}}', '01', '[1 2]', '"\\q'])
    assert.ok(!isJsonPrefix(bad), bad);
});

test("noise models write schema-valid JSON under --json-schema", () => {
  const ajv = makeAjv();
  let complete = 0;
  let total = 0;
  for (const [name, schema] of Object.entries(SCHEMAS)) {
    const validate = ajv.compile(schema);
    for (const model of MODELS) {
      for (const seed of SEEDS) {
        const r = runHai(schema, model, seed, 96);
        assert.equal(r.status, 0, `${name} ${model} seed ${seed}: ${r.stderr}`);
        const out = r.stdout.replace(/\n$/, "");
        total++;
        assert.ok(isJsonPrefix(out), `${name} ${model} seed ${seed}: not a JSON prefix: ${JSON.stringify(out)}`);
        if (!/stop: (grammar complete|end of generation)/.test(r.stderr)) continue;
        complete++;
        let value;
        assert.doesNotThrow(() => { value = JSON.parse(out); }, `${name} ${model} seed ${seed}: ${out}`);
        assert.ok(validate(value), `${name} ${model} seed ${seed}: ${out}\n${JSON.stringify(validate.errors)}`);
      }
    }
  }
  assert.ok(complete >= total * 0.7, `only ${complete} of ${total} runs finished within 96 tokens`);
});

test("a run cut short by -n prints a valid prefix", () => {
  for (const model of MODELS) {
    for (const seed of [4, 5]) {
      const r = runHai(SCHEMAS.person, model, seed, 3);
      assert.equal(r.status, 0, r.stderr);
      const out = r.stdout.replace(/\n$/, "");
      assert.match(r.stderr, /stop: length/);
      assert.ok(out.startsWith("{"), out);
      assert.ok(isJsonPrefix(out), JSON.stringify(out));
      assert.throws(() => JSON.parse(out));
    }
  }
});

test("unsupported keywords are rejected with their JSON pointer", () => {
  for (const [schema, pointer] of [
    [EXTRA_REJECTED, "#/maxProperties"],
    [{ type: "string", pattern: "^(?!x)[a-z]+$" }, "#/pattern"],
    [{ type: "object", properties: { a: { type: "integer", multipleOf: 2 } } }, "#/properties/a/multipleOf"],
  ]) {
    const r = runHai(schema, MODELS[0], 1, 4);
    assert.equal(r.status, 1);
    assert.ok(r.stderr.includes(pointer), r.stderr);
  }
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
