// Page glue for the playground: checks the browser, loads the engine and MNIST with progress, applies the URL's
// settings, and offers the JS API (window.aep) and the same over postMessage for a course page that embeds us.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const progressText = $('progress-text'), progressBar = $('progress');
  const DATA = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz',
                't10k-labels-idx1-ubyte.gz'];

  function fatal(msg) {
    const box = $('error');
    box.textContent = msg;
    box.hidden = false;
    $('overlay').classList.add('done');
  }

  // A tiny module using a v128 instruction: validates only where WebAssembly SIMD is supported.
  const simdProbe = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0,
                                    65, 0, 253, 15, 253, 98, 11]);
  if (typeof WebAssembly !== 'object' || !WebAssembly.validate(simdProbe)) {
    fatal('This browser does not support WebAssembly SIMD, which the playground needs.\n' +
          'Chrome/Edge 91+, Firefox 89+ and Safari 16.4+ have it.');
    return;
  }

  let ready = false;
  const queued = [];  // postMessage calls that came before the engine was up: answered once it is

  function call(name, ret, types, args) { return Module.ccall(name, ret, types, args); }
  function command(obj) {
    if (!ready) return { ok: false, errors: ['the playground is still loading'] };
    return JSON.parse(call('aep_command', 'string', ['string'], [JSON.stringify(obj)]));
  }
  function status() {
    if (!ready) return { loading: true };
    return JSON.parse(call('aep_status', 'string', [], []));
  }
  function notice(text) { if (ready) call('aep_notice', null, ['string'], [text]); }

  // Settings from the URL (?preset=vae-mlp&lr=0.001&panels=training,latent&autostart=1&compact=1). Each is applied
  // on its own so one bad value falls back to the default without losing the others. ?lesson=ID&step=K opens a lesson
  // (at its step K) after the other settings.
  function applyUrl() {
    const params = new URLSearchParams(location.search);
    const errors = [];
    if (params.has('lesson')) {
      const lesson = { lesson: params.get('lesson') };
      if (params.has('step')) lesson.lessonStep = params.get('step');
      params.delete('lesson');
      params.delete('step');
      params.set('lesson', JSON.stringify(lesson));  // applied last, as one command
    }
    params.delete('worker');  // read at start-up (startWorker)
    if (params.has('threads')) {  // the engine's, not the App's: see aep_set_threads in web_main.cpp
      const n = Number(params.get('threads'));
      if (Number.isInteger(n) && n >= 1 && n <= 64) call('aep_set_threads', 'number', ['number'], [n]);
      else errors.push('threads must be a whole number from 1 to 64');
      params.delete('threads');
    }
    // A comparison or a beta sweep starts the run over (paused): before autostart.
    const order = ['preset', 'optimizer', 'seed', 'lr', 'batch', 'epochs', 'beta', 'l1', 'noise', 'corruption',
                   'panels', 'compact', 'compare', 'betaSweep', 'lesson', 'autostart'];
    const keys = [...params.keys()].sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99));
    for (const key of keys) {
      const r = command(key === 'lesson' ? JSON.parse(params.get(key)) : { [key]: params.get(key) });
      if (!r.ok) errors.push(...r.errors);
    }
    if (errors.length) notice('URL: ' + errors.join('; ') + ' (using the defaults for those)');
  }

  async function fetchWithProgress(urls, label = 'MNIST') {
    const sizes = urls.map(() => 0), got = urls.map(() => 0);
    const show = () => {
      const total = sizes.reduce((a, b) => a + b, 0), have = got.reduce((a, b) => a + b, 0);
      progressBar.value = total ? have / total : 0;
      const text = 'Loading ' + label + ' ' + (have / 1e6).toFixed(1) + ' / ' + (total / 1e6).toFixed(1) + ' MB';
      progressText.textContent = text;
      if (ready) call('aep_set_loading', null, ['string'], [text]);
    };
    return Promise.all(urls.map(async (url, i) => {
      const res = await fetch(url);
      if (!res.ok) throw new Error(url + ': HTTP ' + res.status);
      sizes[i] = Number(res.headers.get('Content-Length')) || 0;
      const reader = res.body.getReader(), parts = [];
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parts.push(value);
        got[i] += value.length;
        show();
      }
      const out = new Uint8Array(got[i]);
      let at = 0;
      for (const p of parts) { out.set(p, at); at += p.length; }
      return out;
    }));
  }

  // The wasm heap as bytes. In the threaded build a worker thread may grow the shared memory, and Module.HEAPU8
  // then still views the old, shorter buffer.
  function heapU8() {
    const m = Module.wasmMemory;
    return m && Module.HEAPU8.buffer !== m.buffer ? new Uint8Array(m.buffer) : Module.HEAPU8;
  }

  // Copies bytes into the wasm heap for a call; frees them after.
  function withHeap(arrays, fn) {
    const ptrs = arrays.map((a) => { const p = Module._malloc(a.length); heapU8().set(a, p); return p; });
    try { return fn(ptrs); } finally { ptrs.forEach((p) => Module._free(p)); }
  }

  // Training in a Web Worker of its own (web/aep-worker.js), so that it never waits for drawing; ?worker=0 trains in
  // the page's frames instead. The threaded engine (cross-origin isolated pages) trains in the page with its threads.
  // The worker is created at once, so that it loads its engine while the page loads its own; startWorker hooks it up.
  const wantWorker = new URLSearchParams(location.search).get('worker') !== '0' && !self.crossOriginIsolated &&
                     typeof Worker === 'function';
  let worker = wantWorker ? new Worker('aep-worker.js') : null, workerError = '';
  if (worker) worker.onerror = (e) => { workerError = e.message || 'an error'; };
  function startWorker() {
    if (worker && workerError) {  // it failed before the page was up: the page trains in its frames instead
      notice('The training worker could not start (' + workerError + '): training runs in the page.');
      worker = null;
    }
    if (!worker) return;
    worker.onmessage = (e) => {
      const m = e.data;
      if (m.report) withHeap([m.report], (p) => call('aep_host_report', 'string', ['number', 'number', 'number'],
                                                     [p[0], m.report.length, m.heap]));
      if (m.error) notice('The training worker refused an order: ' + m.error);
    };
    worker.onerror = (e) => notice('The training worker stopped: ' + (e.message || 'an error'));
    Module.aepWorkerSend = (bytes) => worker.postMessage({ order: bytes }, [bytes.buffer]);
    call('aep_use_worker', null, [], []);
  }

  // MNIST comes in two parts (build_wasm.sh splits the files): a first part of 3,000 training and 1,000 test images
  // (0.6 MB) that training starts on at once, then the rest, downloaded once the first part is in so that the first
  // part has the line to itself. The rest joins training at each run's next epoch (App::add_data, Run::add_data).
  const part = (dir) => DATA.map((f) => 'data/' + dir + '/' + f);
  let firstPart = null, restPart = null, partsJson = null;  // the downloads, started beside the engine's (below)
  // The engine's room for the rest (aep_staging): set aside right after the first part, used and freed by the rest.
  let staging = 0, stagingBytes = 0;
  function withStaging(files, fn) {
    const n = files.reduce((a, f) => a + f.length, 0);
    if (!staging || n > stagingBytes) return withHeap(files, fn);
    let at = staging;
    const ptrs = files.map((f) => { heapU8().set(f, at); at += f.length; return at - f.length; });
    try { return fn(ptrs); } finally { call('aep_staging', 'number', ['number'], [0]); staging = 0; }
  }
  function giveData(fn, files, extra) {
    const err = (fn === 'aep_add_data' ? withStaging : withHeap)(files, (p) => call(fn, 'string', ['number', 'number', 'number', 'number', 'number', 'number',
      'number', 'number'].concat(extra.map(() => 'number')),
      [p[0], files[0].length, p[1], files[1].length, p[2], files[2].length, p[3], files[3].length].concat(extra)));
    if (err) throw new Error(err);
  }
  // onFirst: called once training can start (on the first part, or on everything when a saved session waits for it:
  // a session saved over all of MNIST cannot continue on a part of it).
  async function loadData(onFirst) {
    const saved = await hasSession();
    const first = await firstPart;
    // How many images there will be and the rest's size (data/parts.json): the engines keep room for all the images,
    // so that the rest is inflated where it stays, and for the rest's files. Without it they grow as they must.
    const parts = await partsJson, total = parts && parts.total, restBytes = (parts && parts.restBytes) || 0;
    const giveFirst = () => {
      if (worker) worker.postMessage({ mnist: first, append: false, complete: false, total, restBytes });  // its own copy
      giveData('aep_set_data', first, [0, total ? total.train : 0, total ? total.test : 0]);
      if (restBytes > 0 && restBytes < 64e6) staging = call('aep_staging', 'number', ['number'], [stagingBytes = restBytes]);
    };
    if (!saved) {
      giveFirst();
      onFirst();
    }
    const rest = await restPart;
    progressText.textContent = 'Unpacking MNIST ...';
    if (saved) giveFirst();
    // The page's engine takes the rest first, then the worker: a report of the worker's grown batch order must not
    // reach the page before the page has the images (both within this task, so no report comes in between).
    giveData('aep_add_data', rest, []);
    if (worker) worker.postMessage({ mnist: rest, append: true, complete: true });
    if (saved) onFirst();
  }

  // A dropped or picked file: weights (.safetensors) or a dataset file (IDX, raw or .gz). Nothing leaves the page.
  function loadWeightsFile(file) {
    const weights = /\.safetensors$/i.test(file.name);
    file.arrayBuffer().then((buf) => {
      const bytes = new Uint8Array(buf);
      withHeap([bytes], (p) => call(weights ? 'aep_load_weights' : 'aep_load_data_file', 'string',
                                    ['number', 'number', 'string'], [p[0], bytes.length, file.name]));
    }, (e) => notice('Could not read ' + file.name + ': ' + e));
  }

  // --- autosave: the session (weights, optimizer, settings, curves) in IndexedDB, one per page configuration ----
  const sessionKey = location.pathname + location.search;
  function idb(mode, fn) {
    return new Promise((resolve, reject) => {
      if (!window.indexedDB) return reject(new Error('IndexedDB is not available'));
      const open = indexedDB.open('aep', 1);
      open.onupgradeneeded = () => open.result.createObjectStore('sessions');
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const tx = open.result.transaction('sessions', mode);
        const req = fn(tx.objectStore('sessions'));
        tx.oncomplete = () => { open.result.close(); resolve(req && req.result); };
        tx.onerror = tx.onabort = () => { open.result.close(); reject(tx.error); };
      };
    });
  }
  let savedAt = '';
  async function saveSession(force) {
    if (!ready) return false;
    const st = status();
    if (!st.dataReady) return false;
    const mark = st.step + '|' + call('aep_config_query', 'string', [], []);
    if (!force && mark === savedAt) return false;
    const ptr = call('aep_session_save', 'number', [], []), n = call('aep_session_size', 'number', [], []);
    if (!n) return false;
    const bytes = heapU8().slice(ptr, ptr + n);
    await idb('readwrite', (s) => s.put({ version: 1, saved: Date.now(), bytes }, sessionKey));
    savedAt = mark;
    return true;
  }
  // Whether an autosaved session waits for this page (false where storage is blocked: restoreSession says so).
  function hasSession() {
    return idb('readonly', (s) => s.count(sessionKey)).then((n) => n > 0, () => false);
  }
  async function restoreSession() {
    let rec;
    try {
      rec = await idb('readonly', (s) => s.get(sessionKey));
    } catch (e) {
      notice('Autosave is off: ' + e.message);
      return;
    }
    if (!rec) return;
    let err = '';
    if (!rec.bytes || !(rec.bytes instanceof Uint8Array)) err = 'the saved record is not a session';
    else err = withHeap([rec.bytes], (p) => call('aep_session_restore', 'string', ['number', 'number'], [p[0], rec.bytes.length]));
    if (err) {
      // Reported once and set aside under another key, never retried on the next load.
      await idb('readwrite', (s) => { s.put(rec, sessionKey + '#set-aside-' + Date.now()); return s.delete(sessionKey); }).catch(() => {});
      notice('Your autosaved session could not be restored (' + err + '); it was set aside and training starts fresh.');
    } else {
      savedAt = status().step + '|' + call('aep_config_query', 'string', [], []);
      return true;
    }
    return false;
  }
  setInterval(() => { saveSession(false).catch((e) => notice('Autosave failed: ' + e.message)); }, 5000);
  document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'hidden') saveSession(false).catch(() => {}); });

  // A new build's service worker takes over at once (sw.js) and deletes the older caches, perhaps while this page (the
  // old build's, from its cache) is still loading. This page is the build its meta tag names; when the caches hold
  // only another build's, the learner is told to reload (once).
  const build = (document.querySelector('meta[name="aep-build"]') || {}).content || 'dev';
  let newBuild = false;
  const NEW_BUILD = 'A new version of the playground was installed: reload the page to use it.';
  const sayNewBuild = () => {
    console.info(NEW_BUILD);
    notice(NEW_BUILD);
  };
  function checkBuild() {
    if (newBuild || !self.caches) return Promise.resolve();
    return caches.keys().then((keys) => {
      const ours = keys.filter((k) => k.startsWith('aep-'));
      if (ours.length && !ours.includes('aep-' + build) && !newBuild) { newBuild = true; sayNewBuild(); }
    }, () => {});
  }

  // Offline after the first visit: web/sw.js keeps this build's files. Registered once the data is in, so that its
  // downloads (revalidations of what this visit fetched) do not compete with the visit's own. Where a browser or a
  // school blocks service workers or storage (an embedded page, a plain http:// address other than localhost), the
  // page works as before and says so once.
  function keepForOffline() {
    const off = (why, detail) => {  // the status bar is one line: short; the console has the browser's words
      console.info('Offline use is off: ' + why + (detail ? ' (' + detail + ')' : '') +
                   '; the page needs the network on each visit.');
      notice('Offline use is off: ' + why + '.');
    };
    let sw;
    try { sw = navigator.serviceWorker; } catch (e) { return off('service workers are blocked here', e.message); }  // throws in sandboxed frames
    if (!sw) return off(window.isSecureContext ? 'this browser has no service workers' : 'it needs https or localhost');
    sw.addEventListener('controllerchange', () => {  // the new worker is still activating (deleting older caches)
      const c = sw.controller;
      if (!c || c.state === 'activated') checkBuild();
      else c.addEventListener('statechange', () => { if (c.state === 'activated') checkBuild(); });
    });
    sw.register('sw.js').then((reg) => {
      if (!reg) return off('service workers are blocked here');
      const installing = reg.installing;
      if (installing) installing.addEventListener('statechange', () => {
        if (installing.state === 'redundant' && !reg.active) off('the files could not be stored');
      });
      // What this visit fetched before the worker took over (the threaded engine is not among the worker's own files).
      const here = (u) => new URL(u, location.href).origin === location.origin;
      const urls = performance.getEntriesByType('resource').map((e) => e.name).filter(here);
      if (self.crossOriginIsolated) urls.push('aep_web_mt.js', 'aep_web_mt.wasm.gz', 'aep_web_mt.worker.js');
      return sw.ready.then((r) => { if (r.active) r.active.postMessage({ cache: urls }); return checkBuild(); });
    }, (e) => {
      if (sw.controller) console.info('The offline copy could not be updated now: ' + e.message);  // e.g. offline
      else off('the browser refused the service worker', e.message);
    });
  }

  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => {
    e.preventDefault();
    for (const f of e.dataTransfer.files) loadWeightsFile(f);
  });
  $('file').addEventListener('change', (e) => { for (const f of e.target.files) loadWeightsFile(f); e.target.value = ''; });

  // The JS API. Every method returns plain data; nothing here evaluates code.
  const api = {
    setConfig: (cfg) => (cfg && typeof cfg === 'object' && !Array.isArray(cfg)) ? command(cfg)
                                                                                : { ok: false, errors: ['setConfig needs an object'] },
    start: () => command({ train: true }),
    pause: () => command({ pause: true }),
    step: (n) => command({ step: n === undefined ? 1 : n }),
    reset: () => command({ reset: true }),
    status,
    link: () => ready ? location.origin + location.pathname + '?' + call('aep_config_query', 'string', [], []) : null,
    openWeights: () => $('file').click(),
    saveSession: () => saveSession(true),
    // Lessons: the open one's progress and live goal (null when none), the built-in ids, and opening one - built in
    // by id (at step K, 1-based), or a course page's own as JSON (validated like the built-in ones).
    lesson: () => (ready ? status().lesson : null),
    lessons: () => (ready ? status().lessons : []),
    startLesson: (id, step) => command(step === undefined ? { lesson: id } : { lesson: id, lessonStep: step }),
    loadLesson: (json, step) => command(step === undefined ? { lessonJson: json } : { lessonJson: json, lessonStep: step }),
    lessonAction: () => command({ lessonAction: true }),
    lessonStep: (k) => command({ lessonStep: k }),
    leaveLesson: () => command({ lesson: '' }),
  };
  window.aep = api;

  // Lesson events (a goal reached, a step skipped, a lesson started) go to the page that embeds us as
  // {type: 'aep-event', event, lesson, step, value, done, seq}, and to this window as an 'aep-event' DOM event, so that
  // a course page or an LMS records progress without polling.
  let lastEvent = 0;
  setInterval(() => {
    if (!ready) return;
    const l = status().lesson;
    if (!l) return;
    for (const ev of l.events) {
      if (ev.seq <= lastEvent) continue;
      lastEvent = ev.seq;
      if (window.parent !== window) window.parent.postMessage(ev, '*');
      window.dispatchEvent(new CustomEvent('aep-event', { detail: ev }));
    }
  }, 250);

  // postMessage from an embedding page: {type: 'aep', id, method, arg} with a method of the API above (setConfig, start,
  // pause, step, reset, status, lesson, lessons, startLesson, loadLesson, lessonAction, lessonStep, leaveLesson;
  // startLesson / loadLesson take an id / a lesson, or {lesson, step}). Replies {type: 'aep-reply', id, result} to the
  // sender; calls that come before the engine is up are answered once it is.
  window.addEventListener('message', (e) => {
    const m = e.data;
    if (!m || typeof m !== 'object' || m.type !== 'aep') return;
    if (!ready) { queued.push(e); return; }
    answer(e);
  });
  function answer(e) {
    const m = e.data;
    const methods = ['setConfig', 'start', 'pause', 'step', 'reset', 'status', 'lesson', 'lessons', 'startLesson',
                     'loadLesson', 'lessonAction', 'lessonStep', 'leaveLesson'];
    let result;
    if (typeof m.method !== 'string' || !methods.includes(m.method)) {
      result = { ok: false, errors: ['unknown method ' + JSON.stringify(m.method) + ' (known: ' + methods.join(', ') + ')'] };
    } else if (m.method === 'step' && m.arg !== undefined && (typeof m.arg !== 'number' || !(m.arg >= 0 && m.arg <= 100000))) {
      result = { ok: false, errors: ['step needs a number of steps between 0 and 100000'] };
    } else if (m.method === 'startLesson' || m.method === 'loadLesson') {  // arg: an id or a lesson, or {lesson, step}
      const a = m.arg && typeof m.arg === 'object' && !Array.isArray(m.arg) && 'step' in m.arg ? m.arg : { lesson: m.arg };
      result = api[m.method](a.lesson, a.step);
    } else {
      result = api[m.method](m.arg);
    }
    if (e.source) e.source.postMessage({ type: 'aep-reply', id: m.id, result }, e.origin === 'null' ? '*' : e.origin);
  }

  $('canvas').addEventListener('contextmenu', (e) => e.preventDefault());
  // The canvas keeps its pixels between frames: the renderer draws again only the windows that changed, which
  // matters most where the browser draws in software (no GPU). Emscripten's GLFW has no hint for this.
  const canvas = $('canvas'), getContext = canvas.getContext.bind(canvas);
  canvas.getContext = (type, attrs) =>
    getContext(type, type === 'webgl2' ? Object.assign({}, attrs, { preserveDrawingBuffer: true }) : attrs);
  window.Module = {
    canvas: $('canvas'),
    print: (t) => console.log(t),
    printErr: (t) => console.warn(t),
    aepFatal: fatal,
    aepDownload: (bytes, name) => {
      const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
      const a = document.createElement('a');
      a.href = url;
      a.download = name;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    },
    aepOpenFile: () => $('file').click(),
    aepLoadOod: () => {
      fetchWithProgress(['data/fashion-t10k-images-idx3-ubyte.gz', 'data/fashion-t10k-labels-idx1-ubyte.gz'], 'Fashion-MNIST').then((f) => {
        call('aep_set_loading', null, ['string'], ['']);
        withHeap(f, (p) => call('aep_set_ood', 'string', ['number', 'number', 'number', 'number'],
                                [p[0], f[0].length, p[1], f[1].length]));
      }, (e) => notice('Could not load Fashion-MNIST: ' + e.message));
    },
    aepCopyLink: (query) => {
      const link = location.origin + location.pathname + '?' + query;
      window.aepLastLink = link;
      const done = () => notice('Link copied: ' + link);
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(link).then(done, () => notice('Link (copy it by hand): ' + link));
      } else {
        notice('Link (copy it by hand): ' + link);
      }
    },
    aepReady: () => {
      ready = true;
      $('overlay').classList.add('done');
      startWorker();
      applyUrl();
      queued.splice(0).forEach(answer);
      const t0 = performance.now();
      let fresh = false;  // training starts on the first part: no autosaved session
      loadData(() => {
        fresh = !status().dataReady;
        // A first visit with nothing asked for opens on the lesson picker (a course page's settings or lesson, or an
        // autosaved session, go straight to work).
        if (fresh && !location.search && !status().lesson) command({ lessonPicker: true });
        window.aepTimings = { firstDataMs: performance.now() };
      }).then(() => { keepForOffline(); return fresh ? false : restoreSession(); }).then(() => {
        if (newBuild) notice(NEW_BUILD);  // over the restored session's note
        window.aepTimings.dataReadyMs = performance.now();
        console.log('MNIST ready in ' + ((performance.now() - t0) / 1000).toFixed(2) + ' s');
      }, (e) => notice('Could not load MNIST: ' + e.message));
    },
  };
  // MNIST downloads while the engine does (on a slow network the data is most of the wait); a failure is reported once
  // the engine is up (loadData).
  firstPart = fetchWithProgress(part('first'), 'MNIST (a first part)');
  partsJson = fetch('data/parts.json').then((r) => r.json()).catch(() => null);
  restPart = firstPart.then(() => fetchWithProgress(part('rest'), 'the rest of MNIST'));
  firstPart.catch(() => {});
  restPart.catch(() => {});
  let webgl2 = null;
  function hasWebGL2() {
    if (webgl2 === null) webgl2 = !!document.createElement('canvas').getContext('webgl2');
    return webgl2;
  }
  progressText.textContent = 'Loading the engine ...';
  // The threaded engine where the page may share memory with workers (served cross-origin isolated, as
  // scripts/serve.sh does); the single-threaded one otherwise, and if the threaded files are not there.
  function loadEngine(name, fallback) {
    if (self.aepInstantiateWasm) {  // web/fetch-wasm.js: the .wasm gzipped on the wire (its download starts here)
      Module.instantiateWasm = aepInstantiateWasm(name.replace(/\.js$/, '.wasm'),
        (e) => fatal('Could not load the engine (' + name.replace(/\.js$/, '.wasm') + '): ' + ((e && e.message) || e)));
    }
    // (checked once the downloads have started: a WebGL context can take a few hundred ms to make where it is
    // drawn in software)
    if (!hasWebGL2()) {
      fatal('WebGL2 is not available in this browser (or it is switched off), so the playground cannot draw.');
      return;
    }
    const s = document.createElement('script');
    s.src = name;
    s.onerror = () => {
      s.remove();
      if (fallback) loadEngine(fallback);
      else fatal('Could not load ' + name + ': is the page served next to the built files?');
    };
    document.body.appendChild(s);
  }
  if (self.crossOriginIsolated) loadEngine('aep_web_mt.js', 'aep_web.js');
  else loadEngine('aep_web.js');
})();
