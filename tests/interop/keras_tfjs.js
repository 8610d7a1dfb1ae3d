// The Keras export's mapping, run for real: builds the model that `aep export --keras-plan` describes with
// TensorFlow.js layers (the Keras API and weight layouts in JavaScript), loads our .safetensors weights with the
// plan's layout changes and prints the loss on clean test digits in the format of `aep eval --clean`.
// The exported Python Keras script is written from the same plan (src/core/export.cpp).
// usage: node keras_tfjs.js PLAN.json WEIGHTS.safetensors MNIST_DIR [TEST_SAMPLES] [--backend wasm (default)|cpu]
//        [--dump PREFIX]: also writes every loaded Keras weight to PREFIX.bin (float32) and PREFIX.json (index), for
//        check_keras_weights.py to compare with what the exported Python script loads.
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const tfl = require('@tensorflow/tfjs-layers');

function die(msg) {
  console.error('keras_tfjs: ' + msg);
  process.exit(1);
}

// name -> {shape, data: Float32Array}; the format: u64 little-endian header length, JSON header, raw bytes.
function readSafetensors(file) {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const out = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__' || info.dtype !== 'F32') continue;
    const [a, b] = info.data_offsets;
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    const copy = new Uint8Array(bytes);  // aligned for the Float32Array view
    out[name] = {shape: info.shape, data: new Float32Array(copy.buffer)};
  }
  return out;
}

// MNIST test images, raw or .gz: {count, pixels: Uint8Array [count * 784]}.
function readTestImages(dir) {
  const name = 't10k-images-idx3-ubyte';
  let bytes;
  if (fs.existsSync(path.join(dir, name))) bytes = fs.readFileSync(path.join(dir, name));
  else if (fs.existsSync(path.join(dir, name + '.gz'))) bytes = zlib.gunzipSync(fs.readFileSync(path.join(dir, name + '.gz')));
  else die(`${dir}: no ${name}[.gz]`);
  if (bytes.readUInt32BE(0) !== 0x803) die(`${name}: not an IDX image file`);
  const count = bytes.readUInt32BE(4);
  if (bytes.readUInt32BE(8) !== 28 || bytes.readUInt32BE(12) !== 28) die(`${name}: images are not 28x28`);
  return {count, pixels: bytes.subarray(16, 16 + count * 784)};
}

// One layout change of the plan (see keras_plan in src/core/export.hpp), as tensor operations.
function applyOp(t, op) {
  if (op.op === 'transpose') return tf.transpose(t, op.perm);
  if (op.op !== 'chw_to_hwc') die('unknown layout op ' + JSON.stringify(op));
  const [c, h, w] = op.chw, axis = op.axis, r = t.rank;
  const front = [axis, ...[...Array(r).keys()].filter(i => i !== axis)];  // the axis first
  const back = [...Array(r).keys()].map(i => (i === axis ? 0 : i < axis ? i + 1 : i));  // and back
  let a = tf.transpose(t, front);
  const rest = a.shape.slice(1);
  a = tf.reshape(a, [c, h, w, ...rest]);
  a = tf.transpose(a, [1, 2, 0, ...rest.map((_, i) => i + 3)]);
  a = tf.reshape(a, [c * h * w, ...rest]);
  return tf.transpose(a, back);
}

// A decoder Dense whose kernel is an encoder Dense's kernel transposed; owns only its bias.
class TiedDense extends tfl.layers.Layer {
  constructor(source, config) {
    super({name: config.name});
    this.source = source;
    this.units = config.units;
    this.useBias = config.useBias;
  }
  build() {
    if (this.useBias) this.bias = this.addWeight('bias', [this.units], 'float32', tfl.initializers.zeros());
    this.built = true;
  }
  computeOutputShape(s) { return [s[0], this.units]; }
  call(inputs) {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const y = tf.matMul(x, this.source.kernel.read(), false, true);
      return this.useBias ? tf.add(y, this.bias.read()) : y;
    });
  }
  static get className() { return 'TiedDense'; }
}

