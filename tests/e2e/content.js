// Does a screenshot show something in each panel? A panel whose body is one flat colour (a blank canvas, a panel that
// drew nothing) fails. Used by tests/e2e/run.js on the page's screenshots and, from the command line, on the desktop
// app's: node tests/e2e/content.js SHOT.png STATUS.json (the app's status() with panelRects).
'use strict';
const fs = require('fs');
const { PNG } = require('pngjs');

// Body of a panel: below its title bar, inside its border (ImGui's title bar is ~19 px at the default font).
const TITLE = 22, BORDER = 2;
// A body counts as drawn when at least MIN_SHARE of its pixels differ from its most common colour (text, plots,
// images) and it holds at least MIN_COLOURS colours. A blank panel has 0; the emptiest real panel (a few lines
// of text) has several percent.
const MIN_SHARE = 0.005, MIN_COLOURS = 3;

// png: PNG bytes (Buffer); rects: {key: [x, y, w, h]} in CSS/display pixels; scale: device pixels per CSS pixel.
// Returns [{key, share, colours, ok}] for every rect.
function panelContent(png, rects, scale = 1) {
  const img = PNG.sync.read(png);
  const out = [];
  for (const [key, [x, y, w, h]] of Object.entries(rects)) {
    const x0 = Math.max(0, Math.round((x + BORDER) * scale)), x1 = Math.min(img.width, Math.round((x + w - BORDER) * scale));
    const y0 = Math.max(0, Math.round((y + TITLE) * scale)), y1 = Math.min(img.height, Math.round((y + h - BORDER) * scale));
    const counts = new Map();
    let n = 0;
    for (let yy = y0; yy < y1; yy++) {
      for (let xx = x0; xx < x1; xx++) {
        const i = (yy * img.width + xx) * 4;
        const c = (img.data[i] << 16) | (img.data[i + 1] << 8) | img.data[i + 2];
        counts.set(c, (counts.get(c) || 0) + 1);
        n++;
      }
    }
    const mode = n ? Math.max(...counts.values()) : 0;
    const share = n ? (n - mode) / n : 0;
    out.push({ key, share, colours: counts.size, ok: n > 0 && share >= MIN_SHARE && counts.size >= MIN_COLOURS });
  }
  return out;
}

// The panels of `rects` that look blank, as "key (share%)" strings; every panel in `expected` must have a rect.
function blankPanels(png, rects, expected = Object.keys(rects), scale = 1) {
  const res = panelContent(png, rects, scale);
  const blank = res.filter((r) => !r.ok).map((r) => `${r.key} (${(100 * r.share).toFixed(2)}% drawn, ${r.colours} colours)`);
  for (const key of expected) if (!rects[key]) blank.push(`${key} (not on screen)`);
  return blank;
}

module.exports = { panelContent, blankPanels };

if (require.main === module) {
  const [shot, statusFile] = process.argv.slice(2);
  if (!shot || !statusFile) { console.error('usage: content.js SHOT.png STATUS.json'); process.exit(2); }
  const text = fs.readFileSync(statusFile, 'utf8').trim().split('\n').filter((l) => l.startsWith('{')).pop();
  const st = JSON.parse(text);
  const blank = blankPanels(fs.readFileSync(shot), st.panelRects || {}, st.panels || []);
  const n = Object.keys(st.panelRects || {}).length;
  if (blank.length || n === 0) { console.log(`blank panels in ${shot}: ${blank.join(', ') || 'no panel rects'}`); process.exit(1); }
  console.log(`${n} panels drawn in ${shot}`);
}
