// ticketrush proof-of-work worker: finds a nonce for a waiting-room
// challenge, off the page's main thread so the page stays responsive.
//
// The rule (the server checks the same): SHA-256 of the UTF-8 string
// challenge + ":" + lowercase visitor token + ":" + nonce must start with
// `bits` zero bits, counted from the most significant bit of the first
// byte; the nonce is 1–64 characters of [A-Za-z0-9].
//
// Message in: {challenge, token, bits, prefix}. `prefix` (letters and
// digits) keeps the nonces of parallel workers apart.
// Messages out: {type: 'progress', hashes} every ~100 ms, then
// {type: 'found', nonce, hashes}, or {type: 'error', message}.
// {type: 'digest', text, engine} answers {type: 'digest', hex}: the SHA-256
// of text by this file's code ("js") or the browser's ("subtle"), for tests.
'use strict';

const DIGITS = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
const PROGRESS_MS = 100;

// leadingZeros reports whether the digest starts with `bits` zero bits.
function leadingZeros(d, bits) {
  let i = 0;
  for (; bits >= 8; bits -= 8, i++) if (d[i] !== 0) return false;
  return bits === 0 || (d[i] >> (8 - bits)) === 0;
}

// ---- SHA-256 ----------------------------------------------------------------
//
// The search runs its own SHA-256: crypto.subtle answers every digest
// through a promise, which costs far more than the hash itself (measured in
// headless Chromium on a small server: under 100,000 digests a second
// through subtle, over a million a second per worker here), and browsers
// leave it out of pages served over plain http. Every message of one search
// shares its start, so the blocks before the nonce are hashed once, and the
// nonce has a fixed width, so the padding is written once. The answer found
// is checked with crypto.subtle, where the browser has it, before the page
// sends it.

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
const W = new Int32Array(64);

// compress runs one 64-byte block of buf at off into the state h.
function compress(h, buf, off) {
  for (let i = 0; i < 16; i++) {
    const j = off + i * 4;
    W[i] = (buf[j] << 24) | (buf[j + 1] << 16) | (buf[j + 2] << 8) | buf[j + 3];
  }
  for (let i = 16; i < 64; i++) {
    const a = W[i - 15], b = W[i - 2];
    const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
    const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
    W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
  }
  let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const ch = (e & f) ^ (~e & g);
    const t1 = (hh + S1 + ch + K[i] + W[i]) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const maj = (a & b) ^ (a & c) ^ (b & c);
    hh = g; g = f; f = e; e = (d + t1) | 0;
    d = c; c = b; b = a; a = (t1 + S0 + maj) | 0;
  }
  h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
  h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + hh) | 0;
}

// pad returns msg with SHA-256's padding, in whole blocks.
function pad(msg) {
  const len = msg.length;
  const buf = new Uint8Array(Math.ceil((len + 9) / 64) * 64);
  buf.set(msg);
  buf[len] = 0x80;
  const bits = len * 8;
  const end = buf.length;
  buf[end - 5] = Math.floor(bits / 0x100000000);
  buf[end - 4] = bits >>> 24;
  buf[end - 3] = bits >>> 16;
  buf[end - 2] = bits >>> 8;
  buf[end - 1] = bits;
  return buf;
}

function stateBytes(h) {
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) {
    out[i * 4] = h[i] >>> 24;
    out[i * 4 + 1] = h[i] >>> 16;
    out[i * 4 + 2] = h[i] >>> 8;
    out[i * 4 + 3] = h[i];
  }
  return out;
}

function sha256(msg) {
  const buf = pad(msg);
  const h = Int32Array.from(IV);
  for (let off = 0; off < buf.length; off += 64) compress(h, buf, off);
  return stateBytes(h);
}

// startsWithZeros reports whether the state h (the digest as words) starts
// with bits zero bits.
function startsWithZeros(h, bits) {
  let i = 0;
  for (; bits >= 32; bits -= 32, i++) if (h[i] !== 0) return false;
  return bits === 0 || (h[i] >>> (32 - bits)) === 0;
}

// ---- the search -----------------------------------------------------------

const enc = new TextEncoder();
// Nonce digits after the prefix: fixed width, so every message has the same
// length; 62^8 tries are far beyond any difficulty the server asks.
const WIDTH = 8;
const CHUNK = 4096;

