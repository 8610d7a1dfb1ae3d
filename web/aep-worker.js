// The page's training worker: runs the training host (src/platform/worker_main.cpp, aep_worker.wasm). The page sends
// {order: bytes} (App::sync_host) and MNIST as {mnist: [four .gz files], append, complete} (a first part, then the rest
// with append); the worker trains in slices between messages
// and posts {report: bytes, heap: its wasm heap's size} (at most every 100 ms while training) or {error: text}.
'use strict';
let ready;
const started = new Promise((resolve) => { ready = resolve; });
self.Module = {
  print: (t) => console.log(t),
  printErr: (t) => console.warn(t),
  onRuntimeInitialized: () => ready(),
};
importScripts('fetch-wasm.js');  // the .wasm gzipped on the wire; a failure reaches the page as the worker's error
Module.instantiateWasm = aepInstantiateWasm('aep_worker.wasm', (e) => setTimeout(() => {
  throw new Error('could not load its engine (aep_worker.wasm): ' + ((e && e.message) || e));
}));
importScripts('aep_worker.js');

function withHeap(arrays, fn) {
  const ptrs = arrays.map((a) => { const p = Module._malloc(a.length); Module.HEAPU8.set(a, p); return p; });
  try { return fn(ptrs); } finally { ptrs.forEach((p) => Module._free(p)); }
}
// The rest of MNIST goes into the room the engine set aside after the first part (aep_worker_staging), if it fits.
let staging = 0, stagingBytes = 0;
function withStaging(arrays, fn) {
  const n = arrays.reduce((a, f) => a + f.length, 0);
  if (!staging || n > stagingBytes) return withHeap(arrays, fn);
  let at = staging;
  const ptrs = arrays.map((f) => { Module.HEAPU8.set(f, at); at += f.length; return at - f.length; });
  try { return fn(ptrs); } finally { Module._aep_worker_staging(0); staging = 0; }
}

// Training slices follow each other through a MessageChannel: unlike setTimeout(0) it is not clamped to 4 ms, and
// the page's messages get in between.
const channel = new MessageChannel();
let scheduled = false;
function schedule() {
  if (!scheduled) { scheduled = true; channel.port2.postMessage(0); }
}
channel.port1.onmessage = () => {
  scheduled = false;
  const more = Module._aep_worker_work(40);
  const n = Module._aep_worker_report(0.1);
  if (n) {
    const p = Module._aep_worker_report_data();
    const bytes = Module.HEAPU8.slice(p, p + n);
    postMessage({ report: bytes, heap: Module.HEAPU8.length }, [bytes.buffer]);
  }
  if (more) schedule();
};

onmessage = async (e) => {
  await started;
  const m = e.data;
  let err = '';
  if (m.mnist) {
    const f = m.mnist;
    err = (m.append ? withStaging : withHeap)(f, (p) => Module.ccall('aep_worker_mnist', 'string',
      ['number', 'number', 'number', 'number', 'number', 'number', 'number', 'number', 'number', 'number', 'number', 'number'],
      [p[0], f[0].length, p[1], f[1].length, p[2], f[2].length, p[3], f[3].length, m.append ? 1 : 0,
       m.complete === false ? 0 : 1, m.total ? m.total.train : 0, m.total ? m.total.test : 0]));
    if (!err && !m.append && m.restBytes > 0 && m.restBytes < 64e6) staging = Module._aep_worker_staging(stagingBytes = m.restBytes);
  } else if (m.order) {
    err = withHeap([m.order], (p) => Module.ccall('aep_worker_receive', 'string', ['number', 'number'], [p[0], m.order.length]));
  }
  if (err) postMessage({ error: err });
  schedule();
};
