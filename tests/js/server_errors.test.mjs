// hai serve answers bad input with OpenAI-shaped 4xx errors and never
// crashes: malformed JSON, wrong types, bad values, unknown model or route,
// a body over the limit, missing or wrong API keys.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import OpenAI from 'openai';
import { startServer, client, post, get, USER } from './server_helpers.mjs';

function assertError(r, status, param) {
  assert.equal(r.status, status, r.text);
  assert.ok(r.json && r.json.error, 'an OpenAI error body: ' + r.text);
  assert.equal(typeof r.json.error.message, 'string');
  assert.ok(r.json.error.message.length > 0);
  assert.ok('type' in r.json.error && 'param' in r.json.error && 'code' in r.json.error);
  if (param !== undefined) assert.equal(r.json.error.param, param, r.text);
}

describe('bad input', () => {
  let server, openai;
  before(async () => {
    server = await startServer(['--ctx-size', '256', '--max-body', '65536']);
    openai = client(server);
  });
  after(async () => {
    assert.equal(await server.stop(), 0);
  });

  test('malformed JSON is a 400, not a 500', async () => {
    for (const body of ['{', '{"messages": [}', 'not json', '', '[1,2]', '"str"', '{"a":1}}', '\u00ff\u00fe']) {
      const r = await post(server, '/v1/chat/completions', body);
      assertError(r, 400);
    }
  });

  test('invalid UTF-8 in a string is a 400', async () => {
    const bytes = Buffer.concat([Buffer.from('{"messages":[{"role":"user","content":"'), Buffer.from([0xc3, 0x28]),
      Buffer.from('"}]}')]);
    const res = await fetch(server.url + '/v1/chat/completions', { method: 'POST', body: bytes,
      headers: { 'Content-Type': 'application/json' } });
    assert.equal(res.status, 400);
  });

  test('deeply nested JSON is a 400', async () => {
    const r = await post(server, '/v1/chat/completions', '['.repeat(20000) + ']'.repeat(20000));
    assertError(r, 400);
  });

  test('wrong types and bad values name the parameter', async () => {
    const cases = [
      [{ messages: 'hi' }, 'messages'],
      [{}, 'messages'],
      [{ messages: [] }, 'messages'],
      [{ messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role'],
      [{ messages: [{ role: 'user' }] }, 'messages[0].content'],
      [{ messages: [{ role: 'user', content: 5 }] }, 'messages[0].content'],
      [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 'messages[0].content[0].type'],
      [{ messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].tool_call_id'],
      [{ messages: USER, temperature: -1 }, 'temperature'],
      [{ messages: USER, temperature: 'hot' }, 'temperature'],
      [{ messages: USER, temperature: 3 }, 'temperature'],
      [{ messages: USER, top_p: 1.5 }, 'top_p'],
      [{ messages: USER, max_tokens: -5 }, 'max_tokens'],
      [{ messages: USER, max_tokens: 0 }, 'max_tokens'],
      [{ messages: USER, max_tokens: 1.5 }, 'max_tokens'],
      [{ messages: USER, max_tokens: 1e30 }, 'max_tokens'],
      [{ messages: USER, max_completion_tokens: '10' }, 'max_completion_tokens'],
      [{ messages: USER, n: 0 }, 'n'],
      [{ messages: USER, n: 1000 }, 'n'],
      [{ messages: USER, stop: 5 }, 'stop'],
      [{ messages: USER, stop: [1] }, 'stop[0]'],
      [{ messages: USER, frequency_penalty: 9 }, 'frequency_penalty'],
      [{ messages: USER, presence_penalty: -3 }, 'presence_penalty'],
      [{ messages: USER, seed: 'abc' }, 'seed'],
      [{ messages: USER, logit_bias: { abc: 1 } }, 'logit_bias'],
      [{ messages: USER, logit_bias: { 99999999: 1 } }, 'logit_bias'],
      [{ messages: USER, logit_bias: { 5: 500 } }, 'logit_bias.5'],
      [{ messages: USER, top_logprobs: 3 }, 'top_logprobs'],
      [{ messages: USER, logprobs: true, top_logprobs: 50 }, 'top_logprobs'],
      [{ messages: USER, stream: 'yes' }, 'stream'],
      [{ messages: USER, stream_options: { include_usage: true } }, 'stream_options'],
      [{ messages: USER, response_format: { type: 'xml' } }, 'response_format.type'],
      [{ messages: USER, response_format: { type: 'json_schema' } }, 'response_format.json_schema'],
      [{ messages: USER, tools: {} }, 'tools'],
      [{ messages: USER, tools: [{ type: 'function', function: {} }] }, 'tools[0].function.name'],
      [{ messages: USER, tools: [{ type: 'function', function: { name: 'bad name!' } }] }, 'tools[0].function.name'],
      [{ messages: USER, tool_choice: 'required' }, 'tool_choice'],
      [{ messages: USER, tool_choice: 'sometimes', tools: [{ type: 'function', function: { name: 'f' } }] }, 'tool_choice'],
      [{ messages: USER, tools: [{ type: 'function', function: { name: 'f' } }],
         tool_choice: { type: 'function', function: { name: 'g' } } }, 'tool_choice.function.name'],
      [{ messages: USER, model: 5 }, 'model'],
    ];
    for (const [body, param] of cases) {
      const r = await post(server, '/v1/chat/completions', body);
      assertError(r, 400, param);
    }
  });

  test('text completions and embeddings check their fields too', async () => {
    assertError(await post(server, '/v1/completions', {}), 400, 'prompt');
    assertError(await post(server, '/v1/completions', { prompt: 5 }), 400, 'prompt');
    assertError(await post(server, '/v1/completions', { prompt: [] }), 400, 'prompt');
    assertError(await post(server, '/v1/completions', { prompt: [1, -2] }), 400, 'prompt[1]');
    assertError(await post(server, '/v1/completions', { prompt: [1, 99999999] }), 400, 'prompt[1]');
    assertError(await post(server, '/v1/completions', { prompt: 'x', logprobs: 9 }), 400, 'logprobs');
    assertError(await post(server, '/v1/completions', { prompt: 'x', suffix: 'y' }), 400, 'suffix');
    assertError(await post(server, '/v1/embeddings', { input: 7 }), 400, 'input');
    assertError(await post(server, '/v1/embeddings', { input: 'x', encoding_format: 'hex' }), 400, 'encoding_format');
  });

  test('a prompt longer than the context is a 400 naming it', async () => {
    const r = await post(server, '/v1/chat/completions', { messages: [{ role: 'user', content: 'word '.repeat(400) }] });
    assertError(r, 400, 'messages');
    assert.equal(r.json.error.code, 'context_length_exceeded');
    const c = await post(server, '/v1/completions', { prompt: 'word '.repeat(400) });
    assertError(c, 400, 'prompt');
  });

  test('the official client sees the same errors', async () => {
    await assert.rejects(
      openai.chat.completions.create({ model: 'tiny-qwen2-gpt2-q8_0', messages: USER, temperature: 5 }),
      (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'temperature');
    await assert.rejects(
      openai.chat.completions.create({ model: 'no-such-model', messages: USER }),
      (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found');
    await assert.rejects(openai.models.retrieve('no-such-model'), (e) => e.status === 404);
  });

  test('a tool without a description is accepted', async () => {
    const r = await openai.chat.completions.create({
      model: 'tiny-qwen2-gpt2-q8_0', messages: USER, max_tokens: 4,
      tools: [{ type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {} } } }],
    });
    assert.equal(r.choices.length, 1);
  });

  test('unknown routes are 404, wrong methods are 404/405, both in the error shape', async () => {
    assertError(await get(server, '/v1/nothing'), 404);
    assertError(await post(server, '/v2/chat/completions', { messages: USER }), 404);
    const r = await get(server, '/v1/chat/completions');
    assert.ok(r.status === 404 || r.status === 405);
    assert.ok(r.json.error);
  });

  test('a body over --max-body is a 413', async () => {
    const big = JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(200000) }] });
    const r = await post(server, '/v1/chat/completions', big);
    assert.equal(r.status, 413);
    assert.ok(r.json.error);
    assert.equal(r.json.error.code, 'request_too_large');
  });

  test('the server still answers after all that', async () => {
    const r = await openai.chat.completions.create({ model: 'tiny-qwen2-gpt2-q8_0', messages: USER, max_tokens: 2 });
    assert.equal(r.choices.length, 1);
    const m = await get(server, '/metrics');
    assert.match(m.text, /hai_requests_total\{path="\/v1\/chat\/completions",status="400"\} [1-9]/);
    assert.match(m.text, /hai_requests_total\{path="other",status="404"\} [1-9]/);
  });
});

