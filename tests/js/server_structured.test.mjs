// Structured output with the official client: tool calls forced by
// tool_choice, and response_format json_object / json_schema. The model's
// weights are random, so only the grammar keeps its output valid: every
// answer must parse and validate (ajv) against the schema.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Ajv from 'ajv';
import { startServer, client, post, USER } from './server_helpers.mjs';

let server, openai;
before(async () => {
  server = await startServer(['--parallel', '4', '--ctx-size', '1024']);
  openai = client(server);
});
after(async () => {
  assert.equal(await server.stop(), 0);
});

const ajv = new Ajv({ strict: false });

const weather = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather of a city',
    parameters: {
      type: 'object',
      properties: {
        city: { type: 'string', enum: ['Paris', 'Beijing', 'Lima'] },
        unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
        days: { type: 'integer', minimum: 1, maximum: 7 },
      },
      required: ['city', 'unit'],
      additionalProperties: false,
    },
  },
};
const time = {
  type: 'function',
  function: { name: 'get_time', parameters: { type: 'object', properties: { utc: { type: 'boolean' } },
    required: ['utc'], additionalProperties: false } },
};

function checkCall(call, tools) {
  assert.equal(call.type, 'function');
  assert.match(call.id, /^call_/);
  const tool = tools.find((t) => t.function.name === call.function.name);
  assert.ok(tool, `a declared tool: ${call.function.name}`);
  const args = JSON.parse(call.function.arguments);
  const validate = ajv.compile(tool.function.parameters);
  assert.ok(validate(args), JSON.stringify(validate.errors) + ' ' + call.function.arguments);
}

test('tool_choice "required" always gives valid tool_calls', async (t) => {
  for (let seed = 0; seed < 4; seed++) {
    const r = await openai.chat.completions.create({
      model: 'tiny-qwen2-gpt2-q8_0',
      messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
      tools: [weather, time],
      tool_choice: 'required',
      max_tokens: 200,
      seed,
    });
    const c = r.choices[0];
    assert.equal(c.finish_reason, 'tool_calls', JSON.stringify(c));
    assert.equal(c.message.tool_calls.length, 1);
    checkCall(c.message.tool_calls[0], [weather, time]);
  }
});

test('a named tool_choice calls that function, also when streamed', async (t) => {
  const r = await openai.chat.completions.create({
    model: 'tiny-qwen2-gpt2-q8_0', messages: USER, tools: [weather, time],
    tool_choice: { type: 'function', function: { name: 'get_time' } }, max_tokens: 100, seed: 3,
  });
  assert.equal(r.choices[0].message.tool_calls[0].function.name, 'get_time');
  checkCall(r.choices[0].message.tool_calls[0], [weather, time]);

  const stream = await openai.chat.completions.create({
    model: 'tiny-qwen2-gpt2-q8_0', messages: USER, tools: [weather, time], tool_choice: 'required',
    max_tokens: 200, seed: 5, stream: true,
  });
  const calls = [];
  let finish = null;
  for await (const chunk of stream) {
    const ch = chunk.choices[0];
    if (!ch) continue;
    if (ch.delta.tool_calls) calls.push(...ch.delta.tool_calls);
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  assert.equal(finish, 'tool_calls');
  assert.equal(calls.length, 1);
  checkCall(calls[0], [weather, time]);
});

test('the assistant tool call and the tool result go back into the chat', async () => {
  const r = await openai.chat.completions.create({
    model: 'tiny-qwen2-gpt2-q8_0',
    tools: [weather],
    messages: [
      { role: 'user', content: 'Weather in Lima?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function',
        function: { name: 'get_weather', arguments: '{"city":"Lima","unit":"celsius"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"temperature": 19}' },
    ],
    max_tokens: 4,
  });
  assert.equal(r.choices.length, 1);
});

const schema = {
  type: 'object',
  properties: {
    name: { type: 'string', enum: ['alpha', 'beta', 'gamma'] },
    ok: { type: 'boolean' },
    level: { type: 'integer', minimum: 0, maximum: 9 },
    tags: { type: 'array', items: { type: 'string', enum: ['x', 'y', 'z'] }, minItems: 1, maxItems: 3 },
    inner: { type: 'object', properties: { mode: { const: 'fast' }, weight: { type: 'number' } },
      required: ['mode'], additionalProperties: false },
    note: { type: ['string', 'null'], maxLength: 12 },
  },
  required: ['name', 'ok', 'tags', 'inner'],
  additionalProperties: false,
};

test('response_format json_schema: the output validates against the schema', async (t) => {
  const validate = ajv.compile(schema);
  for (let seed = 0; seed < 4; seed++) {
    const r = await openai.chat.completions.create({
      model: 'tiny-qwen2-gpt2-q8_0',
      messages: [{ role: 'user', content: 'Describe the item as JSON.' }],
      response_format: { type: 'json_schema', json_schema: { name: 'item', schema, strict: true } },
      max_tokens: 300,
      seed,
    });
    const c = r.choices[0];
    assert.equal(c.finish_reason, 'stop', c.message.content);
    const value = JSON.parse(c.message.content);
    assert.ok(validate(value), JSON.stringify(validate.errors) + ' ' + c.message.content);
  }
});

test('response_format json_object: the output is a JSON object', async (t) => {
  const r = await openai.chat.completions.create({
    model: 'tiny-qwen2-gpt2-q8_0', messages: USER, response_format: { type: 'json_object' },
    max_tokens: 400, seed: 1, temperature: 0.2, logit_bias: { 92: 5 },
  });
  const c = r.choices[0];
  if (c.finish_reason === 'stop') {
    const v = JSON.parse(c.message.content);
    assert.equal(typeof v, 'object');
    assert.ok(!Array.isArray(v) && v !== null);
  } else {
    assert.match(c.message.content, /^\s*\{/);
  }
});

test('an unsupported schema is a 400 naming response_format', async (t) => {
  const r = await post(server, '/v1/chat/completions', {
    messages: USER,
    response_format: { type: 'json_schema', json_schema: { name: 'bad', schema: { $ref: '#/$defs/missing' } } },
  });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.param, 'response_format.json_schema.schema');
});

test('tools with tool_choice auto: plain text still streams token by token', async () => {
  const req = { model: 'tiny-qwen2-gpt2-q8_0', messages: USER, tools: [weather], max_tokens: 12, seed: 11,
    logit_bias: { 90: -100, 27: -100 } };  // no '{' or '<' first: the output cannot be a call
  const whole = await openai.chat.completions.create(req);
  assert.equal(whole.choices[0].message.tool_calls, undefined);
  const stream = await openai.chat.completions.create({ ...req, stream: true });
  let text = '', contentChunks = 0, finish = null;
  for await (const chunk of stream) {
    const ch = chunk.choices[0];
    if (ch.delta.content) {
      contentChunks++;
      text += ch.delta.content;
    }
    assert.equal(ch.delta.tool_calls, undefined);
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  assert.equal(text, whole.choices[0].message.content);
  assert.ok(contentChunks > 1, `${contentChunks} content chunks`);
  assert.ok(['stop', 'length'].includes(finish));
});
