// Splits MNIST's four IDX files (gzip) in two for the page: OUT/first/ holds the first TRAIN training and TEST test
// images (training starts on them at once, web/aep.js), OUT/rest/ the others, each a complete IDX file of its own, and
// OUT/parts.json the counts.
//   node scripts/split-mnist.js SRC_DIR OUT_DIR [TRAIN TEST]      (defaults: 3000 1000)
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

const [src, out] = process.argv.slice(2, 4);
const first = { train: Number(process.argv[4] || 3000), t10k: Number(process.argv[5] || 1000) };
if (!src || !out || !(first.train > 1) || !(first.t10k > 1)) {
  console.error('usage: node scripts/split-mnist.js SRC_DIR OUT_DIR [TRAIN TEST]');
  process.exit(2);
}

let restBytes = 0;  // the rest's four files, gzipped: the engines set room aside for them early (web/aep.js)
const counts = {};  // written to OUT/parts.json: the page reserves room for all of it when the first part comes
// An IDX file: [0, 0, type, ndims] then ndims big-endian sizes, then the items (the first size counts them).
function split(file, n) {
  const bytes = zlib.gunzipSync(fs.readFileSync(path.join(src, file)));
  const ndims = bytes[3], head = 4 + 4 * ndims, count = bytes.readUInt32BE(4);
  if (bytes[0] !== 0 || bytes[1] !== 0 || bytes[2] !== 8 || !(n < count)) throw new Error(file + ': not an IDX file of more than ' + n + ' items');
  counts[file] = { first: n, total: count };
  let item = 1;
  for (let d = 1; d < ndims; ++d) item *= bytes.readUInt32BE(4 + 4 * d);
  if (bytes.length !== head + count * item) throw new Error(file + ': truncated');
  const part = (from, to) => {
    const h = Buffer.from(bytes.subarray(0, head));
    h.writeUInt32BE(to - from, 4);
    return zlib.gzipSync(Buffer.concat([h, bytes.subarray(head + from * item, head + to * item)]), { level: 9 });
  };
  const parts = [['first', part(0, n)], ['rest', part(n, count)]];
  restBytes += parts[1][1].length;
  for (const [dir, data] of parts) {
    fs.mkdirSync(path.join(out, dir), { recursive: true });
    fs.writeFileSync(path.join(out, dir, file), data);
  }
}

for (const set of ['train', 't10k'])
  for (const kind of ['images-idx3-ubyte', 'labels-idx1-ubyte']) split(set + '-' + kind + '.gz', first[set]);
fs.writeFileSync(path.join(out, 'parts.json'), JSON.stringify({
  first: { train: first.train, test: first.t10k },
  total: { train: counts['train-images-idx3-ubyte.gz'].total, test: counts['t10k-images-idx3-ubyte.gz'].total },
  restBytes,
}) + '\n');
