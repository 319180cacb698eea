// The official OpenAI client library (npm `openai`, pinned in package.json)
// against the real `modelwarden serve` and its /v1 API (SPEC §10): models,
// chat, streaming, completions, embeddings and errors. The model is a
// `command` engine, mw-openai-engine (tests/fixtures), reverse-proxied on its
// {port}; it is loaded on demand by the first request.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import OpenAI from 'openai';

import { openAiEngineConfig } from './lib/openai_engine.mjs';
import { binDir, startServer } from './lib/server.mjs';

const TEST = { timeout: 120000 };

describe('the OpenAI npm client against /v1', () => {
  let server;
  let client;

  before(async () => {
    assert.ok(fs.existsSync(path.join(binDir(), 'mw-openai-engine')), 'build mw-openai-engine first');
    server = await startServer();
    await server.ok('POST', '/api/models', {
      model_name: 'echo', engine: 'command', load_config: openAiEngineConfig({ embeddings: true }),
    });
    await server.ok('POST', '/api/models', {
      model_name: 'crashy', engine: 'command', load_config: openAiEngineConfig(),
    });
    await server.ok('POST', '/api/models', { model_name: 'refused', engine: 'command', load_config: openAiEngineConfig() });
    await server.ok('PATCH', '/api/models/refused/config',
      { compatibility_status: 'incompatible', compatibility_notes: 'Hardware incompatibility detected: test' });
    // No retries: each refusal must reach the test as it was answered.
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });

  after(async () => {
    if (process.env.MW_DEBUG && server) console.log(server.output);
    if (server) await server.stop();
  });

  it('lists the registered models', TEST, async () => {
    const ids = [];
    for await (const m of client.models.list()) {
      ids.push(m.id);
      assert.equal(m.object, 'model');
      assert.equal(m.owned_by, 'modelwarden');
      assert.equal(typeof m.loaded, 'boolean');
      assert.ok(['unknown', 'compatible', 'incompatible', 'degraded', 'testing'].includes(m.compatibility_status));
    }
    assert.deepEqual(ids.sort(), ['crashy', 'echo', 'refused']);
    const one = await client.models.retrieve('echo');
    assert.equal(one.id, 'echo');
  });

  it('answers a chat completion (loading the model on demand)', TEST, async () => {
    const r = await client.chat.completions.create({
      model: 'echo', messages: [{ role: 'user', content: 'hi TOKENS=3' }], max_tokens: 16,
    });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(r.choices[0].message.content, 'Hello w1 w2');
    assert.equal(r.usage.completion_tokens, 3);
    const model = await server.model('echo');
    assert.equal(model.loaded, true);
    assert.equal(model.compatibility_status, 'compatible');
  });

  it('streams a chat completion with usage', TEST, async () => {
    const stream = await client.chat.completions.create({
      model: 'echo', messages: [{ role: 'user', content: 'TOKENS=4' }], stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage = null;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'chat.completion.chunk');
      if (chunk.choices.length) text += chunk.choices[0].delta.content || '';
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, 'Hello w1 w2 w3');
    assert.equal(usage.completion_tokens, 4);
  });

  it('answers text completions, streamed or not, and never a 500 for invalid UTF-8', TEST, async () => {
    const r = await client.completions.create({ model: 'echo', prompt: 'TOKENS=2' });
    assert.equal(r.choices[0].text, 'Hello w1');
    const bad = await client.completions.create({ model: 'echo', prompt: 'BAD_UTF8 TOKENS=3' });
    assert.equal(bad.choices[0].text, 'Hello \uFFFD\uFFFD w2');
    let text = '';
    for await (const c of await client.completions.create({ model: 'echo', prompt: 'TOKENS=3', stream: true })) {
      text += c.choices[0]?.text || '';
    }
    assert.equal(text, 'Hello w1 w2');
  });

  it('answers embeddings', TEST, async () => {
    const r = await client.embeddings.create({ model: 'echo', input: ['a', 'b', 'c'], encoding_format: 'float' });
    assert.equal(r.data.length, 3);
    assert.equal(r.data[2].embedding.length, 8);
  });

  it('raises the usual exceptions for errors', TEST, async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }),
      (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
    await assert.rejects(
      client.chat.completions.create({ model: 'echo', messages: [{ role: 'user', content: 'x' }], n: 2 }),
      (e) => e instanceof OpenAI.BadRequestError && e.code === 'invalid_request' && /n/.test(e.message));
    await assert.rejects(
      client.chat.completions.create({ model: 'echo', messages: [] }),
      (e) => e instanceof OpenAI.BadRequestError);
    await assert.rejects(
      client.chat.completions.create({ model: 'refused', messages: [{ role: 'user', content: 'x' }] }),
      (e) => e instanceof OpenAI.ConflictError && e.code === 'model_incompatible'
        && e.message.includes('Hardware incompatibility detected: test'));
    await assert.rejects(
      client.embeddings.create({ model: 'crashy', input: 'x' }),
      (e) => e instanceof OpenAI.BadRequestError && e.message.includes('"embeddings": true'));
  });

  it('raises an APIError when the engine dies mid-stream, and the server stays up', TEST, async () => {
    const stream = await client.chat.completions.create({
      model: 'crashy', messages: [{ role: 'user', content: 'TOKENS=50 DELAY_MS=20 CRASH_AFTER=3' }], stream: true,
    });
    let text = '';
    await assert.rejects(async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content || '';
    }, (e) => e instanceof OpenAI.APIError && e.code === 'engine_crashed');
    assert.ok(text.startsWith('Hello'), text);
    const model = await server.model('crashy');
    assert.notEqual(model.compatibility_status, 'testing');
    assert.equal(model.loaded, false);
    const status = await server.api('GET', '/api/status');
    assert.equal(status.status, 200);
  });
});

