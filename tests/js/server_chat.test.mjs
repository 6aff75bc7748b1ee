// hai serve with the official openai client: chat (plain and streamed),
// text completions, n > 1, logprobs, stop, seeds, models, metrics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, client, post, get, USER } from './server_helpers.mjs';

let server, openai;
before(async () => {
  server = await startServer(['--parallel', '4', '--ctx-size', '512']);
  openai = client(server);
});
after(async () => {
  assert.equal(await server.stop(), 0, 'the server exits cleanly on SIGTERM');
});

test('GET /v1/models lists the model', async () => {
  const models = await openai.models.list();
  const ids = models.data.map((m) => m.id);
  assert.deepEqual(ids, ['tiny-qwen2-gpt2-q8_0']);
  const one = await openai.models.retrieve('tiny-qwen2-gpt2-q8_0');
  assert.equal(one.id, 'tiny-qwen2-gpt2-q8_0');
});

test('chat completion, not streamed', async () => {
  const r = await openai.chat.completions.create({ model: 'tiny-qwen2-gpt2-q8_0', messages: USER, max_tokens: 8 });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.choices.length, 1);
  const c = r.choices[0];
  assert.equal(c.message.role, 'assistant');
  assert.equal(typeof c.message.content, 'string');
  assert.ok(['stop', 'length'].includes(c.finish_reason));
  assert.ok(r.usage.prompt_tokens > 0);
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 8);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  if (c.finish_reason === 'length') assert.equal(r.usage.completion_tokens, 8);
});

test('chat completion, streamed, with a usage chunk', async () => {
  const stream = await openai.chat.completions.create({
    model: 'tiny-qwen2-gpt2-q8_0',
    messages: USER,
    max_tokens: 12,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '', tokens = 0, finish = null, usage = null, first = true;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) {
      assert.equal(chunk.choices.length, 0, 'the usage chunk has no choices');
      usage = chunk.usage;
      continue;
    }
    const ch = chunk.choices[0];
    if (first) {
      assert.equal(ch.delta.role, 'assistant');
      first = false;
      continue;
    }
    if (ch.finish_reason) {
      finish = ch.finish_reason;
      text += ch.delta.content ?? '';
      continue;
    }
    tokens++;
    text += ch.delta.content;
  }
  assert.ok(['stop', 'length'].includes(finish));
  assert.ok(usage, 'a usage chunk arrived');
  assert.equal(usage.completion_tokens, tokens, 'one chunk per generated token');
  assert.equal(typeof text, 'string');
});

