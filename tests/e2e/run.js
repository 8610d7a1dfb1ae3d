// End-to-end tests of the playground page in Debian's Chromium (software WebGL2): load, train every preset,
// URL parameters, the embedding example over postMessage, a malformed upload, frame times, network requests.
// Usage: node tests/e2e/run.js [--presets a,b] [--steps N]; screenshots and timings go to build/test-logs/e2e/.
// Prints "PASS/FAIL name" lines and ends with "N passed, M failed"; exits non-zero on any failure.
'use strict';
const fs = require('fs');
const path = require('path');
const { serve, launch, waitReady } = require('./lib');
const { blankPanels } = require('./content');

const root = path.join(__dirname, '../..');
const out = path.join(root, 'build/test-logs/e2e');
fs.mkdirSync(out, { recursive: true });
const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
const STEPS = Number(opt('--steps', 200));

let passed = 0, failed = 0;
function check(name, ok, detail = '') {
  if (ok) passed++; else failed++;
  console.log((ok ? 'PASS  ' : 'FAIL  ') + name + (detail ? '  ' + detail : ''));
}
const status = (page) => page.evaluate(() => window.aep.status());
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Every visible panel of the screenshot `png` has content (see content.js); returns [] or the blank ones.
async function blankIn(page, png) {
  const s = await status(page);
  const scale = await page.evaluate(() => window.devicePixelRatio || 1);
  return blankPanels(png, s.panelRects || {}, s.panels, scale);
}

async function waitFor(page, pred, ms) {
  const t0 = Date.now();
  for (;;) {
    const s = await status(page);
    if (pred(s)) return s;
    if (Date.now() - t0 > ms) return s;
    await sleep(200);
  }
}

// aep.step(n) trains in the background (the page's training Worker; at once with ?worker=0): waits until the steps
// were taken, or training stopped on its own (a divergence).
async function stepAndWait(page, n, ms = 300000) {
  const s0 = await status(page);
  const r = await page.evaluate((k) => window.aep.step(k), n);
  await waitFor(page, (x) => !x.running && (x.step >= s0.step + n || x.message !== s0.message), ms);
  return r;
}

