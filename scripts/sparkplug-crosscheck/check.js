#!/usr/bin/env node
// Decodes Sparkplug B payload files with Eclipse Tahu's JavaScript decoder
// (npm sparkplug-payload) and prints them as JSON, one entry per file:
//
//   node check.js payload.bin [data.bin=birth.bin ...]
//
// An argument data.bin=birth.bin decodes data.bin as a host does after
// birth.bin: a metric without a datatype (NDATA/DDATA omit it, and then the
// tahu decoder yields no value) first gets the datatype its alias, or else
// its name, has in the BIRTH. Only that field is added; the payload goes
// through protobufjs and back before the tahu decoder reads it.
//
// Used by sparkplug/crosscheck_test.go to check edgeagent's Go encoder
// against an independent implementation. To keep every value exact in JSON,
// 64-bit integers (Long) print as decimal strings in the Long's own
// signedness, bytes as lowercase hex strings, and NaN/±Infinity as strings.
'use strict';

const fs = require('fs');
const Long = require('long');
const sparkplug = require('sparkplug-payload').get('spBv1.0');
const Payload = require('sparkplug-payload/lib/sparkplugPayloadProto').org.eclipse.tahu.protobuf.Payload;

function withBirthTypes(data, birth) {
  const byAlias = new Map(), byName = new Map();
  for (const m of Payload.decode(birth).metrics) {
    if (m.hasOwnProperty('alias')) byAlias.set(m.alias.toString(), m.datatype);
    if (m.hasOwnProperty('name')) byName.set(m.name, m.datatype);
  }
  const p = Payload.decode(data);
  for (const m of p.metrics) {
    if (m.hasOwnProperty('datatype')) continue;
    const t = m.hasOwnProperty('alias') ? byAlias.get(m.alias.toString()) : byName.get(m.name);
    if (t === undefined) throw new Error(`metric ${m.hasOwnProperty('alias') ? 'alias ' + m.alias : m.name} is not in the BIRTH`);
    m.datatype = t;
  }
  return Payload.encode(p).finish();
}

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
  console.error('usage: node check.js <payload file>[=<birth payload file>]...');
  process.exit(2);
}
const out = [];
let failed = false;
for (const arg of files) {
  const [file, birth] = arg.split('=');
  try {
    let b = fs.readFileSync(file);
    if (birth) b = withBirthTypes(b, fs.readFileSync(birth));
    out.push({ file, payload: plain(sparkplug.decodePayload(b)) });
  } catch (e) {
    failed = true;
    out.push({ file, error: String(e && e.message || e) });
  }
}
process.stdout.write(JSON.stringify(out, null, 2) + '\n');
process.exit(failed ? 1 : 0);