test('the same seed gives the same text; the streamed text equals the plain one', async () => {
  const req = { model: 'tiny-qwen2-gpt2-q8_0', messages: USER, max_tokens: 10, seed: 42, temperature: 1 };
  const a = await openai.chat.completions.create(req);
  const b = await openai.chat.completions.create(req);
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  const stream = await openai.chat.completions.create({ ...req, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  assert.equal(text, a.choices[0].message.content);
});

test('n = 3 gives three choices with seeds seed, seed+1, seed+2', async () => {
  const r = await openai.chat.completions.create({
    model: 'tiny-qwen2-gpt2-q8_0', messages: USER, max_tokens: 6, n: 3, seed: 7,
  });
  assert.equal(r.choices.length, 3);
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
  const single = await openai.chat.completions.create({
    model: 'tiny-qwen2-gpt2-q8_0', messages: USER, max_tokens: 6, seed: 8,
  });
  assert.equal(r.choices[1].message.content, single.choices[0].message.content);
  const sum = r.choices.length;
  assert.ok(r.usage.completion_tokens >= sum);
});

test('greedy decoding with logprobs and top_logprobs', async () => {
  const r = await openai.chat.completions.create({
    model: 'tiny-qwen2-gpt2-q8_0', messages: USER, max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 3,
  });
  const lp = r.choices[0].logprobs.content;
  assert.equal(lp.length, r.usage.completion_tokens);
  for (const e of lp) {
    assert.ok(e.logprob <= 0);
    assert.equal(e.top_logprobs.length, 3);
    // Greedy: the chosen token is the most likely one.
    assert.ok(Math.abs(e.top_logprobs[0].logprob - e.logprob) < 1e-5);
    assert.ok(Array.isArray(e.bytes) && e.bytes.length > 0 && e.bytes.every((x) => Number.isInteger(x)));
  }
  assert.equal(lp.map((e) => e.token).join(''), r.choices[0].message.content);
});

test('stop strings end the output and are not part of it', async () => {
  const base = await openai.chat.completions.create({
    model: 'tiny-qwen2-gpt2-q8_0', messages: USER, max_tokens: 16, temperature: 0,
  });
  const text = base.choices[0].message.content;
  const stop = text.slice(4, 7);
  assert.ok(stop.length > 0);
  const r = await openai.chat.completions.create({
    model: 'tiny-qwen2-gpt2-q8_0', messages: USER, max_tokens: 16, temperature: 0, stop: [stop],
  });
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.choices[0].message.content, text.slice(0, text.indexOf(stop)));
});

test('logit_bias +100 forces a token', async () => {
  // Token 40 is "I" in the GPT-2 vocabulary of the fixture.
  const r = await openai.chat.completions.create({
    model: 'tiny-qwen2-gpt2-q8_0', messages: USER, max_tokens: 3, temperature: 0, logit_bias: { 40: 100 },
  });
  assert.equal(r.choices[0].message.content, 'III');
});

test('text completions: one prompt, a batch of prompts, token prompts, echo, logprobs', async () => {
  const r = await openai.completions.create({ model: 'tiny-qwen2-gpt2-q8_0', prompt: 'Once upon a time', max_tokens: 5 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices.length, 1);
  assert.equal(typeof r.choices[0].text, 'string');
  assert.ok(r.usage.completion_tokens <= 5);

  const batch = await openai.completions.create({
    model: 'tiny-qwen2-gpt2-q8_0', prompt: ['a', 'b c'], max_tokens: 3, n: 2,
  });
  assert.equal(batch.choices.length, 4);

  const toks = await openai.completions.create({
    model: 'tiny-qwen2-gpt2-q8_0', prompt: [464, 2068, 7586], max_tokens: 3, echo: true, logprobs: 2, temperature: 0,
  });
  const c = toks.choices[0];
  assert.ok(c.text.length > 0);
  assert.equal(c.logprobs.tokens.length, toks.usage.completion_tokens);
  assert.equal(c.logprobs.top_logprobs[0] && Object.keys(c.logprobs.top_logprobs[0]).length <= 2, true);
  assert.equal(c.text, c.text.slice(0, c.logprobs.text_offset[0]) + c.logprobs.tokens.join(''));
});

test('text completions, streamed', async () => {
  const stream = await openai.completions.create({
    model: 'tiny-qwen2-gpt2-q8_0', prompt: 'Hello', max_tokens: 6, stream: true,
    stream_options: { include_usage: true },
  });
  let n = 0, usage = null, finish = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    else if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
    else n++;
  }
  assert.ok(usage);
  assert.equal(usage.completion_tokens, n);
  assert.ok(['stop', 'length'].includes(finish));
});

test('the prefix cache reuses a shared prompt', async () => {
  const messages = [{ role: 'system', content: 'You are a helpful assistant. '.repeat(8) }, ...USER];
  await openai.chat.completions.create({ model: 'tiny-qwen2-gpt2-q8_0', messages, max_tokens: 2 });
  const r = await openai.chat.completions.create({
    model: 'tiny-qwen2-gpt2-q8_0', messages: [messages[0], { role: 'user', content: 'Another question' }], max_tokens: 2,
  });
  assert.ok(r.usage.prompt_tokens_details.cached_tokens > 40, JSON.stringify(r.usage));
});

test('/health and /metrics', async () => {
  const h = await get(server, '/health');
  assert.equal(h.status, 200);
  assert.equal(h.json.status, 'ok');
  assert.equal(h.json.slots_total, 4);
  const m = await get(server, '/metrics');
  assert.equal(m.status, 200);
  assert.match(m.text, /hai_requests_total\{path="\/v1\/chat\/completions",status="200"\} \d+/);
  assert.match(m.text, /# TYPE hai_time_to_first_token_seconds histogram/);
  assert.match(m.text, /hai_time_to_first_token_seconds_bucket\{le="\+Inf"\} [1-9]/);
  assert.match(m.text, /hai_time_per_output_token_seconds_count [1-9]/);
  assert.match(m.text, /hai_generated_tokens_total [1-9]/);
  assert.match(m.text, /hai_slots_total 4/);
  assert.match(m.text, /hai_kv_cache_usage_ratio /);
  assert.match(m.text, /hai_queue_depth 0/);
});

test('n = 2 streamed: chunks of both choices, each with its finish_reason', async () => {
  const stream = await openai.chat.completions.create({
    model: 'tiny-qwen2-gpt2-q8_0', messages: USER, max_tokens: 5, n: 2, seed: 3, stream: true,
    stream_options: { include_usage: true },
  });
  const text = ['', ''], finish = [null, null];
  let tokens = 0, usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) {
      usage = chunk.usage;
      continue;
    }
    const ch = chunk.choices[0];
    if (ch.finish_reason) finish[ch.index] = ch.finish_reason;
    else if (!ch.delta.role) tokens++;
    text[ch.index] += ch.delta.content ?? '';
  }
  assert.ok(finish.every((f) => f === 'stop' || f === 'length'));
  assert.equal(usage.completion_tokens, tokens);
  const single = await openai.chat.completions.create({
    model: 'tiny-qwen2-gpt2-q8_0', messages: USER, max_tokens: 5, seed: 4 });
  assert.equal(text[1], single.choices[0].message.content);
});
