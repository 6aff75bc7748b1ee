// POST /v1/rerank (and its aliases): a synthesized reranker served alone
// (scores equal to `hai rerank` for the same pairs, order, top_n, document
// shapes, bad input), a chat model with --rerank-model beside it, a server
// without a reranker, and knowledge-base search with "rerank".
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, post, get, HAI_BIN, SHARED, USER } from './server_helpers.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hai-rerank-serve-'));
const RERANKER = path.join(dir, 'tiny-rerank.gguf');
execFileSync(HAI_BIN, ['synth', '--arch', 'bert', '--n-embd', '64', '--n-layer', '2', '--n-head', '4', '--n-ff', '128',
  '--ctx', '128', '--pooling', 'rank', '--seed', '5', '--vocab',
  path.join(SHARED ?? '', 'fixtures/tokenizer/ggml-vocab-bert-bge.gguf'), RERANKER], { stdio: 'ignore' });

const QUERY = 'what is a panda?';
const DOCS = ['hi', 'The giant panda is a bear native to China.', 'Large language models are trained on text.',
  '大模型', 'pandas eat bamboo'];

// What `hai rerank --json` says for the same pairs: {index: score}.
function cliScores(query, docs) {
  const out = execFileSync(HAI_BIN, ['rerank', '-m', RERANKER, '--json', '-t', '1', query, ...docs]).toString();
  const byIndex = {};
  for (const r of JSON.parse(out)) byIndex[r.index] = r.relevance_score;
  return byIndex;
}

after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('a reranker served alone', () => {
  let server;
  before(async () => {
    server = await startServer([], { model: RERANKER });
  });
  after(async () => {
    assert.equal(await server.stop(), 0);
  });

  test('scores equal hai rerank, best first, every document once', async () => {
    const want = cliScores(QUERY, DOCS);
    const r = await post(server, '/v1/rerank', { model: 'tiny-rerank', query: QUERY, documents: DOCS });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.model, 'tiny-rerank');
    const res = r.json.results;
    assert.equal(res.length, DOCS.length);
    assert.deepEqual(res.map((x) => x.index).sort(), [0, 1, 2, 3, 4]);
    for (let i = 1; i < res.length; i++) assert.ok(res[i - 1].relevance_score >= res[i].relevance_score);
    for (const x of res) {
      // The server sends the float widened to a double: the same float.
      assert.equal(Math.fround(x.relevance_score), Math.fround(want[x.index]), `document ${x.index}`);
      assert.deepEqual(x.document, { text: DOCS[x.index] });
    }
    assert.ok(r.json.usage.prompt_tokens > 0);
    assert.equal(r.json.usage.total_tokens, r.json.usage.prompt_tokens);
  });

  test('aliases, top_n, return_documents, {text} documents', async () => {
    const full = (await post(server, '/v1/rerank', { query: QUERY, documents: DOCS })).json.results;
    for (const route of ['/rerank', '/v1/reranking', '/reranking']) {
      const r = await post(server, route, { query: QUERY, documents: DOCS.map((text) => ({ text })), top_n: 2,
        return_documents: false });
      assert.equal(r.status, 200, route + ': ' + r.text);
      assert.equal(r.json.results.length, 2);
      assert.deepEqual(r.json.results, full.slice(0, 2).map(({ index, relevance_score }) => ({ index, relevance_score })));
    }
    const big = await post(server, '/v1/rerank', { query: QUERY, documents: DOCS, top_n: 100 });
    assert.equal(big.json.results.length, DOCS.length);
  });

  test('a document longer than the model is cut, not refused', async () => {
    const r = await post(server, '/v1/rerank', { query: QUERY, documents: ['panda '.repeat(500)] });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.usage.prompt_tokens, 128);
  });

  test('bad input is a 400 naming the field', async () => {
    const cases = [
      [{ documents: DOCS }, 'query'],
      [{ query: 7, documents: DOCS }, 'query'],
      [{ query: '', documents: DOCS }, 'query'],
      [{ query: QUERY }, 'documents'],
      [{ query: QUERY, documents: 'hi' }, 'documents'],
      [{ query: QUERY, documents: [] }, 'documents'],
      [{ query: QUERY, documents: ['ok', 5] }, 'documents[1]'],
      [{ query: QUERY, documents: [{ txt: 'x' }] }, 'documents[0]'],
      [{ query: QUERY, documents: DOCS, top_n: 0 }, 'top_n'],
      [{ query: QUERY, documents: DOCS, top_n: 1.5 }, 'top_n'],
      [{ query: QUERY, documents: DOCS, return_documents: 'yes' }, 'return_documents'],
      [{ query: 'bear '.repeat(200), documents: DOCS }, 'query'],
    ];
    for (const [body, param] of cases) {
      const r = await post(server, '/v1/rerank', body);
      assert.equal(r.status, 400, JSON.stringify(body) + ' -> ' + r.text);
      assert.equal(r.json.error.param, param, JSON.stringify(body) + ' -> ' + r.text);
      assert.equal(r.json.error.type, 'invalid_request_error');
    }
    const malformed = await post(server, '/v1/rerank', '{"query": ');
    assert.equal(malformed.status, 400);
    const unknown = await post(server, '/v1/rerank', { model: 'nope', query: QUERY, documents: DOCS });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.error.code, 'model_not_found');
  });

  test('it serves nothing else', async () => {
    const e = await post(server, '/v1/embeddings', { input: 'hi' });
    assert.equal(e.status, 400);
    assert.match(e.json.error.message, /reranker/);
    const c = await post(server, '/v1/chat/completions', { messages: USER });
    assert.equal(c.status, 400);
    assert.match(c.json.error.message, /reranker/);
    const m = await get(server, '/v1/models');
    assert.deepEqual(m.json.data.map((d) => d.id), ['tiny-rerank']);
  });
});

