// A reference point, not a product: the least a JSON-aware Node proxy can do per request —
// node:http in, parse the request JSON, undici Pool out to the upstream, parse the response JSON,
// serialize it, answer. No auth, no limits, no holds, no records. `npm run bench -- --floor`
// measures it next to the gateway, so that the gateway's figures can be read against what Node
// HTTP-in plus HTTP-out costs on the same machine.
//
//   node bench/floor-proxy.mjs --upstream http://127.0.0.1:PORT [--port N]   prints "LISTENING <port>"

import http from 'node:http';
import { Pool } from 'undici';

const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const upstream = arg('--upstream');
const port = Number(arg('--port', 0));
if (!upstream) {
  process.stderr.write('usage: node bench/floor-proxy.mjs --upstream http://127.0.0.1:PORT [--port N]\n');
  process.exit(2);
}
const pool = new Pool(upstream, { connections: 256, pipelining: 1, keepAliveTimeout: 30_000 });
const UP_HEADERS = { 'content-type': 'application/json', accept: 'application/json' };

const server = http.createServer((req, res) => {
  const parts = [];
  req.on('data', (c) => parts.push(c));
  req.on('end', async () => {
    try {
      const body = JSON.parse(Buffer.concat(parts).toString('utf8'));
      const up = await pool.request({ method: 'POST', path: req.url, headers: UP_HEADERS, body: JSON.stringify(body) });
      const out = await up.body.json();
      const text = JSON.stringify(out);
      res.writeHead(up.statusCode, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    } catch (e) {
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: String(e?.message ?? e) } }));
    }
  });
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;
server.listen({ host: '127.0.0.1', port, backlog: 4096 }, () => process.stdout.write(`LISTENING ${server.address().port}\n`));
const stop = () => {
  server.close();
  server.closeAllConnections();
  void pool.destroy();
  setTimeout(() => process.exit(0), 200).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
