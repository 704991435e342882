#!/usr/bin/env node
// Decodes Sparkplug B payload files with Eclipse Tahu's JavaScript decoder
// (npm sparkplug-payload) and prints them as JSON, one entry per file:
//
//   node check.js payload.bin [more.bin ...]
//
// Used by sparkplug/crosscheck_test.go to check edgeagent's Go encoder
// against an independent implementation. To keep every value exact in JSON,
// 64-bit integers (Long) print as decimal strings in the Long's own
// signedness, bytes as lowercase hex strings, and NaN/±Infinity as strings.
'use strict';

const fs = require('fs');
const Long = require('long');
const sparkplug = require('sparkplug-payload').get('spBv1.0');

function plain(v) {
  if (v === null || v === undefined) return null;
  if (Long.isLong(v)) return v.toString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v)) o[k] = plain(v[k]);
    return o;
  }
  return v;
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node check.js <payload file>...');
  process.exit(2);
}
const out = [];
let failed = false;
for (const file of files) {
  try {
    out.push({ file, payload: plain(sparkplug.decodePayload(fs.readFileSync(file))) });
  } catch (e) {
    failed = true;
    out.push({ file, error: String(e && e.message || e) });
  }
}
process.stdout.write(JSON.stringify(out, null, 2) + '\n');
process.exit(failed ? 1 : 0);
