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
importScripts('aep_bench_web.js');

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
