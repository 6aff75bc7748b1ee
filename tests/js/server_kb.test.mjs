// /v1/kb: knowledge bases over HTTP (create, upload by multipart or JSON,
// list, search, ask, delete), behind the API key.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, post, get } from './server_helpers.mjs';

let server, dir;
const KEY = 'sk-kb-test';
const auth = { Authorization: `Bearer ${KEY}` };

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hai-kb-serve-'));
  server = await startServer(['--kb-dir', dir, '--api-key', KEY]);
});
after(async () => {
  await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function del(route, headers = auth) {
  const res = await fetch(server.url + route, { method: 'DELETE', headers });
  return { status: res.status, json: await res.json() };
}

test('create, upload, list, search, ask, delete', async () => {
  let r = await post(server, '/v1/kb', { name: 'docs' }, auth);
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.name, 'docs');

  // Multipart upload.
  const form = new FormData();
  form.append('file', new Blob(['Hai is a platform that runs open-weight models locally.\n\n' +
    'The knowledge base indexes documents with BM25 and answers questions with citations.\n']), 'intro.txt');
  let res = await fetch(server.url + '/v1/kb/docs/documents', { method: 'POST', body: form, headers: auth });
  assert.equal(res.status, 201);
  let j = await res.json();
  assert.equal(j.name, 'intro.txt');
  assert.ok(j.chunks >= 1);

  // JSON upload, base64.
  const md = '# Serving\n\nThe server speaks the OpenAI API with continuous batching of requests.\n';
  r = await post(server, '/v1/kb/docs/documents',
    { name: 'serving.md', content_base64: Buffer.from(md).toString('base64') }, auth);
  assert.equal(r.status, 201, r.text);

  r = await get(server, '/v1/kb', auth);
  assert.deepEqual(r.json.data.map((k) => k.name), ['docs']);
  assert.equal(r.json.data[0].documents, 2);

  r = await get(server, '/v1/kb/docs/documents', auth);
  assert.deepEqual(r.json.data.map((d) => d.name).sort(), ['intro.txt', 'serving.md']);

  r = await post(server, '/v1/kb/docs/search', { query: 'continuous batching', top_k: 3 }, auth);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.data[0].doc, 'serving.md');
  assert.match(r.json.data[0].text, /continuous batching/);

  r = await post(server, '/v1/kb/docs/ask', { question: 'How does the knowledge base index documents?' }, auth);
  assert.equal(r.status, 200, r.text);
  assert.ok(r.json.answer.length > 0);
  assert.ok(r.json.sources.length >= 1);

  let d = await del('/v1/kb/docs/documents/serving.md');
  assert.equal(d.status, 200);
  assert.equal(d.json.deleted, true);
  r = await get(server, '/v1/kb/docs/documents', auth);
  assert.deepEqual(r.json.data.map((x) => x.name), ['intro.txt']);

  d = await del('/v1/kb/docs');
  assert.equal(d.status, 200);
  r = await get(server, '/v1/kb', auth);
  assert.deepEqual(r.json.data, []);
});

test('errors: key, unknown names, bad bodies', async () => {
  assert.equal((await get(server, '/v1/kb')).status, 401);
  assert.equal((await post(server, '/v1/kb', { name: 'x' })).status, 401);
  assert.equal((await post(server, '/v1/kb', { name: 'x' }, { Authorization: 'Bearer nope' })).status, 401);

  assert.equal((await post(server, '/v1/kb', { name: 'k1' }, auth)).status, 201);
  let r = await post(server, '/v1/kb', { name: 'k1' }, auth);
  assert.equal(r.status, 409);
  assert.equal(r.json.error.code, 'kb_exists');
  for (const body of [{}, { name: 5 }, { name: '' }, { name: '../etc' }, { name: '.hidden' }]) {
    r = await post(server, '/v1/kb', body, auth);
    assert.equal(r.status, 400, JSON.stringify(body) + ' ' + r.text);
    assert.ok(r.json.error.message);
  }
  r = await post(server, '/v1/kb', '{oops', auth);
  assert.equal(r.status, 400);

  r = await post(server, '/v1/kb/nope/search', { query: 'x' }, auth);
  assert.equal(r.status, 404);
  assert.equal(r.json.error.code, 'kb_not_found');
  assert.equal((await get(server, '/v1/kb/nope/documents', auth)).status, 404);
  assert.equal((await del('/v1/kb/nope')).status, 404);
  assert.equal((await del('/v1/kb/k1/documents/missing.txt')).status, 404);

  r = await post(server, '/v1/kb/k1/documents', { name: 'a.txt', content_base64: '***' }, auth);
  assert.equal(r.status, 400);
  assert.equal(r.json.error.param, 'content_base64');
  r = await post(server, '/v1/kb/k1/documents', { name: 'a.txt' }, auth);
  assert.equal(r.status, 400);
  r = await post(server, '/v1/kb/k1/documents', { name: '../a.txt', content: 'x' }, auth);
  assert.equal(r.status, 400);
  r = await post(server, '/v1/kb/k1/documents', { name: 'a.exe', content: 'x' }, auth);
  assert.equal(r.status, 400, r.text);
  const form = new FormData();
  form.append('other', 'x');
  const res = await fetch(server.url + '/v1/kb/k1/documents', { method: 'POST', body: form, headers: auth });
  assert.equal(res.status, 400);

  for (const body of [{}, { query: 7 }, { query: 'x', top_k: 0 }, { query: 'x', top_k: 'a' }]) {
    r = await post(server, '/v1/kb/k1/search', body, auth);
    assert.equal(r.status, 400, JSON.stringify(body));
  }
  assert.equal((await post(server, '/v1/kb/k1/ask', {}, auth)).status, 400);
  assert.equal((await del('/v1/kb/k1')).status, 200);
});
