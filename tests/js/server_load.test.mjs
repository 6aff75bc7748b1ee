// hai serve under load: 32 concurrent streaming clients, a client that
// disconnects mid-stream, and a full queue.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, client, post, get, sleep, USER } from './server_helpers.mjs';

async function metric(server, name) {
  const m = await get(server, '/metrics');
  const line = m.text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.split(' ')[1]) : NaN;
}

// Polls /health until `pred(health)` holds (or gives up after `tries`).
async function waitHealth(server, pred, tries = 200) {
  let h;
  for (let i = 0; i < tries; i++) {
    h = (await get(server, '/health')).json;
    if (pred(h)) return h;
    await sleep(50);
  }
  return h;
}

describe('32 concurrent streaming clients', () => {
  let server, openai;
  before(async () => {
    server = await startServer(['--parallel', '4', '--ctx-size', '256']);
    openai = client(server);
  });
  after(async () => {
    assert.equal(await server.stop(), 0);
  });

  test('all complete, usage matches what was streamed, no errors', async () => {
    const one = async (i) => {
      const stream = await openai.chat.completions.create({
        model: 'tiny-qwen2-gpt2-q8_0',
        messages: [{ role: 'user', content: `Question number ${i}: what is ${i} + ${i}?` }],
        max_tokens: 4 + (i % 8),
        seed: i,
        stream: true,
        stream_options: { include_usage: true },
      });
      let tokens = 0, usage = null, finish = null, role = false;
      for await (const chunk of stream) {
        if (chunk.usage) {
          usage = chunk.usage;
          continue;
        }
        const ch = chunk.choices[0];
        if (ch.delta.role) role = true;
        else if (ch.finish_reason) finish = ch.finish_reason;
        else tokens++;
      }
      return { tokens, usage, finish, role, max: 4 + (i % 8) };
    };
    const results = await Promise.all(Array.from({ length: 32 }, (_, i) => one(i)));
    for (const r of results) {
      assert.ok(r.role);
      assert.ok(r.usage, 'usage chunk');
      assert.equal(r.usage.completion_tokens, r.tokens);
      assert.ok(r.tokens <= r.max);
      assert.ok(['stop', 'length'].includes(r.finish));
      if (r.finish === 'length') assert.equal(r.tokens, r.max);
    }
    const h = await waitHealth(server, (h) => h.slots_active === 0 && h.queued === 0);
    assert.equal(h.slots_active, 0);
    assert.equal(h.queued, 0);
    const r = await openai.chat.completions.create({ model: 'tiny-qwen2-gpt2-q8_0', messages: USER, max_tokens: 3 });
    assert.equal(r.choices.length, 1);
    const m = await get(server, '/metrics');
    assert.doesNotMatch(m.text, /hai_requests_total\{path="\/v1\/chat\/completions",status="5\d\d"\}/);
  });
});

describe('disconnects and a full queue', () => {
  let server, openai;
  before(async () => {
    server = await startServer(['--parallel', '1', '--max-queue', '1', '--ctx-size', '4096']);
    openai = client(server);
  });
  after(async () => {
    assert.equal(await server.stop(), 0);
  });

  test('a client that disconnects mid-stream frees its slot at once', async () => {
    const before = await metric(server, 'hai_generated_tokens_total');
    const controller = new AbortController();
    const stream = await openai.chat.completions.create(
      { model: 'tiny-qwen2-gpt2-q8_0', messages: USER, max_tokens: 4000, ignore_eos: true, stream: true },
      { signal: controller.signal });
    let n = 0;
    try {
      for await (const chunk of stream) {
        if (++n === 5) controller.abort();
      }
    } catch {
      // The client reports the abort as an error or just ends the stream.
    }
    assert.ok(n >= 5);
    const h = await waitHealth(server, (h) => h.slots_active === 0);
    assert.equal(h.slots_active, 0, 'the slot is free again');
    const generated = (await metric(server, 'hai_generated_tokens_total')) - before;
    assert.ok(generated < 4000, `stopped early: ${generated} tokens generated`);
    assert.ok((await metric(server, 'hai_cancelled_requests_total')) >= 1);
    const r = await openai.chat.completions.create({ model: 'tiny-qwen2-gpt2-q8_0', messages: USER, max_tokens: 2 });
    assert.equal(r.choices.length, 1);
  });

  test('a non-streaming client that disconnects frees its slot too', async () => {
    const before = await metric(server, 'hai_cancelled_requests_total');
    const controller = new AbortController();
    const pending = fetch(server.url + '/v1/chat/completions', {
      method: 'POST',
      signal: controller.signal,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ messages: USER, max_tokens: 4000, ignore_eos: true }),
    }).catch(() => null);
    const busy = await waitHealth(server, (h) => h.slots_active === 1);
    assert.equal(busy.slots_active, 1, 'the request is running');
    controller.abort();
    await pending;
    const h = await waitHealth(server, (h) => h.slots_active === 0);
    assert.equal(h.slots_active, 0, 'the slot is free again');
    assert.ok((await metric(server, 'hai_cancelled_requests_total')) > before);
  });

  test('a full queue answers 503 with Retry-After, never hangs', async () => {
    const controllers = [];
    const start = (i) => {
      const c = new AbortController();
      controllers.push(c);
      return fetch(server.url + '/v1/chat/completions', {
        method: 'POST',
        signal: c.signal,
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ messages: USER, max_tokens: 4000, ignore_eos: true, stream: true, seed: i }),
      });
    };
    // One runs, one waits in the queue; the others are turned away.
    const first = await start(0);
    assert.equal(first.status, 200);
    const reader = first.body.getReader();
    await reader.read();
    const second = await start(1);
    assert.equal(second.status, 200);
    const rest = await Promise.all([2, 3, 4].map(start));
    for (const r of rest) {
      assert.ok(r.status === 503 || r.status === 429, `status ${r.status}`);
      assert.ok(Number(r.headers.get('retry-after')) >= 1);
      const body = await r.json();
      assert.ok(body.error.message.length > 0);
    }
    // The official client surfaces it as an APIError with the status.
    await assert.rejects(
      openai.chat.completions.create({ model: 'tiny-qwen2-gpt2-q8_0', messages: USER, max_tokens: 2 }),
      (e) => e.status === 503 || e.status === 429);
    for (const c of controllers) c.abort();
    await reader.cancel().catch(() => {});
    const h = await waitHealth(server, (h) => h.slots_active === 0 && h.queued === 0);
    assert.equal(h.queued, 0);
    assert.equal(h.slots_active, 0);
    const r = await openai.chat.completions.create({ model: 'tiny-qwen2-gpt2-q8_0', messages: USER, max_tokens: 2 });
    assert.equal(r.choices.length, 1);
  });
});

test('--timeout ends a request that runs too long (finish_reason length)', async () => {
  const server = await startServer(['--ctx-size', '8192', '--timeout', '1']);
  try {
    const r = await client(server).chat.completions.create({
      model: 'tiny-qwen2-gpt2-q8_0', messages: USER, max_tokens: 8000, ignore_eos: true });
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.ok(r.usage.completion_tokens < 8000, `${r.usage.completion_tokens} tokens`);
    const h = await waitHealth(server, (h) => h.slots_active === 0);
    assert.equal(h.slots_active, 0);
  } finally {
    await server.stop();
  }
});
