// ticketrush proof-of-work worker: finds a nonce for a waiting-room
// challenge, off the page's main thread so the page stays responsive.
//
// The rule (the server checks the same): SHA-256 of the UTF-8 string
// challenge + ":" + lowercase visitor token + ":" + nonce must start with
// `bits` zero bits, counted from the most significant bit of the first
// byte; the nonce is 1–64 characters of [A-Za-z0-9].
//
// Message in: {challenge, token, bits, prefix, engine?}. `prefix` (letters
// and digits) keeps the nonces of parallel workers apart. `engine` "js"
// forces the built-in SHA-256 (tests compare both engines).
// Messages out: {type: 'progress', hashes} every ~100 ms, then
// {type: 'found', nonce, hashes}, or {type: 'error', message}.
'use strict';

const DIGITS = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
// crypto.subtle answers each digest through a promise: a batch of digests
// in flight at once costs far less than one round trip each.
const BATCH = 512;
const PROGRESS_MS = 100;

function encodeCounter(n) {
  let s = '';
  do {
    s = DIGITS[n % 62] + s;
    n = Math.floor(n / 62);
  } while (n > 0);
  return s;
}

// leadingZeros reports whether the digest starts with `bits` zero bits.
function leadingZeros(d, bits) {
  let i = 0;
  for (; bits >= 8; bits -= 8, i++) if (d[i] !== 0) return false;
  return bits === 0 || (d[i] >> (8 - bits)) === 0;
}

// ---- SHA-256 in JavaScript, for pages served over plain http (no
// crypto.subtle outside secure contexts) ----------------------------------

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const W = new Uint32Array(64);

function sha256(msg) {
  const len = msg.length;
  const blocks = Math.ceil((len + 9) / 64);
  const buf = new Uint8Array(blocks * 64);
  buf.set(msg);
  buf[len] = 0x80;
  const bitLen = len * 8;
  const end = buf.length;
  buf[end - 4] = bitLen >>> 24;
  buf[end - 3] = bitLen >>> 16;
  buf[end - 2] = bitLen >>> 8;
  buf[end - 1] = bitLen;
  buf[end - 5] = Math.floor(bitLen / 0x100000000);
  let h0 = 0x6a09e667, h1 = 0xbb67ae85, h2 = 0x3c6ef372, h3 = 0xa54ff53a;
  let h4 = 0x510e527f, h5 = 0x9b05688c, h6 = 0x1f83d9ab, h7 = 0x5be0cd19;
  for (let off = 0; off < end; off += 64) {
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
    let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (h + S1 + ch + K[i] + W[i]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) | 0;
      h = g; g = f; f = e; e = (d + t1) | 0;
      d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    h0 = (h0 + a) | 0; h1 = (h1 + b) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + h) | 0;
  }
  const out = new Uint8Array(32);
  const hs = [h0, h1, h2, h3, h4, h5, h6, h7];
  for (let i = 0; i < 8; i++) {
    out[i * 4] = hs[i] >>> 24;
    out[i * 4 + 1] = hs[i] >>> 16;
    out[i * 4 + 2] = hs[i] >>> 8;
    out[i * 4 + 3] = hs[i];
  }
  return out;
}

// ---- the search -----------------------------------------------------------

const enc = new TextEncoder();

async function solve({ challenge, token, bits, prefix, engine }) {
  const base = challenge + ':' + String(token).toLowerCase() + ':' + prefix;
  const subtle = engine !== 'js' && self.crypto && self.crypto.subtle;
  let n = 0;
  let lastReport = Date.now();
  for (;;) {
    if (subtle) {
      const nonces = [];
      const digests = [];
      for (let i = 0; i < BATCH; i++) {
        const suffix = encodeCounter(n + i);
        nonces.push(suffix);
        digests.push(subtle.digest('SHA-256', enc.encode(base + suffix)));
      }
      const done = await Promise.all(digests);
      for (let i = 0; i < BATCH; i++) {
        if (leadingZeros(new Uint8Array(done[i]), bits)) {
          return { nonce: prefix + nonces[i], hashes: n + i + 1 };
        }
      }
      n += BATCH;
    } else {
      for (let i = 0; i < BATCH; i++, n++) {
        const suffix = encodeCounter(n);
        if (leadingZeros(sha256(enc.encode(base + suffix)), bits)) {
          return { nonce: prefix + suffix, hashes: n + 1 };
        }
      }
    }
    const now = Date.now();
    if (now - lastReport >= PROGRESS_MS) {
      lastReport = now;
      self.postMessage({ type: 'progress', hashes: n });
      // Yield, so a terminate() from the page is not held up.
      await new Promise((r) => setTimeout(r, 0));
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
      !Number.isInteger(job.bits) || job.bits < 0 || job.bits > 256 ||
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