describe('a chat model with --rerank-model', () => {
  let server, kbDir;
  before(async () => {
    kbDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hai-rerank-kb-'));
    server = await startServer(['--rerank-model', RERANKER, '--kb-dir', kbDir]);
  });
  after(async () => {
    assert.equal(await server.stop(), 0);
    fs.rmSync(kbDir, { recursive: true, force: true });
  });

  test('/v1/rerank and /v1/models', async () => {
    const want = cliScores(QUERY, DOCS);
    const r = await post(server, '/v1/rerank', { model: 'tiny-rerank', query: QUERY, documents: DOCS });
    assert.equal(r.status, 200, r.text);
    for (const x of r.json.results) assert.equal(Math.fround(x.relevance_score), Math.fround(want[x.index]));
    const m = await get(server, '/v1/models');
    assert.ok(m.json.data.some((d) => d.id === 'tiny-rerank'));
  });

  test('knowledge-base search with "rerank": true is ordered by the reranker', async () => {
    assert.equal((await post(server, '/v1/kb', { name: 'docs' })).status, 201);
    for (let i = 0; i < 6; i++) {
      const content = `Document ${i} is about giant pandas ${'and bears '.repeat(i)}. Pandas eat bamboo number ${i}.`;
      const up = await post(server, '/v1/kb/docs/documents', { name: `d${i}.txt`, content });
      assert.equal(up.status, 201, up.text);
    }
    const plain = await post(server, '/v1/kb/docs/search', { query: 'giant pandas', top_k: 6 });
    assert.equal(plain.status, 200, plain.text);
    assert.equal(plain.json.data[0].rerank_score, undefined);
    const r = await post(server, '/v1/kb/docs/search', { query: 'giant pandas', top_k: 4, rerank: true, rerank_top: 6 });
    assert.equal(r.status, 200, r.text);
    const hits = r.json.data;
    assert.equal(hits.length, 4);
    // The reranked order is the order of the reranker's own scores.
    const want = cliScores('giant pandas', plain.json.data.map((h) => h.text));
    const wantOrder = Object.entries(want).sort((a, b) => b[1] - a[1]).slice(0, 4)
      .map(([i]) => plain.json.data[Number(i)].chunk);
    assert.deepEqual(hits.map((h) => h.chunk), wantOrder);
    for (const h of hits) {
      assert.equal(h.score, h.rerank_score);
      assert.ok(h.retrieval_rank >= 1 && h.retrieval_rank <= 6);
    }
    const ask = await post(server, '/v1/kb/docs/ask', { question: 'giant pandas', rerank: true, rerank_top: 6 });
    assert.equal(ask.status, 200, ask.text);
    assert.equal(ask.json.sources[0].chunk, hits[0].chunk);
    for (const [body, param] of [[{ query: 'x', rerank: 'yes' }, 'rerank'], [{ query: 'x', rerank_top: 0 }, 'rerank_top']]) {
      const bad = await post(server, '/v1/kb/docs/search', body);
      assert.equal(bad.status, 400, bad.text);
      assert.equal(bad.json.error.param, param);
    }
  });
});

describe('a server without a reranker', () => {
  let server, kbDir;
  before(async () => {
    kbDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hai-rerank-none-'));
    server = await startServer(['--kb-dir', kbDir]);
  });
  after(async () => {
    assert.equal(await server.stop(), 0);
    fs.rmSync(kbDir, { recursive: true, force: true });
  });

  test('/v1/rerank and "rerank": true are refused with 400', async () => {
    const r = await post(server, '/v1/rerank', { query: QUERY, documents: DOCS });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.code, 'model_not_supported');
    assert.equal((await post(server, '/v1/kb', { name: 'k' })).status, 201);
    const s = await post(server, '/v1/kb/k/search', { query: 'x', rerank: true });
    assert.equal(s.status, 400);
    assert.equal(s.json.error.param, 'rerank');
  });
});

test('a reranker with --rerank-model beside it is refused', () => {
  let err = '';
  try {
    execFileSync(HAI_BIN, ['serve', '-m', RERANKER, '--rerank-model', RERANKER, '--port', '0'], { stdio: 'pipe' });
  } catch (e) {
    err = e.stderr.toString();
    assert.equal(e.status, 1);
  }
  assert.match(err, /is a reranker/);
});
