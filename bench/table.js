// Merges the JSON files of bench/run.sh into one table: samples/s per system for models A and B, then the
// ratios ours / peer against the targets, then GEMM GFLOP/s as a share of the micro-kernel peak (beside
// PyTorch's BLAS at the same shapes), then every preset when measured.
// usage: node bench/table.js FILE.json...
'use strict';
const fs = require('fs');

const records = [];
for (const f of process.argv.slice(2)) {
  if (fs.existsSync(f)) records.push(...JSON.parse(fs.readFileSync(f, 'utf8')).records);
  else console.log(`(missing ${f})`);
}
const find = (system, workload) => records.find((r) => r.system === system && r.workload === workload) ||
  records.find((r) => r.system === system && r.workload.startsWith(workload));
const sps = (system, workload) => { const r = find(system, workload); return r && r.samples_per_s; };
const fmt = (x) => (x ? x.toFixed(0) : '-');
const systems = ['aep native', 'aep native fast', 'aep wasm', 'aep chromium', 'pytorch', 'pytorch tuned', 'tfjs-wasm',
                 'tfjs-cpu'];
const models = [['train A', 'A: MLP 784-256-32-256-784'], ['train B', 'B: conv preset']];

const line = (cells) => console.log('| ' + cells.join(' | ') + ' |');
console.log('Training samples/s (batch 64, Adam, 1 thread; median of timed runs):\n');
line(['model', ...systems]);
line(['---', ...systems.map(() => '---:')]);
for (const [w, label] of models)
  line([label, ...systems.map((s) => { const r = find(s, w); return r ? (r.samples_per_s ? fmt(r.samples_per_s) : 'cannot train') : '-'; })]);

console.log('\nRatios ours / peer (target in brackets):\n');
line(['model', 'wasm / PyTorch tuned', 'Chromium / PyTorch tuned', 'native / PyTorch tuned',
      'native fast / PyTorch tuned', 'wasm / PyTorch plain', 'wasm / best TF.js', 'native / best TF.js']);
line(['---', '---:', '---:', '---:', '---:', '---:', '---:', '---:']);
const targets = {'train A': [0.6, 1.5], 'train B': [1.5, 3]};
const ratio = (a, b, t) => (a && b ? `${(a / b).toFixed(2)}x` + (t ? ` (>= ${t}x)` : '') : '-');
for (const [w, label] of models) {
  const tf = Math.max(sps('tfjs-wasm', w) || 0, sps('tfjs-cpu', w) || 0);
  line([label, ratio(sps('aep wasm', w), sps('pytorch tuned', w), targets[w][0]),
        ratio(sps('aep chromium', w), sps('pytorch tuned', w), targets[w][0]),
        ratio(sps('aep native', w), sps('pytorch tuned', w), targets[w][1]),
        ratio(sps('aep native fast', w), sps('pytorch tuned', w), targets[w][1]), ratio(sps('aep wasm', w), sps('pytorch', w)),
        ratio(sps('aep wasm', w), tf, 10), ratio(sps('aep native', w), tf, 10)]);
}

const gemm = records.filter((r) => r.workload.startsWith('gemm') && !r.workload.includes('peak'));
if (gemm.length) {
  console.log('\nGEMM at model A\'s shapes, GFLOP/s (share of the micro-kernel peak measured in the same run; target >= 80%):\n');
  const ours = ['aep native', 'aep native fast', 'aep wasm', 'aep chromium', 'pytorch tuned'].filter(
    (s) => gemm.some((r) => r.system === s));
  line(['product', ...ours]);
  line(['---', ...ours.map(() => '---:')]);
  const peak = (s) => find(s, 'gemm micro-kernel peak');
  const names = [...new Set(gemm.map((r) => r.workload))];
  for (const n of names)
    line([n.replace(/^gemm /, ''), ...ours.map((s) => {
      const r = find(s, n), p = peak(s);
      return r ? r.gflops.toFixed(1) + (p ? ` (${(100 * r.gflops / p.gflops).toFixed(0)}%)` : '') : '-';
    })]);
  line(['micro-kernel peak', ...ours.map((s) => (peak(s) ? peak(s).gflops.toFixed(1) : '-'))]);
}
const presets = records.filter((r) => r.workload.startsWith('train preset'));
if (presets.length) {
  console.log('\nEvery preset, samples/s, and ours / PyTorch tuned (its own loss, 1 thread) measured in this run:\n');
  const names = [...new Set(presets.map((r) => r.workload.replace('train preset ', '')))];
  const cols = ['aep native', 'aep native fast', 'aep wasm', 'pytorch tuned'];
  line(['preset', ...cols, 'native / PT', 'native fast / PT', 'wasm / PT']);
  line(['---', ...cols.map(() => '---:'), '---:', '---:', '---:']);
  for (const n of names) {
    const v = cols.map((s) => sps(s, 'train preset ' + n));
    line([n, ...v.map(fmt), ratio(v[0], v[3]), ratio(v[1], v[3]), ratio(v[2], v[3])]);
  }
}