const camel = s => s.replace(/_([a-z])/g, (_, ch) => ch.toUpperCase());
const factories = {
  Conv2D: 'conv2d', Conv2DTranspose: 'conv2dTranspose', Dense: 'dense', ZeroPadding2D: 'zeroPadding2d',
  Cropping2D: 'cropping2D', MaxPooling2D: 'maxPooling2d', UpSampling2D: 'upSampling2d',
  BatchNormalization: 'batchNormalization', Activation: 'activation', ReLU: 'reLU', LeakyReLU: 'leakyReLU',
  Dropout: 'dropout', Flatten: 'flatten', Reshape: 'reshape', Permute: 'permute',
};

function buildLayers(plan) {
  const byName = {};
  const parts = {};
  for (const part of plan.parts) {
    parts[part.name] = part.layers.map(spec => {
      const config = {name: spec.name};
      for (const [k, v] of Object.entries(spec.config)) config[camel(k)] = v;
      let layer;
      if (spec.class === 'TiedDense') {
        if (!byName[spec.tied_to]) die(`${spec.name}: tied to unknown layer ${spec.tied_to}`);
        layer = new TiedDense(byName[spec.tied_to], config);
      } else {
        if (!factories[spec.class]) die(`${spec.name}: no TensorFlow.js layer for ${spec.class}`);
        layer = tfl.layers[factories[spec.class]](config);
      }
      byName[spec.name] = layer;
      return layer;
    });
  }
  return {parts, byName};
}

function runPart(layers, x) {
  for (const l of layers) x = l.apply(x, {training: false});
  return x;
}

// {out, h, mu, logvar} of an eval-mode pass (a VAE decodes z = mu).
function forward(model, plan, x) {
  const h = runPart(model.parts.encoder, x);
  let z = h, mu = null, logvar = null;
  if (plan.vae) {
    mu = runPart(model.parts.mu, h);
    logvar = runPart(model.parts.logvar, h);
    z = mu;
  }
  return {out: runPart(model.parts.decoder, z), h, mu, logvar};
}

function lossTerms(plan, model, r, x) {
  const L = plan.loss, B = x.shape[0];
  // Summed here in double: the wasm backend's tf.sum adds in float32, which alone was 1e-4 to 1e-3 off over 392,000
  // pixels (the engine sums losses in double).
  const sum = t => {
    let s = 0;
    for (const v of t.dataSync()) s += v;
    return s;
  };
  let perPixel;
  if (L.reconstruction === 'mse') perPixel = () => tf.square(tf.sub(r.out, x));
  else if (L.reconstruction === 'l1') perPixel = () => tf.abs(tf.sub(r.out, x));
  else if (L.reconstruction === 'bce_with_logits')  // max(z, 0) - z t + log(1 + exp(-|z|))
    perPixel = () => tf.add(tf.sub(tf.relu(r.out), tf.mul(r.out, x)), tf.log1p(tf.exp(tf.neg(tf.abs(r.out)))));
  else if (L.reconstruction === 'bce')
    perPixel = () => tf.neg(tf.add(tf.mul(x, tf.maximum(tf.log(r.out), -100)),
                                   tf.mul(tf.sub(1, x), tf.maximum(tf.log(tf.sub(1, r.out)), -100))));
  else die('unknown reconstruction ' + L.reconstruction);
  const rec = sum(perPixel()) / (L.reduction === 'mean' ? x.size : B);
  let kl = 0, penalty = 0;
  if (plan.vae)
    kl = L.beta * sum(tf.mul(-0.5, tf.sub(tf.sub(tf.add(1, r.logvar), tf.square(r.mu)), tf.exp(r.logvar)))) / B;
  if (L.l1 > 0) penalty += L.l1 * sum(tf.abs(r.h)) / B;
  if (L.contractive > 0) {
    const K = model.byName[L.contractive_layer].kernel.read();  // [in, out]
    const a = tf.mul(r.h, tf.sub(1, r.h));
    penalty += L.contractive * sum(tf.mul(tf.square(a), tf.sum(tf.square(K), 0))) / B;
  }
  return [rec + kl + penalty, rec, kl, penalty];
}

