// Shared by the server_*.test.mjs files: start `hai serve` on a free
// loopback port, wait for its "listening on" line, stop it afterwards.
import { spawn } from 'node:child_process';
import path from 'node:path';
import OpenAI from 'openai';

export const HAI_BIN = process.env.HAI_BIN;
export const SHARED = process.env.HAI_SHARED_DIR;
export const CHAT_MODEL = path.join(SHARED ?? '', 'fixtures/models/tiny-qwen2-gpt2-q8_0.gguf');
export const BERT_MODEL = path.join(SHARED ?? '', 'fixtures/models/tiny-bert-bge-f16.gguf');

// Starts a server; resolves to {url, baseURL, proc, stderr(), stop()}.
export async function startServer(args = [], { model = CHAT_MODEL, quiet = true } = {}) {
  if (!HAI_BIN) throw new Error('HAI_BIN is not set');
  const proc = spawn(HAI_BIN, ['serve', '-m', model, '--port', '0', '-t', '1', ...(quiet ? ['--quiet'] : []), ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not start:\n' + err)), 60000);
    proc.stderr.on('data', (d) => {
      err += d.toString();
      const m = err.match(/listening on (http:\/\/[^\s]+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${err}`));
    });
    proc.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${HAI_BIN}: ${e.message}`));
    });
  });
  proc.removeAllListeners('exit');
  proc.removeAllListeners('error');
  return {
    url,
    baseURL: url + '/v1',
    proc,
    stderr: () => err,
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      const done = new Promise((r) => proc.on('exit', (code, sig) => r(code ?? sig)));
      proc.kill('SIGTERM');
      return done;
    },
  };
}

export function client(server, opts = {}) {
  return new OpenAI({ baseURL: server.baseURL, apiKey: opts.apiKey ?? 'none', maxRetries: 0, timeout: 60000 });
}

// POST a raw body; resolves to {status, headers, json, text}.
export async function post(server, route, body, headers = {}) {
  const res = await fetch(server.url + route, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, json, text };
}

export async function get(server, route, headers = {}) {
  const res = await fetch(server.url + route, { headers });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, json, text };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const USER = [{ role: 'user', content: 'Say hello.' }];
