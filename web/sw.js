// The playground's service worker (registered by aep.js): keeps one build's files - the page, its engines and MNIST -
// in a cache named after the build, and serves them cache-first, so that a second visit starts without the network.
// A new build (another VERSION, stamped by build_wasm.sh from a hash of the files) installs its own cache, takes over
// and deletes the older caches. Learners' autosaved sessions live in IndexedDB ('aep'): nothing here touches them.
'use strict';
const VERSION = 'dev';
const CACHE = 'aep-' + VERSION;
// What a visit needs (the single-threaded engine and its training worker). What else a page fetches under this
// worker's control (the threaded engine, Fashion-MNIST, the bench) joins the cache as it is fetched, and the page
// sends what it fetched before this worker took over (see aep.js).
const FILES = ['./', 'index.html', 'aep.js', 'aep.css', 'fetch-wasm.js', 'aep_web.js', 'aep_web.wasm.gz', 'aep-worker.js',
               'aep_worker.js', 'aep_worker.wasm.gz', 'data/parts.json'].concat(
  ...['first', 'rest'].map((part) => ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz',
                                      't10k-labels-idx1-ubyte.gz'].map((f) => 'data/' + part + '/' + f)));

// 'no-cache': the browser's HTTP cache may answer, but only after the server confirmed the file is unchanged (a small
// 304 on a first visit, whose downloads are in that cache already), so that a new build never caches an old file.
const fresh = (url) => new Request(url, { cache: 'no-cache' });

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(FILES.map(fresh))).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (e) => {
  e.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith('aep-') && k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

function cacheable(req) {
  const url = new URL(req.url);
  return req.method === 'GET' && url.origin === self.location.origin && !req.headers.has('range');
}

// Cache first (the page's address without its query: ?preset=... is read by the page, not the server), then the
// network, whose successful answer is kept.
self.addEventListener('fetch', (e) => {
  const req = e.request;
  if (!cacheable(req)) return;
  e.respondWith(caches.open(CACHE).then(async (cache) => {
    const hit = await cache.match(req, { ignoreSearch: true });
    if (hit) return hit;
    const res = await fetch(req);
    if (res.ok && res.type === 'basic') cache.put(req, res.clone()).catch(() => {});
    return res;
  }));
});

// {cache: [urls]} from a page: the files it fetched before this worker controlled it (a first visit's threaded engine).
self.addEventListener('message', (e) => {
  const urls = e.data && Array.isArray(e.data.cache) ? e.data.cache : [];
  e.waitUntil(caches.open(CACHE).then((cache) => Promise.all(urls.map(async (u) => {
    const req = new Request(u);
    if (!cacheable(req) || await cache.match(req, { ignoreSearch: true })) return;
    const res = await fetch(fresh(u));
    if (res.ok) await cache.put(req, res);
  }))).catch(() => {}));
});