async function main() {
  const args = process.argv.slice(2);
  let backend = 'wasm';  // in node too; the cpu backend took ~10x longer on the conv presets
  const bi = args.indexOf('--backend');
  if (bi >= 0) backend = args.splice(bi, 2)[1];
  let dump = null;
  const di = args.indexOf('--dump');
  if (di >= 0) dump = args.splice(di, 2)[1];
  const dumped = [], dumpIndex = [];
  let dumpOffset = 0;
  const [planFile, weightsFile, dataDir, samplesArg] = args;
  if (!dataDir) die('usage: node keras_tfjs.js PLAN.json WEIGHTS.safetensors MNIST_DIR [TEST_SAMPLES] [--backend cpu|wasm]');
  if (backend === 'wasm') require('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend(backend);
  await tf.ready();

  const plan = JSON.parse(fs.readFileSync(planFile, 'utf8'));
  if (plan.format !== 'aep-keras-plan-1') die(planFile + ': not a Keras plan of aep');
  const state = readSafetensors(weightsFile);
  const model = buildLayers(plan);
  // Build every layer with one image, then load the weights into the built variables.
  tf.tidy(() => {
    const r = forward(model, plan, tf.zeros([1, ...plan.input_shape]));
    if (r.out.shape.join() !== [1, 28, 28, 1].join()) die('the decoder gives ' + JSON.stringify(r.out.shape));
  });
  let loaded = 0;
  for (const part of plan.parts)
    for (const spec of part.layers) {
      const layer = model.byName[spec.name];
      if (layer.weights.length !== spec.weights.length)
        die(`${spec.name}: TensorFlow.js has ${layer.weights.length} weights, the plan lists ${spec.weights.length}`);
      for (const w of spec.weights) {
        const src = state[w.source];
        if (!src) die(`${weightsFile}: no tensor ${w.source}`);
        const variable = layer.weights.find(v => v.originalName.endsWith('/' + w.name));
        if (!variable) die(`${spec.name}: no weight ${w.name}`);
        const value = tf.tidy(() => w.ops.reduce(applyOp, tf.tensor(src.data, src.shape)));
        if (value.shape.join() !== variable.shape.join())
          die(`${w.source} -> ${spec.name}/${w.name}: shape ${JSON.stringify(value.shape)}, needs ${JSON.stringify(variable.shape)}`);
        variable.write(value);
        loaded++;
        if (dump) {
          dumped.push(Buffer.from(new Float32Array(value.dataSync()).buffer));
          dumpIndex.push({layer: spec.name, weight: w.name, shape: value.shape, offset: dumpOffset});
          dumpOffset += value.size;
        }
      }
    }

  if (dump) {
    fs.writeFileSync(dump + '.bin', Buffer.concat(dumped));
    fs.writeFileSync(dump + '.json', JSON.stringify(dumpIndex));
  }

  const images = readTestImages(dataDir);
  const n = Math.min(samplesArg ? Number(samplesArg) : images.count, images.count);
  const scale = Math.fround(plan.normalize === '-1_1' ? 1 / 127.5 : 1 / 255);
  const shift = plan.normalize === '-1_1' ? -1 : 0;
  const sums = [0, 0, 0, 0];
  const t0 = Date.now();
  for (let start = 0; start < n; start += 500) {
    const b = Math.min(500, n - start);
    const data = new Float32Array(b * 784);
    for (let i = 0; i < b * 784; i++) data[i] = Math.fround(images.pixels[start * 784 + i] * scale) + shift;
    tf.tidy(() => {
      const x = tf.tensor4d(data, [b, 28, 28, 1]);
      const terms = lossTerms(plan, model, forward(model, plan, x), x);
      terms.forEach((t, i) => { sums[i] += t * b; });
    });
  }
  const f = v => Number((v / n).toPrecision(9));
  console.error(`keras_tfjs: ${plan.preset}: ${loaded} weights loaded, ${n} test images in ${Date.now() - t0} ms (${tf.getBackend()})`);
  console.log(`clean test loss: total ${f(sums[0])} reconstruction ${f(sums[1])} kl ${f(sums[2])} penalty ${f(sums[3])}`);
}

main().catch(e => die(e.stack || String(e)));
