// Long-run memory of the playground page in Debian's Chromium: trains with every panel open for MINUTES
// (default 10) and samples the wasm heap, the JS heap and the resident memory of all Chromium processes every
// 30 s. Not part of the test command (it takes minutes); run it by hand: node tests/e2e/memory.js [MINUTES] [PRESET].
// Writes build/test-logs/e2e/memory.json and exits non-zero if memory grew by more than 10% (plus 16 MB of slack)
// between the end of the first minute and the end of the run.
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { serve, launch, waitReady } = require('./lib');

const root = path.join(__dirname, '../..');
const out = path.join(root, 'build/test-logs/e2e');
fs.mkdirSync(out, { recursive: true });
const minutes = Number(process.argv[2] || 10);
const preset = process.argv[3] || 'conv';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resident set size of every process whose command is chromium/chrome (the browser, GPU and renderer processes).
function chromiumRss() {
  const lines = execFileSync('ps', ['-eo', 'rss=,comm='], { encoding: 'utf8' }).split('\n');
  let kb = 0;
  for (const l of lines) {
    const m = l.trim().match(/^(\d+)\s+(.*)$/);
    if (m && /chrom/i.test(m[2])) kb += Number(m[1]);
  }
  return kb * 1024;
}

(async () => {
  const { server, url } = await serve(path.join(root, 'build/web'));
  const browser = await launch();
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url + '?preset=' + preset + '&seed=1');
  await waitReady(page);
  await page.evaluate(() => window.aep.start());
  const samples = [];
  const t0 = Date.now();
  for (;;) {
    const m = await page.evaluate(() => ({ status: window.aep.status(),
                                           js: performance.memory ? performance.memory.usedJSHeapSize : null }));
    const s = { minute: (Date.now() - t0) / 60000, step: m.status.step, epoch: m.status.epoch,
                wasmHeap: m.status.memoryBytes, jsHeapUsed: m.js, chromiumRss: chromiumRss(),
                running: m.status.running, message: m.status.message };
    samples.push(s);
    console.log(`${s.minute.toFixed(1)} min  step ${s.step}  wasm heap ${(s.wasmHeap / 2 ** 20).toFixed(0)} MB  ` +
                `JS heap ${(s.jsHeapUsed / 2 ** 20).toFixed(1)} MB  Chromium RSS ${(s.chromiumRss / 2 ** 20).toFixed(0)} MB` +
                (s.running ? '' : '  (not running: ' + s.message + ')'));
    if (!s.running) await page.evaluate(() => window.aep.start());  // the epochs ran out: keep training
    if (s.minute >= minutes) break;
    await sleep(30000);
  }
  await browser.close();
  server.close();
  const first = samples.find((s) => s.minute >= 1) || samples[0], last = samples[samples.length - 1];
  const grew = (k) => last[k] > first[k] * 1.1 + 16 * 2 ** 20;
  const result = { preset, minutes, first, last, samples, errors,
                   grew: { wasmHeap: grew('wasmHeap'), jsHeapUsed: grew('jsHeapUsed'), chromiumRss: grew('chromiumRss') } };
  fs.writeFileSync(path.join(out, 'memory.json'), JSON.stringify(result, null, 1));
  const ok = !result.grew.wasmHeap && !result.grew.jsHeapUsed && !result.grew.chromiumRss && errors.length === 0;
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${minutes} min of ${preset} training, ${last.step} steps: wasm heap ` +
              `${(first.wasmHeap / 2 ** 20).toFixed(0)} -> ${(last.wasmHeap / 2 ** 20).toFixed(0)} MB, JS heap ` +
              `${(first.jsHeapUsed / 2 ** 20).toFixed(1)} -> ${(last.jsHeapUsed / 2 ** 20).toFixed(1)} MB, Chromium RSS ` +
              `${(first.chromiumRss / 2 ** 20).toFixed(0)} -> ${(last.chromiumRss / 2 ** 20).toFixed(0)} MB` +
              (errors.length ? `; page errors: ${errors.slice(0, 3).join(' | ')}` : ''));
  process.exit(ok ? 0 : 1);
})();