(async () => {
  const { server, url } = await serve(path.join(root, 'build/web'));
  const browser = await launch();
  const foreign = [], cspViolations = [], origins = [url];  // origins: this run's own servers
  const newPage = async (size = { width: 1400, height: 900 }) => {
    const page = await browser.newPage({ viewport: size });
    page.errors = [];
    page.on('pageerror', (e) => page.errors.push(e.message));
    page.on('console', (m) => { if (/Content.Security.Policy/i.test(m.text())) cspViolations.push(m.text()); });
    page.on('request', (r) => {
      if (!origins.some((o) => r.url().startsWith(o)) && !r.url().startsWith('blob:') && !r.url().startsWith('data:'))
        foreign.push(r.url());
    });
    return page;
  };
  try {
    // --- load: timings, memory ---------------------------------------------------------------------
    const page = await newPage();
    let downloaded = 0;
    const countBytes = (r) => { downloaded += Number(r.headers()['content-length'] || 0); };
    page.on('response', countBytes);
    const t0 = Date.now();
    await page.goto(url);
    await page.waitForFunction(() => window.aep && !window.aep.status().loading, null, { timeout: 60000 });
    const firstFrame = Date.now() - t0;
    await waitReady(page);
    const dataReady = Date.now() - t0;
    const st0 = await status(page);
    check('page loads, engine up and MNIST ready', st0.dataReady === true && st0.simd === 'wasm',
          `first frame ${firstFrame} ms, data ready ${dataReady} ms, preset ${st0.preset}`);
    const mem = await page.evaluate(() => performance.memory ? performance.memory.usedJSHeapSize : null);
    const wasmBytes = fs.statSync(path.join(root, 'build/web/aep_web.wasm')).size;
    const total = downloaded;
    page.off('response', countBytes);
    const heap = await page.evaluate(() => window.Module && Module.HEAPU8 ? Module.HEAPU8.length : null);
    fs.writeFileSync(path.join(out, 'load.json'), JSON.stringify({ firstFrameMs: firstFrame, dataReadyMs: dataReady,
      wasmBytes, totalDownloadBytes: total, wasmHeapBytes: heap, jsHeapUsedBytes: mem }, null, 1));
    console.log(`      .wasm ${(wasmBytes / 1e6).toFixed(2)} MB, download ${(total / 1e6).toFixed(1)} MB, wasm heap ${(heap / 1e6).toFixed(0)} MB`);

    // --- frame times while training ----------------------------------------------------------------
    // Chromium draws WebGL here in software (SwiftShader), whose cost grows with the canvas' pixels: measured in the
    // full 1400x900 window with all ten panels, and at an embedded lesson's size with its two panels.
    const frameTimes = async (p, label) => {
      await p.evaluate(() => window.aep.start());
      const dts = await p.evaluate(() => new Promise((resolve) => {
        const d = [];
        let last = performance.now();
        const end = last + 5000;
        function tick(t) { d.push(t - last); last = t; if (t < end) requestAnimationFrame(tick); else resolve(d); }
        requestAnimationFrame(tick);
      }));
      const st = (await status(p)).frameMs;
      await p.evaluate(() => window.aep.pause());
      dts.sort((a, b) => a - b);
      const q = (x) => dts[Math.min(dts.length - 1, Math.floor(x * dts.length))];
      const r = { label, n: dts.length, p50: q(0.5), p95: q(0.95), max: dts[dts.length - 1], status: st };
      // Information for the reader, not a pass/fail check: timings on a shared 2-core VM drawing in software.
      console.log(`INFO  frame time while training conv, ${label}: ${dts.length} frames in 5 s, p50 ${r.p50.toFixed(1)} ms, ` +
                  `p95 ${r.p95.toFixed(1)} ms, max ${r.max.toFixed(1)} ms; the app itself (training slice + UI) p50 ` +
                  `${st.appP50.toFixed(1)} / p95 ${st.appP95.toFixed(1)} ms, main thread incl. GL p50 ${st.p50.toFixed(1)} / ` +
                  `p95 ${st.p95.toFixed(1)} ms`);
      return r;
    };
    await page.evaluate(() => window.aep.setConfig({ preset: 'conv' }));
    const framesFull = await frameTimes(page, '1400x900, all panels');

    // --- the renderer draws again only what changed: after partial changes (one panel's slider, the mouse hovering
    // here and there), the canvas must be exactly what drawing everything anew gives (a stale window would differ) ---
    {
      const settle = async () => {  // until two screenshots agree
        let a = await page.screenshot(), b = a;
        for (let i = 0; i < 20; i++) {
          await sleep(300);
          b = await page.screenshot();
          if (a.equals(b)) break;
          a = b;
        }
        return b;
      };
      await settle();  // paused: the views refresh once more (most panels change: drawn whole)
      await page.mouse.move(700, 300);  // hover highlights come and go
      await sleep(200);
      await page.mouse.move(300, 200);
      await sleep(200);
      await page.mouse.move(1395, 895);
      await settle();
      await page.evaluate(() => window.aep.setConfig({ trainMs: 7 }));  // the Training panel alone changes
      const inc = await settle();
      await page.evaluate(() => Module._aep_redraw_all());
      await sleep(300);
      const full = await page.screenshot();
      await page.evaluate(() => window.aep.setConfig({ trainMs: 20 }));
      const same = full.equals(inc);
      const blankFull = await blankIn(page, full);
      check('the full redraw the incremental one is compared with shows every panel', blankFull.length === 0,
            blankFull.length ? 'blank: ' + blankFull.join(', ') : '');
      if (!same) fs.writeFileSync(path.join(out, 'redraw-incremental.png'), inc), fs.writeFileSync(path.join(out, 'redraw-full.png'), full);
      check('incremental drawing: after partial changes, the canvas equals a full redraw', same,
            same ? '' : 'see build/test-logs/e2e/redraw-incremental.png vs redraw-full.png');
    }

    // --- every preset trains ---------------------------------------------------------------------------
    const presets = opt('--presets', null) ? opt('--presets').split(',') :
      fs.readdirSync(path.join(root, 'assets/presets')).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
    // Two presets train through the Train button (slices inside frames, as a learner does); the others through
    // aep.step(n), which runs the same steps at once and saves minutes. Every preset ends with a screenshot of all
    // ten panels (build/test-logs/e2e/preset-NAME.png).
    const viaButton = ['conv', 'vae-mlp'];
    for (const name of presets) {
      const r = await page.evaluate((n) => window.aep.setConfig({ preset: n, seed: 1 }), name);
      const before = await waitFor(page, (s) => s.preset === name && s.testStep === 0, 30000);
      const t1 = Date.now();
      let s;
      if (viaButton.includes(name)) {
        await page.evaluate(() => window.aep.start());
        s = await waitFor(page, (x) => x.step >= STEPS || !x.running, 180000);
        await page.evaluate(() => window.aep.pause());
        await waitFor(page, (x) => !x.running && x.host.synced, 30000);  // the worker has taken the Pause
      } else {
        await stepAndWait(page, STEPS);
      }
      s = await status(page);
      const steps = s.step;
      s = await waitFor(page, (x) => !x.running && x.testStep === steps, 30000);
      const secs = (Date.now() - t1) / 1000;
      check(`preset ${name}: ${steps} steps in the page${viaButton.includes(name) ? ' (Train button)' : ''}, test loss falls`,
            r.ok && steps >= STEPS && s.testLoss < 0.95 * before.testLoss && s.message === '',
            `${before.testLoss.toPrecision(5)} -> ${s.testLoss === null ? 'null' : s.testLoss.toPrecision(5)} in ${secs.toFixed(1)} s` +
            (s.message ? ` message: ${s.message}` : ''));
      await sleep(500);  // let the views of the final weights draw
      const shot = await page.screenshot({ path: path.join(out, `preset-${name}.png`) });
      const blank = await blankIn(page, shot);
      check(`preset ${name}: every one of the ten panels shows something`, blank.length === 0,
            blank.length ? 'blank: ' + blank.join(', ') + ` (build/test-logs/e2e/preset-${name}.png)` : '');
    }
    check('no page errors', page.errors.length === 0, page.errors.slice(0, 3).join(' | '));
    {  // the last preset trained is a VAE (vae-mlp): the Latent panel's KL bars and active units are in status()
      const sv = await status(page);
      const ok = sv.preset !== 'vae-mlp' || (Array.isArray(sv.klPerDim) && sv.klPerDim.length === sv.codeSize &&
        sv.activeUnits >= 0 && sv.activeUnits <= sv.codeSize && sv.sparsity >= 0 && sv.sparsity <= 1);
      check('instruments: a VAE reports its KL per latent unit and its active units, every model its code sparsity', ok,
            `${sv.preset}: klPerDim ${JSON.stringify(sv.klPerDim)}, activeUnits ${sv.activeUnits}, sparsity ${sv.sparsity}`);
    }

    // --- the Save panel's downloads: the plain one loads strict in PyTorch, the one with the optimizer is refused there
    // (and named so); both captured as the browser saves them ------------------------------------------------------
    {
      const { execFileSync } = require('child_process');
      await page.evaluate(() => window.aep.setConfig({ preset: 'conv', seed: 1 }));
      await stepAndWait(page, 20);
      const grab = async (what) => {
        const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 20000 }),
                                        page.evaluate((w) => window.aep.setConfig({ download: w }), what)]);
        const file = path.join(out, dl.suggestedFilename());
        await dl.saveAs(file);
        return file;
      };
      const torch = (file, ...flags) => {
        try {
          return { ok: true, text: execFileSync('/usr/bin/python3', [path.join(__dirname, 'load_strict.py'), file, ...flags],
                                               { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim() };
        } catch (e) { return { ok: false, text: String(e.stdout || '') + String(e.stderr || e.message) }; }
      };
      const plain = await grab('weights'), withOpt = await grab('weights+optimizer');
      const r1 = torch(plain), r2 = torch(withOpt, '--refused');
      check('download: the weights file loads strict in PyTorch (load_state_dict, the Save panel\'s first button)',
            r1.ok && path.basename(plain) === 'conv-step20.safetensors', `${path.basename(plain)}: ${r1.text}`);
      check('download: "weights + optimizer" is a separate file, named so, whose optimizer.* keys strict PyTorch refuses',
            r2.ok && path.basename(withOpt) === 'conv-step20-with-optimizer.safetensors', `${path.basename(withOpt)}: ${r2.text}`);
    }

    // --- the Latent panel's UMAP of a 196-d conv code, computed in slices within frames --------------------------
    await page.evaluate(() => window.aep.setConfig({ preset: 'conv', seed: 1, latent: 'umap', panels: 'training,latent' }));
    await stepAndWait(page, 150);
    const tu = Date.now();
    const su = await waitFor(page, (x) => x.umapStep === 150, 90000);
    check('latent UMAP: the page embeds the test codes without blocking (slices per frame)',
          su.latent === 'umap' && su.umapPoints === 2000 && su.umapStep === 150 && page.errors.length === 0,
          `${su.umapPoints} codes of ${su.codeSize} dims embedded ${((Date.now() - tu) / 1000).toFixed(1)} s after the views of step 150`);
    await page.screenshot({ path: path.join(out, 'latent-umap.png') });
    await page.evaluate(() => window.aep.setConfig({ latent: 'pca', panels: 'all' }));

    // --- anomaly detection against Fashion-MNIST (fetched on demand) --------------------------------------
    // A 32-d linear AE after 300 steps scored AUC 0.86 here (mlp-128-64 0.90, conv's wide code only 0.72).
    await page.evaluate(() => window.aep.setConfig({ preset: 'linear', anomaly: 'fashion' }));
    await stepAndWait(page, 300);
    const sf = await waitFor(page, (x) => x.oodImages > 0 && x.testStep === 300 && x.anomalyAuc !== null, 60000);
    check('anomaly panel: Fashion-MNIST loads on demand and the reconstruction error separates it',
          sf.oodImages === 10000 && sf.anomalyAuc > 0.75, `AUC ${sf.anomalyAuc} (linear, 300 steps), ${sf.oodImages} Fashion-MNIST images`);
    await page.screenshot({ path: path.join(out, 'anomaly-fashion.png') });

    // --- a malformed weights file is refused, the model survives -------------------------------------
    const stBefore = await status(page);
    await page.setInputFiles('#file', { name: 'broken.safetensors', mimeType: 'application/octet-stream',
                                        buffer: Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, 123, 34, 120]) });
    const stAfter = await waitFor(page, (x) => x.message.includes('broken.safetensors'), 10000);
    check('malformed upload: clear error, model unchanged',
          stAfter.message.includes('Could not load broken.safetensors') && stAfter.step === stBefore.step && stAfter.preset === stBefore.preset,
          stAfter.message);
    await page.screenshot({ path: path.join(out, 'bad-upload.png') });

    // --- Content-Security-Policy: in force, and eval is refused ---------------------------------------
    // (page.evaluate itself runs outside the policy, so the probes go through the DOM and a string timer.)
    const seenBefore = cspViolations.length;
    const csp = await page.evaluate(() => new Promise((resolve) => {
      const m = document.querySelector('meta[http-equiv="Content-Security-Policy"]');
      const refused = [];
      document.addEventListener('securitypolicyviolation', (e) => refused.push(e.violatedDirective));
      const s = document.createElement('script');
      s.textContent = 'window.aepInlineRan = true';
      document.body.appendChild(s);
      setTimeout('window.aepStringTimerRan = true', 0);  // eslint-disable-line no-implied-eval
      setTimeout(() => resolve({ policy: m ? m.content : '', inline: !!window.aepInlineRan,
                                 timer: !!window.aepStringTimerRan, refused }), 300);
    }));
    cspViolations.length = seenBefore;  // these two were meant to be refused
    check('CSP: a strict policy is in force; inline script and string eval are refused',
          csp.policy.includes("default-src 'none'") && csp.policy.includes("script-src 'self' 'wasm-unsafe-eval'") &&
          !csp.policy.includes('unsafe-inline') && !csp.inline && !csp.timer && csp.refused.length >= 2,
          `inline ran: ${csp.inline}, string timer ran: ${csp.timer}, refused: ${csp.refused.join(', ')}; policy: ${csp.policy}`);

    // --- divergence: lr = 10 stops training, keeps the last good weights, says what to try ----------------
    await page.evaluate(() => window.aep.setConfig({ preset: 'vae-mlp', seed: 1, lr: 10 }));
    await stepAndWait(page, 300);
    const sd = await waitFor(page, (x) => !x.running && x.message.includes('Training stopped at step'), 60000);
    await page.screenshot({ path: path.join(out, 'divergence.png') });
    await page.evaluate(() => window.aep.setConfig({ lr: 0.001, reset: 1 }));
    await stepAndWait(page, 5);
    const sd2 = await waitFor(page, (x) => x.step === 5, 30000);
    check('divergence (lr = 10): training stops with advice, the last good (finite) weights kept; lr 0.001 + Reset trains',
          sd.step < 300 && sd.message.includes('smaller learning rate') && sd.message.includes('Reset starts again') && Number.isFinite(sd.trainLoss) &&
          sd2.step === 5 && Number.isFinite(sd2.trainLoss) && sd2.trainLoss < 1000,
          `stopped at step ${sd.step} (last loss ${sd.trainLoss.toPrecision(4)}): ${sd.message}; after Reset ${sd2.step} steps, loss ${sd2.trainLoss}`);

    // --- memory: reported, and a batch beyond the budget is refused before anything is allocated -----------
    await page.evaluate(() => window.aep.setConfig({ preset: 'fully-conv', seed: 1 }));
    await stepAndWait(page, 2);
    const sm = await waitFor(page, (x) => x.preset === 'fully-conv' && x.step === 2, 60000);
    const big = await page.evaluate(() => window.aep.setConfig({ batch: 4096 }));
    await stepAndWait(page, 1);
    const sm2 = await waitFor(page, (x) => x.step === 3, 60000);
    check('memory: the page reports it; a batch that would exceed the budget is refused, training goes on',
          sm.memoryBytes > 0 && sm.trainingBytes < sm.memoryLimitBytes && big.ok === false &&
          String(big.errors).includes('would need about') && sm2.batch === 64 && sm2.step === 3 && page.errors.length === 0,
          `heap ${(sm.memoryBytes / 2 ** 20).toFixed(0)} MB, training ~${(sm.trainingBytes / 2 ** 20).toFixed(0)} MB of ` +
          `${(sm.memoryLimitBytes / 2 ** 20).toFixed(0)} MB; batch 4096: ${big.errors}`);
    await page.close();

    // --- autosave: survives a reload; a corrupt one is reported once and set aside ------------------------
    const p4 = await newPage({ width: 1200, height: 800 });
    const q4 = url + '?preset=mlp-128-64&seed=7';
    await p4.goto(q4);
    await waitReady(p4);
    await stepAndWait(p4, 30);
    const saved = await p4.evaluate(() => window.aep.saveSession());
    const link = await p4.evaluate(() => window.aep.link());
    await p4.reload();
    await waitReady(p4);
    let s4 = await waitFor(p4, (x) => x.message.includes('Restored'), 20000);
    check('autosave: the trained model comes back after a reload',
          saved === true && s4.step === 30 && s4.preset === 'mlp-128-64' && s4.seed === 7 && s4.message.includes('Restored'),
          `step ${s4.step}, ${s4.message}`);
    check('Copy link: the settings as URL parameters', link.includes('preset=mlp-128-64') && link.includes('seed=7'), link);
    await p4.evaluate((key) => new Promise((resolve, reject) => {
      const open = indexedDB.open('aep', 1);
      open.onsuccess = () => {
        const tx = open.result.transaction('sessions', 'readwrite');
        tx.objectStore('sessions').put({ version: 1, saved: Date.now(), bytes: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]) }, key);
        tx.oncomplete = () => resolve();
        tx.onerror = () => reject(tx.error);
      };
    }), new URL(q4).pathname + new URL(q4).search);
    await p4.reload();
    await waitReady(p4);
    s4 = await waitFor(p4, (x) => x.message.includes('could not be restored'), 20000);
    await stepAndWait(p4, 2);
    const s4b = await status(p4);
    check('autosave: a corrupt session is reported and set aside, the page keeps working',
          s4.message.includes('could not be restored') && s4b.step === 2 && p4.errors.length === 0, s4.message);
    await p4.screenshot({ path: path.join(out, 'autosave-corrupt.png') });
    await p4.reload();
    await waitReady(p4);
    await sleep(1500);
    const s4c = await status(p4);
    check('autosave: the set-aside session is not retried on the next load', !s4c.message.includes('could not be restored'), s4c.message);
    await p4.close();

    // --- URL parameters -----------------------------------------------------------------------------
    const p2 = await newPage({ width: 1000, height: 700 });
    await p2.goto(url + '?preset=vae-mlp&lr=0.002&batch=32&panels=training,latent&compact=1');
    await waitReady(p2);
    let s2 = await status(p2);
    check('URL parameters set preset, lr, batch, panels, compact',
          s2.preset === 'vae-mlp' && Math.abs(s2.lr - 0.002) < 1e-6 && s2.batch === 32 &&
          JSON.stringify(s2.panels) === '["training","latent"]' && s2.compact === true && s2.message === '',
          JSON.stringify({ preset: s2.preset, lr: s2.lr, batch: s2.batch, panels: s2.panels, message: s2.message }));
    await p2.screenshot({ path: path.join(out, 'url-params.png') });
    await p2.goto(url + '?preset=nope&lr=abc&batch=48&panels=training,bogus');
    await waitReady(p2);
    s2 = await status(p2);
    check('bad URL parameters: message, defaults kept, good ones applied',
          s2.preset === 'conv' && Math.abs(s2.lr - 0.001) < 1e-6 && s2.batch === 48 && s2.panels.length === 10 &&
          s2.message.includes('unknown preset "nope"') && s2.message.includes('lr must be a number') && s2.message.includes("unknown panel 'bogus'"),
          s2.message);
    await p2.screenshot({ path: path.join(out, 'url-bad.png') });
    await p2.close();

    // --- the embedding example: two iframes, postMessage --------------------------------------------
    const p3 = await newPage({ width: 1200, height: 1400 });
    await p3.goto(url + 'embed-example.html');
    const vae = p3.frame({ url: /preset=vae-mlp/ }), conv = p3.frame({ url: /preset=conv/ });
    await waitReady(vae);
    await waitReady(conv);
    const ask = (m, a) => p3.evaluate(([m, a]) => window.lesson.ask(m, a), [m, a]);
    const sv = await ask('status');
    const sc = await conv.evaluate(() => window.aep.status());
    check('embed example: two playgrounds configured differently',
          sv.preset === 'vae-mlp' && sc.preset === 'conv' && JSON.stringify(sc.panels) === '["training","recon"]' && sc.compact === true,
          `vae: ${sv.preset} ${JSON.stringify(sv.panels)}; conv: ${sc.preset} ${JSON.stringify(sc.panels)}`);
    const r1 = await ask('setConfig', { lr: 0.0005 });
    const r2 = await ask('evalCode', 'alert(1)');
    const r3 = await ask('setConfig', { lr: 'lots' });
    const sv2 = await waitFor(vae, (x) => x.step > 0, 60000);
    check('embed example: the lesson drives the VAE over postMessage, bad messages refused',
          r1.ok === true && r2.ok === false && r3.ok === false && Math.abs(sv2.lr - 0.0005) < 1e-7 && sv2.step > 0,
          `setConfig ${JSON.stringify(r1)}, unknown method ${JSON.stringify(r2)}, bad lr ${JSON.stringify(r3)}, step ${sv2.step}`);
    await p3.screenshot({ path: path.join(out, 'embed-example.png') });
    await p3.close();

    // --- frame times at an embedded lesson's size, with no other page open (they would share the GPU process) ---
    const pe = await newPage({ width: 1100, height: 560 });
    await pe.goto(url + '?preset=conv&panels=training,recon&compact=1');
    await waitReady(pe);
    const framesEmbed = await frameTimes(pe, '1100x560, training + reconstructions (an embedded lesson)');
    await pe.close();
    fs.writeFileSync(path.join(out, 'frames.json'), JSON.stringify([framesFull, framesEmbed], null, 1));

    // --- bench.html: the engine's speed benchmark in a Worker of a page (numbers are for bench/run.sh) -----------
    const p5 = await newPage();
    await p5.goto(url + 'bench.html?only=A&seconds=0.3&runs=1');
    await p5.waitForFunction(() => window.benchResult, null, { timeout: 120000 });
    const br = await p5.evaluate(() => window.benchResult);
    const ra = (br.records || []).find((r) => r.workload.startsWith('train A'));
    check('bench.html: aep bench runs in a Worker of the page and reports training speed',
          !br.error && ra && ra.samples_per_s > 0 && p5.errors.length === 0,
          br.error ? br.error : `model A ${ra ? ra.samples_per_s.toFixed(0) : '?'} samples/s (a short smoke run)`);
    await p5.close();

    // --- the threaded engine: served with COOP/COEP (as scripts/serve.sh does) the page is cross-origin isolated ---
    {
      const iso = await serve(path.join(root, 'build/web'), 0, true);
      origins.push(iso.url);
      try {
        const p6 = await newPage();
        const engines = [];
        p6.on('request', (r) => { if (/aep_web(_mt)?\.js$/.test(r.url())) engines.push(r.url().split('/').pop()); });
        await p6.goto(iso.url + '?preset=conv&autostart=1&threads=2');
        await waitReady(p6);
        const s6 = await waitFor(p6, (s) => s.step >= 150, 60000);
        const isolated = await p6.evaluate(() => self.crossOriginIsolated);
        check('threaded engine: an isolated page loads aep_web_mt.js and trains conv on 2 threads (?threads=2)',
              isolated && engines.includes('aep_web_mt.js') && s6.threads === 2 && s6.step >= 150 &&
                Number.isFinite(s6.testLoss) && p6.errors.length === 0,
              `isolated ${isolated}, engines ${engines.join(',')}, threads ${s6.threads}, step ${s6.step}, ` +
                `test loss ${s6.testLoss}, ${Math.round(s6.samplesPerSec)} samples/s, errors ${p6.errors.slice(0, 2).join(' | ')}`);
        await p6.close();
      } finally {
        iso.server.close();
      }
    }

    check('no requests outside the page\'s own origin', foreign.length === 0, foreign.slice(0, 3).join(' '));
    check('no Content-Security-Policy violations on any page', cspViolations.length === 0, cspViolations.slice(0, 3).join(' | '));
  } catch (e) {
    check('end-to-end run', false, e.stack || String(e));
  } finally {
    await browser.close();
    server.close();
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();
