// Shared pieces of the end-to-end scripts: a static file server for build/web and Debian's Chromium via playwright-core.
'use strict';
const http = require('http');
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const ISOLATION = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm',
                '.gz': 'application/octet-stream', '.png': 'image/png' };

// Serves `dir` on 127.0.0.1 (port 0: any free port); resolves to {server, url}. With `isolated`, every response
// carries the COOP/COEP headers of scripts/serve.sh (the page is then cross-origin isolated: the threaded engine).
// `answer(rel, res)`, if given, may answer a request itself (a broken or differently served file) by returning true.
function serve(dir, port = 0, isolated = false, answer = null) {
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    if (answer && answer(rel, res)) return;
    const file = path.join(dir, rel.endsWith('/') ? rel + 'index.html' : rel);
    if (!file.startsWith(path.resolve(dir))) { res.writeHead(403); return res.end(); }
    fs.stat(file, (err, st) => {
      if (err || !st.isFile()) { res.writeHead(404); return res.end('not found'); }
      const headers = { 'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream',
                        'Content-Length': st.size };
      if (isolated) Object.assign(headers, ISOLATION);
      res.writeHead(200, headers);
      fs.createReadStream(file).pipe(res);
    });
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () =>
    resolve({ server, url: 'http://127.0.0.1:' + server.address().port + '/' })));
}

async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist',
           '--disable-background-timer-throttling', '--disable-renderer-backgrounding'],
  });
}

// Waits until window.aep reports the data loaded (or throws after `ms`).
async function waitReady(page, ms = 60000) {
  await page.waitForFunction(() => window.aep && window.aep.status().dataReady === true, null, { timeout: ms });
}

module.exports = { serve, launch, waitReady };
