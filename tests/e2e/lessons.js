// Lessons in Debian's Chromium: every built-in lesson opens from its URL (?lesson=ID) with its goal false and its
// panel drawn (a screenshot each), some are followed to the end through the JS API (the time each step's goal takes
// to be reached), and the course page web/lesson-example.html receives the goal events of a built-in lesson and of
// its own lesson handed over by postMessage.
//   node tests/e2e/lessons.js OUT_DIR [--follow id,id,... | --follow all]
// Prints PASS/FAIL lines and INFO lines with the times; exits non-zero if a check failed.
'use strict';
const fs = require('fs');
const path = require('path');
const { serve, launch, waitReady } = require('./lib');

const args = process.argv.slice(2);
const out = args[0] || path.join(__dirname, '../../build/test-logs/lessons');
const followArg = args.indexOf('--follow') >= 0 ? args[args.indexOf('--follow') + 1] : 'linear-autoencoder,denoising';
fs.mkdirSync(out, { recursive: true });
let failures = 0;
function check(name, ok, detail = '') {
  if (!ok) failures++;
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${name}${detail ? ': ' + detail : ''}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn(status) in the page (or frame) until it returns true; resolves to the last status, or throws.
async function waitFor(target, fn, ms, what) {
  const t0 = Date.now();
  for (;;) {
    const st = await target.evaluate(() => window.aep.status());
    if (fn(st)) return st;
    if (Date.now() - t0 > ms) throw new Error('timed out waiting for ' + what + ': ' + JSON.stringify(st.lesson).slice(0, 400));
    await sleep(100);
  }
}
const measured = (st) => st.lesson && !st.lesson.measuring && st.lesson.actionLeft === 0 && st.lesson.measuredStep === st.step;

(async () => {
  const { server, url } = await serve(path.join(__dirname, '../../build/web'));
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url);
    await waitReady(page);
    const ids = (await page.evaluate(() => window.aep.status())).lessons;
    // The picker opens once the autosave has been looked for (after the data): wait for it.
    const picker = await waitFor(page, (s) => s.lessonPicker === true, 15000, 'the lesson picker').then(() => true, () => false);
    check('a first visit opens on the lesson picker', picker === true, `${ids.length} lessons`);
    await page.screenshot({ path: path.join(out, 'picker.png') });

    // --- every lesson from its URL ------------------------------------------------------------------------------------
    const opened = [];
    for (const id of ids) {
      await page.goto(url + '?lesson=' + id);
      await waitReady(page);
      const st = await waitFor(page, measured, 60000, id + "'s first measurement");
      const l = st.lesson;
      const ok = l.id === id && l.step === 1 && l.holds === false && l.changed === '' && st.panelRects.lesson &&
                 st.panelRects.lesson[2] > 200 && l.events.length === 1 && l.events[0].event === 'start';
      if (!ok) check(`lesson ${id} opens from its URL`, false, JSON.stringify(l).slice(0, 300));
      else opened.push(id);
      await page.screenshot({ path: path.join(out, id + '.png') });
    }
    check('every lesson opens from its URL with its goal false and its panel shown', opened.length === ids.length,
          `${opened.length} of ${ids.length}; screenshots in ${out}`);

    // --- ?lesson=ID&step=K opens a later step, the earlier ones skipped -------------------------------------------------
    await page.goto(url + '?lesson=denoising&step=2');
    await waitReady(page);
    {
      const st = await waitFor(page, (s) => s.lesson, 20000, 'the lesson');
      check('?lesson=denoising&step=2 opens step 2, step 1 counts as skipped',
            st.lesson.step === 2 && st.lesson.steps[0].progress === 'skipped', `step ${st.lesson.step}`);
    }

    // --- followed to the end through the JS API: the time each takes in this browser ----------------------------------
    const follow = followArg === 'all' ? ids : followArg.split(',').filter(Boolean);
    const times = [];
    for (const id of follow) {
      await page.goto(url + '?lesson=' + id);
      await waitReady(page);
      await waitFor(page, measured, 60000, id + "'s first measurement");
      const t0 = Date.now();
      const n = (await page.evaluate(() => window.aep.lesson())).steps.length;
      let ok = true, detail = '';
      for (let k = 0; k < n && ok; k++) {
        const r = await page.evaluate(() => window.aep.lessonAction());
        const ta = Date.now();
        try {  // until the goal is reached, or the action is over and measured without it
          const st = await waitFor(page, (s) => (s.lesson.steps[k].progress === 'reached' && s.lesson.actionLeft === 0) ||
                                                (measured(s) && !s.running && Date.now() - ta > 3000),
                                   300000, `${id} step ${k + 1}`);
          const sk = st.lesson.steps[k];
          ok = sk.progress === 'reached';
          detail += ok ? `step ${k + 1}: ${sk.goal} = ${sk.value.toPrecision(4)}; `
                       : `step ${k + 1}: ${sk.goal} not reached (value ${st.lesson.value}, action ${JSON.stringify(r)})`;
        } catch (e) {
          ok = false;
          detail += `step ${k + 1}: ${e.message}`;
        }
        if (ok && k + 1 < n) await page.evaluate((k) => window.aep.lessonStep(k + 2), k);
      }
      const secs = (Date.now() - t0) / 1000;
      const l = await page.evaluate(() => window.aep.lesson());
      check(`lesson ${id} followed to the end in the page: every goal reached`, ok && l.done === true, detail);
      times.push({ id, seconds: secs });
      console.log(`INFO  lesson ${id}: every goal reached ${secs.toFixed(1)} s after the first action (Chromium, this machine)`);
      await page.screenshot({ path: path.join(out, id + '-done.png') });
      if (id === follow[0]) {  // progress survives a reload (the autosave)
        const before = await waitFor(page, (s) => measured(s) && !s.running, 120000, 'the last action to end');
        await page.evaluate(() => window.aep.saveSession());
        await page.reload();
        await waitReady(page);
        const r = await waitFor(page, (s) => s.lesson && /^Restored/.test(s.message), 20000, 'the autosave after a reload');
        check(`lesson progress survives a reload (${id})`, r.lesson.done === true && r.lesson.step === n && r.step === before.step,
              `step ${r.lesson.step} of ${n}, ${r.lesson.steps.map((s) => s.progress).join(', ')}, optimizer step ${r.step}`);
      }
    }
    fs.writeFileSync(path.join(out, 'times.json'), JSON.stringify(times, null, 1));

    // --- the course page: a built-in lesson and its own, progress by events ---------------------------------------------
    const p2 = await browser.newPage({ viewport: { width: 1400, height: 1500 } });
    p2.on('pageerror', (e) => errors.push(e.message));
    await p2.goto(url + 'lesson-example.html');
    const builtin = p2.frame({ url: /lesson=denoising/ }), own = p2.frame({ url: /index\.html\?compact=1$/ });
    await waitReady(builtin);
    await waitReady(own);
    const ownSt = await waitFor(own, (s) => s.lesson && s.lesson.id === 'two-numbers', 30000, 'the course page\'s own lesson');
    check("the course page hands the playground its own lesson (loadLesson over postMessage)",
          ownSt.lesson.custom === true && ownSt.lesson.twin && ownSt.lesson.twin.label === '2 numbers', ownSt.lesson.title);
    for (const [name, frame] of [['own', own], ['builtin', builtin]]) {
      await waitFor(frame, measured, 60000, name + "'s first measurement");
      await frame.evaluate(() => window.aep.lessonAction());
      await p2.waitForFunction((name) => window.course.boards[name].events.some((e) => e.event === 'goal' && e.step === 1),
                               name, { timeout: 300000 });
    }
    const evs = await p2.evaluate(() => ({ own: window.course.boards.own.events, builtin: window.course.boards.builtin.events }));
    const g = evs.builtin.find((e) => e.event === 'goal');
    check('the course page receives goal events from both lessons',
          g && g.type === 'aep-event' && g.lesson === 'denoising' && g.step === 1 && typeof g.value === 'number' &&
          g.done === false && evs.own.some((e) => e.event === 'goal' && e.lesson === 'two-numbers'),
          JSON.stringify(g));
    await sleep(500);
    const shown = await p2.evaluate(() => document.querySelector('#builtin-progress li.reached') !== null);
    check('the course page shows the progress beside the lesson', shown);
    await p2.screenshot({ path: path.join(out, 'lesson-example.png') });
    check('no page errors', errors.length === 0, errors.join('; '));
  } catch (e) {
    check('lessons e2e ran to the end', false, e.stack);
  } finally {
    await browser.close();
    server.close();
  }
  process.exit(failures ? 1 : 0);
})();
