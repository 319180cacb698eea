// The load_config of a `command` model run by mw-openai-engine
// (tests/fixtures/openai_engine.cpp): an OpenAI-compatible engine on {port}.
import path from 'node:path';

import { binDir } from './server.mjs';

export function openAiEngineConfig(extra = {}) {
  const engine = path.join(binDir(), 'mw-openai-engine');
  return { argv: [engine, '--port', '{port}'], health_path: '/health', ...extra };
}
