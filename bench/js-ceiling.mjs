// What plain JavaScript can do over ring-buffer-shaped bytes, with no kernel and no
// nodebpf: the ceilings the event-delivery benchmark is read against. A 16 MiB
// ArrayBuffer of 699,000 records (8-byte header with the length, 16 bytes of data), each
// walk reading every record's first u32; then `for await` over an iterator that only
// returns resolved promises.
//   node bench/js-ceiling.mjs
const N = 699_000;
const SIZE = 24;
const buffer = new ArrayBuffer(N * SIZE);
const view = new DataView(buffer);
for (let i = 0; i < N; i++) {
  view.setUint32(i * SIZE, 16, true);
  view.setUint32(i * SIZE + 8, i, true);
}
const END = N * SIZE;
const next = (len, off) => off + ((8 + len + 7) & ~7);

function locals(v) {
  let n = 0;
  let sum = 0;
  for (let off = 0; off < END; ) {
    const len = v.getUint32(off, true) & 0x3fffffff;
    sum += v.getUint32(off + 8, true);
    n++;
    off = next(len, off);
  }
  return n + (sum & 0);
}

function callback(v) {
  let sum = 0;
  const f = (dv, off) => {
    sum += dv.getUint32(off, true);
  };
  let n = 0;
  for (let off = 0; off < END; ) {
    const len = v.getUint32(off, true) & 0x3fffffff;
    f(v, off + 8, len);
    n++;
    off = next(len, off);
  }
  return n + (sum & 0);
}

class Iter {
  #v;
  #off = 0;
  #rec = { view: null, offset: 0, length: 0 };
  #res = { value: this.#rec, done: false };
  constructor(v) {
    this.#v = v;
    this.#rec.view = v;
  }
  next() {
    if (this.#off >= END) return { value: undefined, done: true };
    const len = this.#v.getUint32(this.#off, true) & 0x3fffffff;
    this.#rec.offset = this.#off + 8;
    this.#rec.length = len;
    this.#off = next(len, this.#off);
    return this.#res;
  }
  [Symbol.iterator]() {
    return this;
  }
}

function forOf(v) {
  let n = 0;
  let sum = 0;
  for (const r of new Iter(v)) {
    sum += r.view.getUint32(r.offset, true);
    n++;
  }
  return n + (sum & 0);
}

function* records(v) {
  const rec = { view: v, offset: 0, length: 0 };
  for (let off = 0; off < END; ) {
    const len = v.getUint32(off, true) & 0x3fffffff;
    rec.offset = off + 8;
    rec.length = len;
    yield rec;
    off = next(len, off);
  }
}

function generator(v) {
  let n = 0;
  let sum = 0;
  for (const r of records(v)) {
    sum += r.view.getUint32(r.offset, true);
    n++;
  }
  return n + (sum & 0);
}

const ROUNDS = 15;
for (const [name, walk] of [
  ['loop, locals', locals],
  ['loop + callback', callback],
  ['for-of, class iterator', forOf],
  ['for-of, generator', generator],
]) {
  for (let k = 0; k < 3; k++) walk(view);
  const t0 = performance.now();
  let n = 0;
  for (let k = 0; k < ROUNDS; k++) n += walk(view);
  console.log(`${name.padEnd(24)} ${(n / (performance.now() - t0) / 1000).toFixed(1).padStart(6)} M records/s`);
}

class Resolved {
  i = 0;
  r = { value: 0, done: false };
  next() {
    if (this.i++ < 5_000_000) return Promise.resolve(this.r);
    return Promise.resolve({ value: undefined, done: true });
  }
  [Symbol.asyncIterator]() {
    return this;
  }
}
const t0 = performance.now();
let n = 0;
for await (const _ of new Resolved()) n++;
console.log(`${'for await, resolved'.padEnd(24)} ${(n / (performance.now() - t0) / 1000).toFixed(1).padStart(6)} M iterations/s`);
