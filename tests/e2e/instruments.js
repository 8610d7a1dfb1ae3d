// The instruments of issue 15 in Chromium: a screenshot of each (to look at) and a check of what status() says.
//   node tests/e2e/instruments.js [OUT_DIR]     (build/web must be built: bash build_wasm.sh --page)
// Writes OUT_DIR/{loss,jacobian,probe,posterior}.png (default /tmp/aep-instruments) and prints one line per check;
// exits non-zero when a check fails.
'use strict';
const fs = require('fs');
const path = require('path');
const { serve, launch, waitReady } = require('./lib');

const out = process.argv[2] || '/tmp/aep-instruments';
let failed = 0;
function check(name, ok, detail) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ': ' + detail : ''}`);
  if (!ok) failed++;
}

(async () => {
  fs.mkdirSync(out, { recursive: true });
  const { server, url } = await serve(path.join(__dirname, '../../build/web'));
  const browser = await launch();
  const status = (page) => page.evaluate(() => window.aep.status());
  // Polls status() until pred holds (or the time is up); returns the last status.
  async function until(page, pred, seconds) {
    let st;
    for (let t = 0; t < seconds * 4; t++) {
      st = await status(page);
      if (pred(st)) break;
      await page.waitForTimeout(250);
    }
    return st;
  }
  async function open(query) {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on('pageerror', (e) => check('no page error', false, e.message));
    await page.goto(url + '?' + query);
    await waitReady(page);
    return page;
  }
  try {
    // The loss picker: a change while training starts a second, labelled curve segment.
    let page = await open('preset=conv&panels=model,training&autostart=1');
    await until(page, (s) => s.step >= 150, 60);
    const reply = await page.evaluate(() => window.aep.setConfig({ loss: 'l1' }));
    check('setConfig({loss: "l1"}) is accepted while training', reply.ok === true, JSON.stringify(reply));
    let st = await until(page, (s) => s.lossSegments.length === 2 && s.lossSegments[1].trainPoints >= 150 &&
                                      s.lossSegments[1].testPoints >= 2, 60);
    check('the loss curve has an MSE segment, then an L1 one', st.lossSegments.length === 2 &&
          st.lossSegments[0].loss === 'MSE, mean' && st.lossSegments[1].loss === 'L1, mean' &&
          st.lossSegments[1].trainPoints > 0, JSON.stringify(st.lossSegments));
    await page.screenshot({ path: path.join(out, 'loss.png') });
    const warned = await page.evaluate(() => window.aep.setConfig({ preset: 'tied', loss: 'bce' }));
    st = await status(page);
    check('BCE with a decoder that does not end in a Sigmoid: applied, with a warning', warned.ok === true &&
          /Sigmoid/.test(warned.warnings[0]) && st.loss === 'bce' && /Sigmoid/.test(st.lossWarning), JSON.stringify(warned));
    await page.waitForTimeout(500);
    await page.screenshot({ path: path.join(out, 'loss-warning.png') });
    const refused = await page.evaluate(() => window.aep.setConfig({ preset: 'undercomplete-tanh', loss: 'bce' }));
    check('BCE on [-1, 1] inputs is refused with the reason', refused.ok === false &&
          /\[-1, 1\]/.test(refused.errors[0]), JSON.stringify(refused));
    await page.close();

    // The Jacobian norm and the sparsity readout of the contractive model.
    page = await open('preset=contractive&panels=training,latent&autostart=1');
    st = await until(page, (s) => s.jacobianNorm !== null && s.jacobianStep >= 300, 90);
    check('jacobianNorm is measured while training', st.jacobianNorm > 0 && st.jacobianDigits === 200,
          `jacobianNorm ${st.jacobianNorm} on ${st.jacobianDigits} digits at step ${st.jacobianStep}, sparsity ` +
          `${st.sparsity}, meanAbsCode ${st.meanAbsCode}, frames p50 ${st.frameMs.p50} p95 ${st.frameMs.p95} ms`);
    await page.screenshot({ path: path.join(out, 'jacobian.png') });
    await page.close();

    // The code probe: codes vs pixels vs PCA codes, at 100 labels while training, then at 60,000.
    page = await open('preset=linear&panels=training,latent&probeLabels=100&autostart=1');
    const done = (s) => s.probe && s.probe.code && s.probe.pixels && s.probe.pca && s.probe.labels === s.probeLabels;
    st = await until(page, (s) => done(s) && s.probe.step >= 500, 120);
    const acc = (r) => r && r.softmax > 0.1 && r.softmax <= 1 && r.knn > 0.1 && r.knn <= 1;
    check('probe at 100 labels: codes, pixels and PCA codes above chance', done(st) && acc(st.probe.code) &&
          acc(st.probe.pixels) && acc(st.probe.pca), JSON.stringify(st.probe));
    await page.screenshot({ path: path.join(out, 'probe.png') });
    await page.evaluate(() => window.aep.pause());
    // Frame intervals while it computes, by the probe's stage at the frame (requestAnimationFrame in the page).
    const record = () => page.evaluate(() => {
      window.probeFrames = [];
      let last = performance.now();
      const tick = (t) => {
        const p = window.aep.status().probe;
        window.probeFrames.push([t - last, p && p.running ? p.running + ': ' + p.stage : 'idle']);
        last = t;
        if (window.probeFrames.length < 100000) requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    });
    const summary = async () => {
      const frames = await page.evaluate(() => { const f = window.probeFrames; window.probeFrames = []; return f; });
      const byStage = {};
      for (const [dt, stage] of frames) (byStage[stage] = byStage[stage] || []).push(dt);
      return Object.entries(byStage).map(([stage, v]) => {
        v.sort((a, b) => a - b);
        return `${stage}: ${v.length} frames, p50 ${v[v.length >> 1].toFixed(0)} max ${v[v.length - 1].toFixed(0)} ms`;
      }).join('; ');
    };
    await record();
    await page.evaluate(() => window.aep.setConfig({ probeLabels: 60000 }));
    let t0 = Date.now();
    st = await until(page, done, 600);
    check('probe at 60,000 labels finishes between frames', done(st), `${((Date.now() - t0) / 1000).toFixed(0)} s, ` +
          `frame intervals by stage: ${await summary()}; ` + JSON.stringify(st.probe));
    await page.screenshot({ path: path.join(out, 'probe-60000.png') });
    // Another label count: the pixels' PCA is kept, so no frame waits for its fit.
    await page.evaluate(() => window.aep.setConfig({ probeLabels: 1000 }));
    t0 = Date.now();
    st = await until(page, done, 600);
    check('probe at 1,000 labels (the pixels\' PCA kept)', done(st), `${((Date.now() - t0) / 1000).toFixed(0)} s, ` +
          `frame intervals by stage: ${await summary()}; ` + JSON.stringify(st.probe));
    await page.close();

    // A code of 196 numbers (conv): reduced to 128 like the pixels, so its PCA row is the pixels'.
    page = await open('preset=conv&panels=training,latent&probeLabels=1000&autostart=1');
    st = await until(page, (s) => done(s) && s.probe.step >= 300, 180);
    check('probe of conv\'s 196-number code: 196 -> 128, PCA row = pixels row', done(st) && st.probe.code.dims === 128 &&
          st.probe.code.inputDims === 196 && st.probe.pcaIsPixels === true, JSON.stringify(st.probe));
    await page.screenshot({ path: path.join(out, 'probe-conv.png') });
    await page.close();

    // A VAE digit's posterior: its 2-sigma ellipse and live samples.
    page = await open('preset=vae-mlp&panels=training,latent&autostart=1');
    await until(page, (s) => s.step >= 600 && s.testStep !== null, 90);
    const r = await page.evaluate(() => window.aep.setConfig({ posteriorDigit: 3 }));
    st = await until(page, (s) => s.posterior && s.posterior.samples >= 200, 30);
    check('the posterior of test digit 3: mu, sigma and samples', r.ok && st.posterior && st.posterior.digit === 3 &&
          st.posterior.sigma.every((v) => v > 0), JSON.stringify(st.posterior && { ...st.posterior }));
    await page.screenshot({ path: path.join(out, 'posterior.png') });
    await page.close();
  } finally {
    await browser.close();
    server.close();
  }
  console.log(`${failed === 0 ? 'all checks passed' : failed + ' check(s) failed'}; screenshots in ${out}`);
  process.exit(failed ? 1 : 0);
})().catch((e) => { console.error(e); process.exit(1); });
