// `aep bench` in headless Chromium: serves build/web, opens bench.html (the engine in a Worker of the page) and
// waits for its records; relabels them "aep chromium" and writes them as JSON for bench/table.js.
// usage: node bench/chromium_bench.js [--only A,B,gemm] [--seconds S] [--runs N] [--json FILE]
'use strict';
const path = require('path');
const fs = require('fs');
const root = path.join(__dirname, '..');
const { serve, launch } = require(path.join(root, 'tests/e2e/lib'));

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };

(async () => {
  const { server, url } = await serve(path.join(root, 'build/web'));
  const browser = await launch();
  let code = 0;
  try {
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    const q = new URLSearchParams({ only: opt('--only', 'A,B,gemm'), seconds: opt('--seconds', '1'), runs: opt('--runs', '5') });
    await page.goto(url + 'bench.html?' + q);
    await page.waitForFunction(() => window.benchResult, null, { timeout: 30 * 60 * 1000, polling: 1000 });
    const result = await page.evaluate(() => window.benchResult);
    console.log(await page.evaluate(() => document.getElementById('out').textContent));
    if (result.error) throw new Error(result.error);
    for (const r of result.records) r.system = 'aep chromium';
    if (opt('--json')) fs.writeFileSync(opt('--json'), JSON.stringify(result, null, 1));
  } catch (e) {
    console.error('chromium_bench.js:', e.message);
    code = 1;
  } finally {
    await browser.close();
    server.close();
  }
  process.exit(code);
})();
