// Screenshot the playground after it has trained for a while:
//   node tests/e2e/screenshot.js OUT.png [QUERY] [SECONDS_OF_TRAINING] [WIDTHxHEIGHT]
// e.g. node tests/e2e/screenshot.js /tmp/vae.png 'preset=vae-mlp&autostart=1' 20
// AEP_ISOLATED=1 serves the page cross-origin isolated, as scripts/serve.sh does (the threaded engine).
'use strict';
const path = require('path');
const { serve, launch, waitReady } = require('./lib');

(async () => {
  const [out, query = '', seconds = '5', size = '1400x900'] = process.argv.slice(2);
  if (!out) { console.error('usage: screenshot.js OUT.png [QUERY] [SECONDS] [WxH]'); process.exit(2); }
  const [width, height] = size.split('x').map(Number);
  const { server, url } = await serve(path.join(__dirname, '../../build/web'), 0, process.env.AEP_ISOLATED === '1');
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width, height } });
    page.on('pageerror', (e) => console.error('page error:', e.message));
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.error('console:', m.text()); });
    await page.goto(url + (query ? '?' + query : ''));
    await waitReady(page);
    await page.waitForTimeout(Number(seconds) * 1000);
    await page.screenshot({ path: out });
    console.log(out, JSON.stringify(await page.evaluate(() => window.aep.status())));
  } finally {
    await browser.close();
    server.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
