// Runs `aep bench` (src/cli/main.cpp compiled as aep_bench_web) in a Worker: fetches MNIST's training images and
// benchmark model A next to the page into the in-memory file system, then calls main with the page's arguments.
'use strict';
let ready;
const started = new Promise((resolve) => { ready = resolve; });
self.Module = {
  noInitialRun: true,
  print: (t) => postMessage({ line: t }),
  printErr: (t) => postMessage({ line: t }),
  onRuntimeInitialized: () => ready(),
};
importScripts('fetch-wasm.js');  // the .wasm gzipped on the wire
Module.instantiateWasm = aepInstantiateWasm('aep_bench_web.wasm',
  (e) => postMessage({ result: { error: 'could not load aep_bench_web.wasm: ' + ((e && e.message) || e) } }));
try {
  importScripts('aep_bench_web.js');
} catch (e) {  // scripts/serve.sh builds the page only: the benchmark's engine comes with the full build
  postMessage({ result: { error: 'the benchmark engine (aep_bench_web.js) is not built here: `bash build_wasm.sh` (no ' +
                                 '--page) or scripts/test.sh builds it (' + e.message + ')' } });
  close();
}

async function bytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(url + ': HTTP ' + r.status);
  return new Uint8Array(await r.arrayBuffer());
}

onmessage = async (e) => {
  try {
    await started;
    const FS = Module.FS;
    FS.mkdir('/data');
    for (const f of ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'])
      FS.writeFile('/data/' + f, await bytes('data/' + f));
    FS.writeFile('/model-a.json', await bytes('bench/model-a.json'));
    const args = e.data.args.concat(['--data', '/data', '--model-a', '/model-a.json', '--json', '/out.json']);
    const rc = Module.callMain(args);
    if (rc !== 0) throw new Error('aep bench exited with ' + rc);
    postMessage({ result: JSON.parse(FS.readFile('/out.json', { encoding: 'utf8' })) });
  } catch (err) {
    postMessage({ result: { error: String(err && err.message || err) } });
  }
};
