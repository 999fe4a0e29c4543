// A minimal OpenAI-compatible upstream for the benchmark. It exists to cost as little as possible,
// so that what the benchmark measures is the gateway, not this server.
//
//   node bench/upstream.mjs [--port N]       prints "LISTENING <port>" on stdout once it listens
//
// POST <prefix>/v1/chat/completions
//   non-streamed: one fixed, precomputed JSON body with usage (Content-Length, keep-alive).
//   streamed ("stream":true in the body): SSE chunks, a finish chunk, a usage chunk when
//   "include_usage":true is in the body, then `data: [DONE]`. The prefix picks the pacing:
//     (none)                       5 content chunks, written at once
//     /s/<chunks>/<firstMs>/<paceMs> first content chunk after firstMs, the others paceMs apart
//     /h/<paceMs>                  "held": first chunk at once, then one chunk every paceMs until
//                                  GET /_release, then the finish, usage and [DONE]
// GET /_stats    {requests, streams_open, streams_peak, released}   GET /_reset   GET /_release
//
// The body is never parsed as JSON: two substring searches decide stream and include_usage.

import http from 'node:http';

const args = process.argv.slice(2);
const portArg = args.indexOf('--port');
const port = portArg >= 0 ? Number(args[portArg + 1]) : 0;

const MODEL = 'bench-upstream';
const CREATED = 1_700_000_000;
const USAGE = { prompt_tokens: 14, completion_tokens: 24, total_tokens: 38 };

const COMPLETION = Buffer.from(
  JSON.stringify({
    id: 'chatcmpl-bench0000000000000000000000',
    object: 'chat.completion',
    created: CREATED,
    model: MODEL,
    system_fingerprint: 'fp_bench',
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: 'Hello! This is a fixed answer from the benchmark upstream, about two dozen tokens long.', refusal: null },
        logprobs: null,
        finish_reason: 'stop',
      },
    ],
    usage: USAGE,
  }),
);
const COMPLETION_HEADERS = { 'content-type': 'application/json', 'content-length': String(COMPLETION.length) };
const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' };

const sse = (obj) => Buffer.from(`data: ${JSON.stringify(obj)}\n\n`);
const chunk = (delta, finish = null) => ({
  id: 'chatcmpl-bench0000000000000000000000',
  object: 'chat.completion.chunk',
  created: CREATED,
  model: MODEL,
  system_fingerprint: 'fp_bench',
  choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
});
const FIRST = sse(chunk({ role: 'assistant', content: 'Hello' }));
const WORDS = [' there', ',', ' this', ' is', ' a', ' streamed', ' answer', ' from', ' the', ' bench', ' upstream', '.'];
const CONTENT = WORDS.map((w) => sse(chunk({ content: w })));
const FINISH = sse(chunk({}, 'stop'));
const USAGE_CHUNK = sse({ id: 'chatcmpl-bench0000000000000000000000', object: 'chat.completion.chunk', created: CREATED, model: MODEL, choices: [], usage: USAGE });
const DONE = Buffer.from('data: [DONE]\n\n');

const stats = { requests: 0, streams_open: 0, streams_peak: 0, released: false };
const held = new Set();

function endStream(res, usage) {
  if (res.destroyed) return;
  res.write(FINISH);
  if (usage) res.write(USAGE_CHUNK);
  res.end(DONE);
}

function streamOpened(res) {
  stats.streams_open++;
  if (stats.streams_open > stats.streams_peak) stats.streams_peak = stats.streams_open;
  res.once('close', () => stats.streams_open--);
}

/** n content chunks (the first one included), the first after firstMs, the others paceMs apart. */
function paced(res, usage, n, firstMs, paceMs) {
  res.writeHead(200, SSE_HEADERS);
  streamOpened(res);
  if (firstMs === 0 && paceMs === 0) {
    res.cork();
    res.write(FIRST);
    for (let i = 1; i < n; i++) res.write(CONTENT[(i - 1) % CONTENT.length]);
    endStream(res, usage);
    res.uncork();
    return;
  }
  let i = 0;
  const step = () => {
    if (res.destroyed) return;
    res.write(i === 0 ? FIRST : CONTENT[(i - 1) % CONTENT.length]);
    i++;
    if (i < n) setTimeout(step, paceMs);
    else endStream(res, usage);
  };
  setTimeout(step, firstMs);
}

/** First chunk at once, then one every paceMs until released. */
function hold(res, usage, paceMs) {
  res.writeHead(200, SSE_HEADERS);
  streamOpened(res);
  res.write(FIRST);
  let i = 0;
  const timer = setInterval(() => {
    if (!res.destroyed) res.write(CONTENT[i++ % CONTENT.length]);
  }, paceMs);
  const entry = { res, usage, timer };
  const finish = () => {
    clearInterval(timer);
    held.delete(entry);
  };
  entry.finish = () => {
    finish();
    endStream(res, usage);
  };
  held.add(entry);
  res.once('close', finish);
  if (stats.released) entry.finish();
}

const STREAM_FLAG = Buffer.from('"stream":true');
const USAGE_FLAG = Buffer.from('"include_usage":true');

function completions(req, res, prefix) {
  const parts = [];
  req.on('data', (c) => parts.push(c));
  req.on('end', () => {
    const body = parts.length === 1 ? parts[0] : Buffer.concat(parts);
    if (body.indexOf(STREAM_FLAG) === -1) {
      res.writeHead(200, COMPLETION_HEADERS);
      res.end(COMPLETION);
      return;
    }
    const usage = body.indexOf(USAGE_FLAG) !== -1;
    const p = prefix.split('/');
    if (p[1] === 'h') hold(res, usage, Number(p[2]) || 1000);
    else if (p[1] === 's') paced(res, usage, Math.max(1, Number(p[2]) || 1), Number(p[3]) || 0, Number(p[4]) || 0);
    else paced(res, usage, 5, 0, 0);
  });
}

function json(res, status, obj) {
  const b = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b) });
  res.end(b);
}

const SUFFIX = '/v1/chat/completions';

const server = http.createServer((req, res) => {
  const url = req.url;
  if (req.method === 'POST' && url.endsWith(SUFFIX)) {
    stats.requests++;
    completions(req, res, url.slice(0, -SUFFIX.length));
    return;
  }
  if (url === '/_stats') return json(res, 200, stats);
  if (url === '/_reset') {
    stats.requests = 0;
    stats.streams_peak = stats.streams_open;
    stats.released = false;
    return json(res, 200, stats);
  }
  if (url === '/_release') {
    stats.released = true;
    for (const e of [...held]) e.finish();
    return json(res, 200, stats);
  }
  req.resume();
  json(res, 404, { error: { message: 'not found', type: 'not_found_error', param: null, code: '404' } });
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;
server.listen({ host: '127.0.0.1', port, backlog: 4096 }, () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});

const stop = () => {
  for (const e of [...held]) e.finish();
  server.close();
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 200).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
