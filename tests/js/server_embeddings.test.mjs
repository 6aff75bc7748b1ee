// /v1/embeddings with the official client: a BERT model served on its own
// (compared with the reference engine's vectors), a chat model with an
// --embedding-model next to it, and a decoder model pooled as an embedder.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, client, post, BERT_MODEL, SHARED, USER } from './server_helpers.mjs';

const reference = JSON.parse(
  fs.readFileSync(path.join(SHARED ?? '', 'fixtures/reference/tiny-bert-bge-f16.embeddings.json'), 'utf8'));

function cosine(a, b) {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb);
}

describe('a BERT model served alone', () => {
  let server, openai;
  before(async () => {
    server = await startServer([], { model: BERT_MODEL });
    openai = client(server);
  });
  after(async () => {
    assert.equal(await server.stop(), 0);
  });

  test('vectors match the reference engine (cosine >= 0.9999), float and base64', async () => {
    const input = reference.map((r) => r.text);
    for (const encoding_format of ['float', 'base64', undefined]) {
      const r = await openai.embeddings.create({ model: 'tiny-bert-bge-f16', input, encoding_format });
      assert.equal(r.object, 'list');
      assert.equal(r.data.length, input.length);
      let tokens = 0;
      r.data.forEach((d, i) => {
        assert.equal(d.index, i);
        if (encoding_format === 'base64') {
          // Asked for explicitly, the client hands the base64 text through.
          assert.equal(typeof d.embedding, 'string');
          const buf = Buffer.from(d.embedding, 'base64');
          d.embedding = Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4));
        }
        assert.equal(d.embedding.length, reference[i].embedding.length);
        const c = cosine(d.embedding, reference[i].embedding);
        assert.ok(c >= 0.9999, `text ${i}: cosine ${c}`);
        const norm = Math.sqrt(d.embedding.reduce((s, x) => s + x * x, 0));
        assert.ok(Math.abs(norm - 1) < 1e-4, 'unit length');
        tokens += reference[i].tokens.length;
      });
      assert.equal(r.usage.prompt_tokens, tokens);
    }
  });

  test('token-id input gives the same vector as the text', async () => {
    const r = await openai.embeddings.create({
      model: 'tiny-bert-bge-f16', input: [reference[0].tokens], encoding_format: 'float' });
    assert.ok(cosine(r.data[0].embedding, reference[0].embedding) >= 0.9999);
  });

  test('dimensions truncates and renormalizes; too many is a 400', async () => {
    const r = await openai.embeddings.create({
      model: 'tiny-bert-bge-f16', input: 'hello world', dimensions: 16, encoding_format: 'float' });
    assert.equal(r.data[0].embedding.length, 16);
    const bad = await post(server, '/v1/embeddings', { input: 'x', dimensions: 100000 });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.param, 'dimensions');
  });

  test('chat on an embedding model is a clear 400; an unknown model is a 404', async () => {
    const r = await post(server, '/v1/chat/completions', { messages: USER });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /embedding model/);
    const u = await post(server, '/v1/embeddings', { model: 'nope', input: 'x' });
    assert.equal(u.status, 404);
    const t = await post(server, '/v1/embeddings', { input: [[1, 2, 999999]] });
    assert.equal(t.status, 400);
  });
});

describe('a chat model with --embedding-model', () => {
  let server, openai;
  before(async () => {
    server = await startServer(['--embedding-model', BERT_MODEL]);
    openai = client(server);
  });
  after(async () => {
    await server.stop();
  });

  test('both models are listed and each serves its own route', async () => {
    const ids = (await openai.models.list()).data.map((m) => m.id);
    assert.deepEqual(ids, ['tiny-qwen2-gpt2-q8_0', 'tiny-bert-bge-f16']);
    const e = await openai.embeddings.create({ model: 'tiny-bert-bge-f16', input: reference[2].text });
    assert.ok(cosine(e.data[0].embedding, reference[2].embedding) >= 0.9999);
    const c = await openai.chat.completions.create({ model: 'tiny-qwen2-gpt2-q8_0', messages: USER, max_tokens: 2 });
    assert.equal(c.choices.length, 1);
  });

  test('the decoder model embeds too (mean pooling)', async () => {
    const e = await openai.embeddings.create({
      model: 'tiny-qwen2-gpt2-q8_0', input: ['hello world', 'hello world', 'something else'], encoding_format: 'float' });
    assert.equal(e.data.length, 3);
    assert.equal(e.data[0].embedding.length, 256);
    assert.ok(cosine(e.data[0].embedding, e.data[1].embedding) > 0.99999);
    assert.ok(cosine(e.data[0].embedding, e.data[2].embedding) < 0.9999);
  });
});