// search returns a function that tries the next CHUNK nonces: the answer
// ({nonce, hashes}) when one of them meets the rule, else null.
function search({ challenge, token, bits, prefix }) {
  const base = enc.encode(challenge + ':' + String(token).toLowerCase() + ':' + prefix);
  const full = Math.floor(base.length / 64) * 64;
  const mid = Int32Array.from(IV);
  for (let off = 0; off < full; off += 64) compress(mid, base, off);
  // The rest of the base, the nonce digits and the padding, with the
  // length of the whole message.
  const tailLen = base.length - full;
  const lenBits = (base.length + WIDTH) * 8;
  const buf = new Uint8Array(Math.ceil((tailLen + WIDTH + 9) / 64) * 64);
  buf.set(base.subarray(full));
  buf[tailLen + WIDTH] = 0x80;
  buf[buf.length - 4] = lenBits >>> 24;
  buf[buf.length - 3] = lenBits >>> 16;
  buf[buf.length - 2] = lenBits >>> 8;
  buf[buf.length - 1] = lenBits;
  const digits = new Uint8Array(WIDTH);
  buf.fill(DIGITS.charCodeAt(0), tailLen, tailLen + WIDTH);
  const h = new Int32Array(8);
  let hashes = 0;
  return () => {
    for (let n = 0; n < CHUNK; n++) {
      h.set(mid);
      for (let off = 0; off < buf.length; off += 64) compress(h, buf, off);
      hashes++;
      if (startsWithZeros(h, bits)) {
        return { nonce: prefix + String.fromCharCode(...buf.subarray(tailLen, tailLen + WIDTH)), hashes };
      }
      // The next nonce: count in base 62, last digit first.
      for (let i = WIDTH - 1; i >= 0; i--) {
        if (++digits[i] < 62) {
          buf[tailLen + i] = DIGITS.charCodeAt(digits[i]);
          break;
        }
        digits[i] = 0;
        buf[tailLen + i] = DIGITS.charCodeAt(0);
      }
    }
    return null;
  };
}

// hashesDone is what a search has tried so far, for progress reports.
let hashesDone = 0;

async function solve(job) {
  const step = search(job);
  hashesDone = 0;
  let lastReport = Date.now();
  for (;;) {
    const r = step();
    if (r) {
      const subtle = self.crypto && self.crypto.subtle;
      if (subtle) {
        const d = new Uint8Array(await subtle.digest('SHA-256', enc.encode(job.challenge + ':' + String(job.token).toLowerCase() + ':' + r.nonce)));
        if (!leadingZeros(d, job.bits)) throw new Error('the answer found does not check out');
      }
      return r;
    }
    hashesDone += CHUNK;
    const now = Date.now();
    if (now - lastReport >= PROGRESS_MS) {
      lastReport = now;
      self.postMessage({ type: 'progress', hashes: hashesDone });
      // Yield, so the page's terminate() is not held up.
      await new Promise((res) => setTimeout(res, 0));
    }
  }
}

self.onmessage = async (ev) => {
  const job = ev.data || {};
  if (job.type === 'digest') {
    // Used by tests: the hex digest of a string with the chosen engine.
    const bytes = enc.encode(job.text);
    const d = job.engine === 'js' || !(self.crypto && self.crypto.subtle)
      ? sha256(bytes)
      : new Uint8Array(await self.crypto.subtle.digest('SHA-256', bytes));
    self.postMessage({ type: 'digest', hex: Array.from(d, (x) => x.toString(16).padStart(2, '0')).join('') });
    return;
  }
  if (typeof job.challenge !== 'string' || typeof job.token !== 'string' ||
      !Number.isInteger(job.bits) || job.bits < 0 || job.bits > 64 ||
      typeof job.prefix !== 'string' || !/^[A-Za-z0-9]{0,32}$/.test(job.prefix)) {
    self.postMessage({ type: 'error', message: 'bad job' });
    return;
  }
  try {
    const r = await solve(job);
    self.postMessage({ type: 'found', ...r });
  } catch (err) {
    self.postMessage({ type: 'error', message: String(err && err.message || err) });
  }
};