// The same client against a real llama.cpp model: a make-test-model GGUF
// loaded by modelwarden-worker (llama.cpp's own server code). Random weights:
// the texts are noise, often with bytes that are not UTF-8 (seeds 2 and 4
// below ended as 502 engine_error before the engine's text guard), so the
// checks are on shapes, usage and well-formed answers.
describe('the OpenAI npm client against a real llama.cpp model', () => {
  let server;
  let client;

  before(async () => {
    server = await startServer();
    const file = server.makeTestModel('tiny.gguf');
    await server.ok('POST', '/api/models', {
      model_name: 'tiny', file_path: file, load_config: { n_threads: 1, n_ctx: 2048 },
    });
    await server.ok('POST', '/api/models', {
      model_name: 'tiny-embed', file_path: file, load_config: { n_threads: 1, n_ctx: 2048, embeddings: true, pooling: 'mean' },
    });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });

  after(async () => {
    if (process.env.MW_DEBUG && server) console.log(server.output);
    if (server) await server.stop();
  });

  it('chats, streamed or not, with usage', TEST, async () => {
    const r = await client.chat.completions.create({
      model: 'tiny', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 32, seed: 4,
    });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.ok(r.choices[0].message.content.length > 0);
    assert.ok(r.usage.completion_tokens > 0 && r.usage.prompt_tokens > 0, JSON.stringify(r.usage));
    const stream = await client.chat.completions.create({
      model: 'tiny', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 32, seed: 4, stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage = null;
    for await (const chunk of stream) {
      if (chunk.choices.length) text += chunk.choices[0].delta.content || '';
      if (chunk.usage) usage = chunk.usage;
    }
    assert.ok(text.length > 0);
    assert.ok(usage && usage.completion_tokens > 0, JSON.stringify(usage));
    const model = await server.model('tiny');
    assert.equal(model.compatibility_status, 'compatible');
    assert.equal(model.loaded, true);
  });

  it('completes text, streamed or not', TEST, async () => {
    const r = await client.completions.create({ model: 'tiny', prompt: 'Hello', max_tokens: 32, seed: 2 });
    assert.equal(r.object, 'text_completion');
    assert.ok(r.choices[0].text.length > 0);
    assert.ok(r.usage.completion_tokens > 0);
    let text = '';
    for await (const c of await client.completions.create({ model: 'tiny', prompt: 'Hello', max_tokens: 32, seed: 2, stream: true })) {
      text += c.choices[0]?.text || '';
    }
    assert.ok(text.length > 0);
  });

  it('answers embeddings from a model loaded with embeddings', TEST, async () => {
    const r = await client.embeddings.create({ model: 'tiny-embed', input: ['a', 'b'], encoding_format: 'float' });
    assert.equal(r.data.length, 2);
    assert.equal(r.data[1].embedding.length, 64);  // make-test-model's n_embd
    assert.ok(r.data[0].embedding.every(Number.isFinite));
    await assert.rejects(
      client.embeddings.create({ model: 'tiny', input: 'x' }),
      (e) => e instanceof OpenAI.BadRequestError && e.message.includes('"embeddings": true'));
  });

  it('lists both models', TEST, async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.deepEqual(ids.sort(), ['tiny', 'tiny-embed']);
  });
});
