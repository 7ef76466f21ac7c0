// Development only: serves ../query/ui at /ui/ with the query service's CSP and proxies
// everything else (/v1/..., /oauth/token) to the query service.
//   node web/dev-server.mjs [port=8090] [upstream=http://127.0.0.1:8081]
import { createServer, request } from 'node:http';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const ui = join(here, '..', 'query', 'ui');
const port = Number(process.argv[2] ?? 8090);
const upstream = new URL(process.argv[3] ?? 'http://127.0.0.1:8081');
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const TYPES = { 'app.js': 'text/javascript; charset=utf-8', 'app.css': 'text/css; charset=utf-8', 'index.html': 'text/html; charset=utf-8' };

createServer(async (req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (path === '/ui') {
    res.writeHead(308, { Location: '/ui/' }).end();
    return;
  }
  if (path.startsWith('/ui/')) {
    const name = path.slice(4);
    const file = TYPES[name] ? name : 'index.html';
    try {
      const body = await readFile(join(ui, file));
      res.writeHead(200, { 'Content-Type': TYPES[file], 'Content-Security-Policy': CSP, 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
      res.end(body);
    } catch (e) {
      res.writeHead(500).end(String(e));
    }
    return;
  }
  const up = request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: { ...req.headers, host: upstream.host } }, (r) => {
    res.writeHead(r.statusCode ?? 502, r.headers);
    r.pipe(res);
  });
  up.on('error', (e) => res.writeHead(502, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: { code: 'bad_gateway', message: String(e) } })));
  req.pipe(up);
}).listen(port, '127.0.0.1', () => console.error(`dev server: http://127.0.0.1:${port}/ui/ → ${upstream.href}`));
