// modelwarden web page: the chat panel of the model details (SPEC §10).
//
// Streams an answer from POST /v1/chat/completions ("stream": true) and
// shows it as plain text (textContent only, as everywhere on the page: model
// output never becomes markup). A model that is not loaded is loaded on
// demand by the server, through the same compatibility gate as the Load
// button. Stop aborts the request; the server then cancels the generation.
'use strict';

(() => {
  const KEY_STORAGE = 'modelwarden.apiKey';  // set by app.js when the user enters a key
  const chat = { name: null, messages: [], controller: null };
  const $ = (id) => document.getElementById(id);

  function apiKey() {
    try { return sessionStorage.getItem(KEY_STORAGE) || ''; } catch { return ''; }
  }

  function showError(text) {
    const el = $('chat-error');
    el.textContent = text;
    el.hidden = !text;
  }

  function bubble(role, text) {
    const li = document.createElement('li');
    li.className = `chat-msg chat-${role}`;
    const who = document.createElement('span');
    who.className = 'chat-role';
    who.textContent = role === 'user' ? 'You' : chat.name;
    const body = document.createElement('span');
    body.className = 'chat-text';
    body.textContent = text;
    li.append(who, body);
    $('chat-log').append(li);
    return body;
  }

  function busy(on) {
    $('chat-send').disabled = on;
    $('chat-stop').hidden = !on;
  }

  // The server's advice in the page's words (SPEC §18): its buttons, not API
  // fields and paths (the same sentences cli/advice.cpp rewrites for the CLI).
  function inPageWords(text) {
    return text
      .replace(/load it with POST \/api\/orchestrate\/load and force_load=true, or set its status/g,
        'load it anyway with Load on its card, or set its status in these details')
      .replace(/Load it with force_load=true to try anyway\./g, 'Use Load on its card to try anyway.')
      .replace(/load it with force_load=true to try anyway/g, 'use Load on its card to try anyway')
      .replace(/POST \/api\/models\/[^/\s]+\/retest/g, 'its Retest button')
      .replace(/\(PATCH \/api\/models\/[^/\s]+\/config\)/g, '(its load_config, in these details)')
      .replace(/\(POST \/api\/orchestrate\/unload\)/g, '(its Unload button)');
  }

  // The error inside a JSON body or an event, as text.
  function errorText(data, fallback) {
    const e = data && typeof data.error === 'object' && data.error ? data.error : null;
    return e && typeof e.message === 'string' && e.message ? inPageWords(e.message) : fallback;
  }

  async function send() {
    const input = $('chat-input');
    const text = input.value.trim();
    if (!text || chat.controller || !chat.name) return;
    showError('');
    input.value = '';
    bubble('user', text);
    chat.messages.push({ role: 'user', content: text });
    const answerEl = bubble('assistant', '');
    answerEl.parentElement.setAttribute('aria-busy', 'true');
    const controller = new AbortController();
    chat.controller = controller;
    const name = chat.name;
    busy(true);
    let answer = '';
    try {
      const headers = { 'Content-Type': 'application/json', Accept: 'text/event-stream' };
      const key = apiKey();
      if (key) headers.Authorization = `Bearer ${key}`;
      const res = await fetch('/v1/chat/completions', {
        method: 'POST', headers, signal: controller.signal,
        body: JSON.stringify({ model: name, messages: chat.messages, stream: true }),
      });
      if (!res.ok) {
        let data = null;
        try { data = await res.json(); } catch { data = null; }
        throw new Error(errorText(data, `The server answered ${res.status}.`));
      }
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true }).replace(/\r/g, '');
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          for (const line of event.split('\n')) {
            if (!line.startsWith('data:')) continue;
            const payload = line.slice(5).trim();
            if (payload === '[DONE]') continue;
            let chunk;
            try { chunk = JSON.parse(payload); } catch { continue; }
            if (chunk.error) throw new Error(errorText(chunk, 'The engine failed.'));
            const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
            if (delta && typeof delta.content === 'string') {
              answer += delta.content;
              answerEl.textContent = answer;
            }
          }
        }
      }
      chat.messages.push({ role: 'assistant', content: answer });
    } catch (e) {
      if (chat.name !== name) return;  // the panel moved on to another model
      if (controller.signal.aborted) {
        answerEl.textContent = answer ? `${answer} [stopped]` : '[stopped]';
        if (answer) chat.messages.push({ role: 'assistant', content: answer });
        else chat.messages.pop();
      } else {
        if (!answer) answerEl.parentElement.remove();
        if (!answer) chat.messages.pop();
        else chat.messages.push({ role: 'assistant', content: answer });
        showError(e.message);
      }
    } finally {
      answerEl.parentElement.removeAttribute('aria-busy');
      if (chat.controller === controller) {
        chat.controller = null;
        busy(false);
      }
    }
  }

  function stop() {
    if (chat.controller) chat.controller.abort();
  }

  // A new conversation for `name` (the details of another model were opened).
  // `refused`: the model is incompatible and not loaded: no chat is offered
  // (the Load button's warning is the way to try it anyway).
  function open(name, refused = false) {
    stop();
    chat.name = refused ? null : name;
    chat.messages = [];
    chat.controller = null;
    $('chat-log').replaceChildren();
    $('chat-input').value = '';
    showError('');
    busy(false);
    document.querySelector('.chat-input').hidden = refused;
    $('chat-refused').hidden = !refused;
  }

  function close() {
    stop();
    chat.name = null;
  }

  function start() {
    $('chat-send').addEventListener('click', send);
    $('chat-stop').addEventListener('click', stop);
    $('chat-input').addEventListener('keydown', (ev) => {
      // Enter sends, Shift+Enter is a new line; never submits the details form.
      if (ev.key === 'Enter' && !ev.shiftKey) {
        ev.preventDefault();
        send();
      }
    });
  }

  window.modelwardenChat = Object.freeze({ open, close });
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
