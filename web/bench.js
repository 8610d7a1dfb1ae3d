// The benchmark page: starts bench-worker.js with the URL's options, shows its output as it comes, and leaves the
// records in window.benchResult ({records: [...]}, or {error}) for a headless runner (bench/chromium_bench.js).
'use strict';
(() => {
  const q = new URLSearchParams(location.search);
  const args = ['bench', '--only', q.get('only') || 'A,B,gemm', '--seconds', q.get('seconds') || '1',
                '--runs', q.get('runs') || '5'];
  const out = document.getElementById('out');
  out.textContent = 'aep ' + args.join(' ') + '\n';
  const worker = new Worker('bench-worker.js');
  worker.onmessage = (e) => {
    const m = e.data;
    if (m.line !== undefined) out.textContent += m.line + '\n';
    if (m.result) {
      window.benchResult = m.result;
      out.textContent += m.result.error ? 'error: ' + m.result.error + '\n' : 'done.\n';
    }
  };
  worker.onerror = (e) => { window.benchResult = { error: e.message }; out.textContent += 'error: ' + e.message + '\n'; };
  worker.postMessage({ args });
})();
