// How much of the engine's speed the page gives a learner: samples trained per second of wall time in the page (all
// panels at 1400x900, the 1100x560 embed with two panels, a small window), training in the page's frames (?worker=0)
// and in its training Worker (the default), beside bench.html (the engine alone in a Worker) for the same preset, in
// one headless Chromium, one after the other. Prints a table; numbers, not a test.
//   node bench/page_vs_engine.js [--preset conv] [--seconds 15]
// Needs build/web (bash build_wasm.sh) and tests/e2e/node_modules (bash scripts/bootstrap.sh --browser).
'use strict';
const os = require('os');
const path = require('path');
const { serve, launch, waitReady } = require('../tests/e2e/lib');

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
const PRESET = opt('--preset', 'conv');
const SECONDS = Number(opt('--seconds', 15));

// Trains in the page for SECONDS after a 3 s warm-up; samples/s from the step counter and the wall clock, frame times
// from requestAnimationFrame over the same window.
async function pageRun(browser, url, size, query) {
  const page = await browser.newPage({ viewport: size });
  await page.goto(url + '?' + query);
  await waitReady(page);
  await page.evaluate(() => window.aep.start());
  await page.waitForTimeout(3000);
  const r = await page.evaluate((secs) => new Promise((resolve) => {
    const s0 = window.aep.status(), t0 = performance.now(), d = [];
    let last = t0;
    function tick(t) {
      d.push(t - last);
      last = t;
      if (t - t0 < secs * 1000) return requestAnimationFrame(tick);
      const s1 = window.aep.status();
      resolve({ steps: s1.step - s0.step, batch: s1.batch, ms: t - t0, frames: d, reported: s1.samplesPerSec,
                engine: s1.engineSamplesPerSec });
    }
    requestAnimationFrame(tick);
  }), SECONDS);
  await page.close();
  r.frames.sort((a, b) => a - b);
  const q = (x) => r.frames[Math.min(r.frames.length - 1, Math.floor(x * r.frames.length))];
  return { sps: r.steps * r.batch / (r.ms / 1000), reported: r.reported, engine: r.engine, p50: q(0.5), p95: q(0.95),
           p99: q(0.99) };
}

(async () => {
  const { server, url } = await serve(path.join(__dirname, '../build/web'));
  const browser = await launch();
  try {
    const bench = await browser.newPage();
    await bench.goto(url + `bench.html?only=${PRESET}&seconds=2&runs=3`);
    await bench.waitForFunction(() => window.benchResult, null, { timeout: 300000 });
    const br = await bench.evaluate(() => window.benchResult);
    await bench.close();
    if (br.error) throw new Error('bench.html: ' + br.error);
    const engine = br.records.find((r) => r.workload.includes(PRESET)).samples_per_s;
    const cases = [
      ['all ten panels, 1400x900', { width: 1400, height: 900 }, `preset=${PRESET}`],
      ['embed: training + recon, 1100x560', { width: 1100, height: 560 }, `preset=${PRESET}&panels=training,recon&compact=1`],
      ['small window: training, 480x320', { width: 480, height: 320 }, `preset=${PRESET}&panels=training&compact=1`],
    ];
    console.log(`preset ${PRESET}; CPU: ${os.cpus()[0].model}, ${os.cpus().length} cores; headless Chromium, software WebGL`);
    console.log(`bench.html (the engine alone in a Worker): ${engine.toFixed(0)} samples/s`);
    console.log('| page | trained samples/s (wall) | / bench.html | status samplesPerSec | engine inside slices | frames p50 / p95 / p99 ms |');
    console.log('|---|---:|---:|---:|---:|---|');
    for (const [where, worker] of [['in the page\'s frames', 0], ['in a Worker', 1]])
    for (const [label0, size, query] of cases) {
      const label = `${label0}, training ${where}`;
      const r = await pageRun(browser, url, size, `${query}&worker=${worker}`);
      console.log(`| ${label} | ${r.sps.toFixed(0)} | ${(r.sps / engine).toFixed(2)} | ${r.reported.toFixed(0)} | ` +
                  `${r.engine.toFixed(0)} | ${r.p50.toFixed(1)} / ${r.p95.toFixed(1)} / ${r.p99.toFixed(1)} |`);
    }
  } finally {
    await browser.close();
    server.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
