// TensorFlow.js peer of `aep bench` in node: models A and B on the same MNIST batches of 64 (MSE, Adam),
// on the wasm backend (SIMD, 1 thread) and the plain-JS cpu backend; median samples/s of timed runs after a
// warm-up. Where a backend cannot train a model, prints why instead of a number.
// usage: node bench/tfjs_bench.js [--seconds S] [--runs N] [--warmup S] [--backends wasm,cpu] [--json FILE]
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-cpu');
require('@tensorflow/tfjs-backend-wasm');

const root = path.resolve(__dirname, '..');

function option(name, def) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}
const seconds = Number(option('--seconds', '1'));
const runs = Number(option('--runs', '5'));
const warmup = Number(option('--warmup', '0.5'));
const backends = option('--backends', 'wasm,cpu').split(',');
const jsonOut = option('--json', '');

function loadImages() {
  const file = path.join(root, 'assets', 'data', 'mnist', 'train-images-idx3-ubyte');
  const raw = fs.readFileSync(file);
  if (raw.readUInt32BE(0) !== 0x803) throw new Error(`${file}: not an IDX image file (run scripts/bootstrap.sh)`);
  const n = raw.readUInt32BE(4);
  const px = new Float32Array(n * 784);
  for (let i = 0; i < px.length; ++i) px[i] = raw[16 + i] / 255;
  return {n, px};
}

// The same networks as bench/model-a.json and assets/presets/conv.json (NHWC, TF.js's layout).
function modelA() {
  const m = tf.sequential();
  m.add(tf.layers.dense({inputShape: [784], units: 256, activation: 'relu'}));
  m.add(tf.layers.dense({units: 32, activation: 'relu'}));
  m.add(tf.layers.dense({units: 256, activation: 'relu'}));
  m.add(tf.layers.dense({units: 784, activation: 'sigmoid'}));
  return {model: m, shape: [64, 784]};
}
function modelB() {
  const m = tf.sequential();
  m.add(tf.layers.conv2d({inputShape: [28, 28, 1], filters: 16, kernelSize: 3, padding: 'same', activation: 'relu'}));
  m.add(tf.layers.maxPooling2d({poolSize: 2}));
  m.add(tf.layers.conv2d({filters: 4, kernelSize: 3, padding: 'same', activation: 'relu'}));
  m.add(tf.layers.maxPooling2d({poolSize: 2}));
  m.add(tf.layers.conv2dTranspose({filters: 16, kernelSize: 2, strides: 2, activation: 'relu'}));
  m.add(tf.layers.conv2dTranspose({filters: 1, kernelSize: 2, strides: 2, activation: 'sigmoid'}));
  return {model: m, shape: [64, 28, 28, 1]};
}
const MODELS = [['train A (mlp 784-256-32-256-784)', modelA], ['train B (preset conv)', modelB]];

function measure(step) {
  const now = () => Number(process.hrtime.bigint()) / 1e9;
  for (const t0 = now(); now() - t0 < warmup;) step();
  const rates = [];
  for (let r = 0; r < runs; ++r) {
    let calls = 0, el = 0;
    const t0 = now();
    do {
      step();
      ++calls;
      el = now() - t0;
    } while (el < seconds);
    rates.push(calls * 64 / el);
  }
  rates.sort((a, b) => a - b);
  const med = rates.length % 2 ? rates[(rates.length - 1) / 2] : (rates[rates.length / 2 - 1] + rates[rates.length / 2]) / 2;
  return {median: med, spread: (rates[rates.length - 1] - rates[0]) / med};
}

async function main() {
  const data = loadImages();
  const records = [];
  const pad = (s, n) => String(s).padEnd(n);
  console.log(`${pad('system', 16)} ${pad('arch', 22)} ${pad('workload', 34)} ${'samples/s'.padStart(12)} ${'spread'.padStart(7)}`);
  for (const backend of backends) {
    if (backend === 'wasm') {
      tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);  // 1 thread, like the other peers
      tf.env().set('WASM_HAS_SIMD_SUPPORT', true);
    }
    const system = `tfjs-${backend}`;
    const ok = await tf.setBackend(backend);  // reports a failed load as false instead of throwing
    await tf.ready();
    const arch = backend === 'wasm' ? 'tfjs 4.22, SIMD, 1 thr' : 'tfjs 4.22, plain JS';
    for (const [workload, build] of MODELS) {
      const rec = {system, arch, workload};
      if (!ok || tf.getBackend() !== backend) {
        rec.error = `backend '${backend}' failed to load`;
      } else {
        const {model, shape} = build();
        const opt = tf.train.adam(0.001);
        let perm = tf.util.createShuffledIndices(data.n), pos = 0;
        const batch = new Float32Array(64 * 784);
        const step = () => {
          if (pos + 64 > data.n) perm = tf.util.createShuffledIndices(data.n), pos = 0;
          for (let b = 0; b < 64; ++b) batch.set(data.px.subarray(perm[pos + b] * 784, perm[pos + b] * 784 + 784), b * 784);
          pos += 64;
          tf.tidy(() => {
            const x = tf.tensor(batch, shape);
            opt.minimize(() => tf.losses.meanSquaredError(x, model.apply(x)));
          });
        };
        try {
          const t = measure(step);
          rec.samples_per_s = t.median;
          rec.spread = t.spread;
        } catch (e) {
          rec.error = String(e.message || e).split('\n')[0];
        }
        opt.dispose();
        model.dispose();
      }
      records.push(rec);
      const val = rec.samples_per_s ? rec.samples_per_s.toFixed(0).padStart(12) + `${(100 * rec.spread).toFixed(0).padStart(6)}%`
                                    : `  cannot train: ${rec.error}`;
      console.log(`${pad(system, 16)} ${pad(arch, 22)} ${pad(workload, 34)} ${val}`);
    }
  }
  if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({records}, null, 1) + '\n');
}

main().catch((e) => {
  console.error(`tfjs_bench: ${e.stack || e}`);
  process.exit(1);
});
