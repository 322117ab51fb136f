// The Node baseline for bench/server: the concurrent-head page served by
// node:http with AsyncLocalStorage holding the request's head, yielding once
// (setImmediate) between writing the head and rendering it — the same work as
// modgraph's page. Prints the port, then serves until killed.
'use strict';
const http = require('node:http');
const { AsyncLocalStorage } = require('node:async_hooks');

const als = new AsyncLocalStorage();

function addChild(html) { als.getStore().head.push(html); }

async function renderPage(url) {
  const id = url.searchParams.get('id') ?? 'none';
  addChild(`<title>req-${id}</title>`);
  addChild(`<meta name="req-id" content="${id}">`);
  await new Promise((resolve) => setImmediate(resolve));
  const head = als.getStore().head.join('');
  return `<!DOCTYPE html><html><head>${head}</head><body><h1 data-testid="req-id">${id}</h1></body></html>`;
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname !== '/concurrent-head') {
    res.writeHead(404).end();
    return;
  }
  als.run({ head: [] }, async () => {
    const body = await renderPage(url);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`);
});
