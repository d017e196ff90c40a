/**
 * Parse throughput of our HL7 v2 parser against @medplum/core's Hl7Message.parse on the ORU^R01
 * fixtures. Both get decoded text (our bytes path adds MSH-18 detection and decoding, reported
 * separately). Run: npx tsx bench/hl7-parse.ts [seconds per run, default 2]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { Hl7Message } from '@medplum/core';
import { parseHl7, parseHl7Text } from '../src/ingest/hl7v2/index.js';

const dir = '/work/shared/fixtures/hl7v2/';
const seconds = Number(process.argv[2] ?? 2);
const buffers: Buffer[] = [];
for (const f of readdirSync(dir).filter((x) => x.endsWith('.hl7')).sort()) {
  const b = readFileSync(dir + f);
  try {
    const m = parseHl7(b);
    if (m.segments[0].fields[9]?.[0]?.[0]?.[0] === 'ORU' && m.segments[0].fields[9]?.[0]?.[1]?.[0] === 'R01') buffers.push(b);
  } catch {
    // malformed fixtures are not part of the throughput figure
  }
}
const texts = buffers.map((b) => b.toString('utf8').replace(/^\uFEFF/, '').replace(/\r\n|\n/g, '\r'));
const bytes = buffers.reduce((n, b) => n + b.length, 0);

function run(name: string, fn: (i: number) => unknown): number {
  for (let i = 0; i < 2000; i++) fn(i % texts.length); // warm-up
  let count = 0;
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < texts.length; i++) fn(i);
    count += texts.length;
  }
  const rate = count / seconds;
  console.log(`${name.padEnd(34)} ${Math.round(rate).toLocaleString('en').padStart(10)} msgs/s  ${((rate * bytes) / texts.length / 1e6).toFixed(1)} MB/s`);
  return rate;
}

console.log(`${texts.length} ORU^R01 fixtures, ${Math.round(bytes / texts.length)} bytes on average, ${seconds} s per run`);
const medplum = run('@medplum/core Hl7Message.parse', (i) => Hl7Message.parse(texts[i]));
const ours = run('parseHl7Text (decoded text)', (i) => parseHl7Text(texts[i]));
run('parseHl7 (bytes, MSH-18, decode)', (i) => parseHl7(buffers[i]));
console.log(`ratio ours/medplum: ${(ours / medplum).toFixed(2)}x`);
