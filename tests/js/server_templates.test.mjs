// Chat templates in the server: --chat-template overrides the model's, tools
// are rendered by templates that know them (Qwen 2.5: Hermes format; Llama
// 3.1: JSON with "parameters"), and the request log line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import Ajv from 'ajv';
import { startServer, client, post, SHARED, USER, sleep } from './server_helpers.mjs';

const templates = path.join(SHARED ?? '', 'fixtures/templates');
const tool = {
  type: 'function',
  function: {
    name: 'lookup',
    description: 'Look a word up in the dictionary',
    parameters: { type: 'object', properties: { word: { type: 'string', enum: ['cat', 'dog'] } },
      required: ['word'], additionalProperties: false },
  },
};

async function promptTokens(openai, extra) {
  const r = await openai.chat.completions.create({ model: 'tiny-qwen2-gpt2-q8_0', messages: USER, max_tokens: 1, ...extra });
  return r.usage.prompt_tokens;
}

for (const [file, format] of [['Qwen-Qwen2.5-7B-Instruct.jinja', 'hermes'],
                              ['meta-llama-Llama-3.1-8B-Instruct.jinja', 'llama3']]) {
  test(`--chat-template ${file}: tools are rendered, forced calls parse (${format})`, async () => {
    const server = await startServer(['--chat-template', path.join(templates, file), '--ctx-size', '2048'],
      { quiet: false });
    try {
      const openai = client(server);
      const plain = await promptTokens(openai, {});
      const withTools = await promptTokens(openai, { tools: [tool] });
      assert.ok(withTools > plain + 20, `the tool definitions are in the prompt (${plain} -> ${withTools})`);
      const none = await promptTokens(openai, { tools: [tool], tool_choice: 'none' });
      assert.equal(none, plain, 'tool_choice none leaves the tools out');

      const r = await post(server, '/v1/chat/completions', {
        messages: USER, tools: [tool], tool_choice: 'required', max_tokens: 120, seed: 2 });
      assert.equal(r.status, 200, r.text);
      const c = r.json.choices[0];
      assert.equal(c.finish_reason, 'tool_calls', JSON.stringify(c));
      const call = c.message.tool_calls[0];
      assert.equal(call.function.name, 'lookup');
      const validate = new Ajv({ strict: false }).compile(tool.function.parameters);
      assert.ok(validate(JSON.parse(call.function.arguments)), call.function.arguments);
    } finally {
      await server.stop();
      // One log line per request: method, path, status, milliseconds.
      assert.match(server.stderr(), /^POST \/v1\/chat\/completions 200 \d+(\.\d+)?ms$/m);
    }
  });
}