describe('API keys', () => {
  let server, dir;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hai-keys-'));
    const file = path.join(dir, 'keys.txt');
    const hash = crypto.createHash('sha256').update('sk-hashed').digest('hex');
    fs.writeFileSync(file, `# keys\nsk-from-file\n\nsha256:${hash}\n`);
    server = await startServer(['--api-key', 'sk-one', '--api-key-file', file]);
  });
  after(async () => {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('requests without a valid key get 401', async () => {
    assertError(await post(server, '/v1/chat/completions', { messages: USER, max_tokens: 1 }), 401);
    assertError(await post(server, '/v1/chat/completions', { messages: USER, max_tokens: 1 },
      { Authorization: 'Bearer wrong' }), 401);
    assertError(await get(server, '/v1/models', { Authorization: 'Basic abc' }), 401);
    assertError(await get(server, '/metrics'), 401);
    await assert.rejects(client(server, { apiKey: 'sk-wrong' }).models.list(),
      (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  });

  test('each configured key works: flag, file, hashed entry', async () => {
    for (const key of ['sk-one', 'sk-from-file', 'sk-hashed']) {
      const r = await client(server, { apiKey: key }).chat.completions.create({
        model: 'tiny-qwen2-gpt2-q8_0', messages: USER, max_tokens: 1 });
      assert.equal(r.choices.length, 1, key);
    }
  });

  test('/health needs no key', async () => {
    const r = await get(server, '/health');
    assert.equal(r.status, 200);
  });
});

test('bad command lines are errors, not crashes', async () => {
  const { spawnSync } = await import('node:child_process');
  const { HAI_BIN, CHAT_MODEL } = await import('./server_helpers.mjs');
  const run = (args) => spawnSync(HAI_BIN, ['serve', ...args], { encoding: 'utf8', timeout: 30000 });
  let r = run(['-m', '/nonexistent.gguf', '--port', '0']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /nonexistent\.gguf/);
  r = run(['-m', CHAT_MODEL, '--port', '0', '--parallel', '0']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--parallel/);
  r = run(['-m', CHAT_MODEL, '--port', '0', '--api-key-file', '/nonexistent-keys']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /nonexistent-keys/);
  r = run(['-m', CHAT_MODEL, '--port', '0', '--chat-template', '/nonexistent.jinja']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /nonexistent\.jinja/);
});
