// Loads an engine's WebAssembly small on the wire even from a static server that compresses nothing: fetches the gzip
// copy build_wasm.sh writes (NAME.wasm.gz) and inflates it with the browser's DecompressionStream while it downloads
// and compiles. Falls back to the plain NAME.wasm where DecompressionStream is missing or the .gz fails. Used by the
// page (aep.js), the training worker (aep-worker.js) and the bench worker as Emscripten's Module.instantiateWasm.
'use strict';
(function () {
  // The body of `url`, inflated: a server that sent it with Content-Encoding: gzip has had the browser inflate it
  // already, so the first bytes decide (1f 8b: still gzip).
  async function inflated(url, early) {
    const res = await (early || fetch(url));
    if (!res.ok) throw new Error('HTTP ' + res.status);
    const reader = res.body.getReader();
    const first = await reader.read();
    const head = first.done ? new Uint8Array(0) : first.value;
    const body = new ReadableStream({
      start(c) { if (head.length) c.enqueue(head); if (first.done) c.close(); },
      async pull(c) { const { done, value } = await reader.read(); if (done) c.close(); else c.enqueue(value); },
      cancel(why) { return reader.cancel(why); },
    });
    const gzip = head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
    return new Response(gzip ? body.pipeThrough(new DecompressionStream('gzip')) : body,
                        { headers: { 'Content-Type': 'application/wasm' } });
  }

  async function instantiate(file, imports, early) {
    if (typeof DecompressionStream === 'function') {
      try {
        return await WebAssembly.instantiateStreaming(inflated(file + '.gz', early), imports);
      } catch (e) {
        console.warn(file + '.gz could not be used (' + ((e && e.message) || e) + '): loading ' + file + ' uncompressed');
      }
    }
    const res = await fetch(file);
    if (!res.ok) throw new Error(file + ': HTTP ' + res.status);
    return WebAssembly.instantiate(await res.arrayBuffer(), imports);  // any Content-Type (instantiateStreaming wants application/wasm)
  }

  // Module.instantiateWasm = aepInstantiateWasm('aep_web.wasm', (error) => ...): Emscripten's glue calls it with its
  // imports and a callback that takes the instance and the module (the threaded build hands the module to its threads).
  // The download starts at once, not when Emscripten's glue (loaded next) asks for the engine: on a slow network
  // that is the glue's download time earlier.
  self.aepInstantiateWasm = (file, onFail) => {
    const early = typeof DecompressionStream === 'function' ? fetch(file + '.gz') : null;
    if (early) early.catch(() => {});  // (a failure is seen, and fallen back from, in instantiate)
    return (imports, receiveInstance) => {
      instantiate(file, imports, early).then((r) => receiveInstance(r.instance, r.module), onFail);
      return {};
    };
  };
})();
