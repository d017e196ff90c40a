/**
 * HL7 v2 parse throughput: our parser against the npm parsers a county might otherwise use
 * (@medplum/core Hl7Message, simple-hl7, node-hl7-client), all on the same messages as decoded
 * text. Ours is also given the raw bytes (MSH-18 detection and decoding included), reported apart.
 * `npm run bench` runs it on the MLLP workload's messages; alone, on the ORU^R01 fixtures:
 * npx tsx bench/hl7-parse.ts [seconds per run, default 2]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Hl7Message } from '@medplum/core';
import simpleHl7 from 'simple-hl7';
import { Message as NodeHl7Message } from 'node-hl7-client';
import { parseHl7, parseHl7Text } from '../src/ingest/hl7v2/index.js';

export interface ParseRate {
  readonly messages: string;
  readonly parser: string;
  readonly perSecond: number;
  readonly megabytesPerSecond: number;
  /** Builds nothing until asked (not a full parse). */
  readonly lazy: boolean;
}

interface TreeNode {
  readonly children: readonly TreeNode[];
}

/**
 * node-hl7-client splits a message only when a part is asked for; this asks for every part down
 * to the subcomponents (depth 5 nodes are leaves whose `children` throws).
 */
function walkNodeHl7(node: TreeNode, depth = 0): void {
  if (depth === 5) return;
  for (const child of node.children) walkNodeHl7(child, depth + 1);
}

/**
 * The parsers compared. `lazy`: builds nothing until asked, so not counted as the fastest parser.
 */
const PARSERS: readonly { name: string; lazy?: boolean; parse: (text: string, bytes: Buffer) => unknown }[] = [
  { name: 'ours: parseHl7Text', parse: (text) => parseHl7Text(text) },
  { name: 'ours: parseHl7 (bytes, MSH-18)', parse: (_text, bytes) => parseHl7(bytes) },
  { name: '@medplum/core Hl7Message.parse', parse: (text) => Hl7Message.parse(text) },
  { name: 'simple-hl7 Parser.parse', parse: (text) => new simpleHl7.Parser({ segmentSeperator: '\r' }).parse(text) },
  { name: 'node-hl7-client new Message (lazy)', lazy: true, parse: (text) => new NodeHl7Message({ text }) },
  { name: 'node-hl7-client, every part read', parse: (text) => walkNodeHl7(new NodeHl7Message({ text }) as unknown as TreeNode) },
];

/** Messages parsed per second by each parser, `seconds` each, after a warm-up. */
export function compareParsers(label: string, buffers: readonly Buffer[], seconds: number): ParseRate[] {
  const texts = buffers.map((b) => b.toString('utf8').replace(/^\uFEFF/, '').replace(/\r\n|\n/g, '\r'));
  const bytes = buffers.reduce((n, b) => n + b.length, 0) / buffers.length;
  return PARSERS.map((p) => {
    for (let i = 0; i < 2000; i++) p.parse(texts[i % texts.length], buffers[i % buffers.length]);
    let count = 0;
    const started = performance.now();
    const end = started + seconds * 1000;
    while (performance.now() < end) {
      for (let i = 0; i < texts.length; i++) p.parse(texts[i], buffers[i]);
      count += texts.length;
    }
    const rate = count / ((performance.now() - started) / 1000);
    return { messages: label, parser: p.name, lazy: p.lazy === true, perSecond: Math.round(rate), megabytesPerSecond: Math.round((rate * bytes) / 1e5) / 10 };
  });
}

/** The fastest full parser other than ours. */
export function fastestOther(rates: readonly ParseRate[]): ParseRate {
  return rates.filter((r) => !r.parser.startsWith('ours') && !r.lazy).reduce((a, b) => (b.perSecond > a.perSecond ? b : a));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
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
  console.log(`${buffers.length} ORU^R01 fixtures, ${seconds} s per parser`);
  const rates = compareParsers('ORU^R01 fixtures', buffers, seconds);
  for (const r of rates) console.log(`${r.parser.padEnd(34)} ${r.perSecond.toLocaleString('en').padStart(10)} msgs/s  ${r.megabytesPerSecond} MB/s`);
  const best = fastestOther(rates);
  console.log(`ours (text) / fastest npm parser (${best.parser}): ${(rates[0].perSecond / best.perSecond).toFixed(2)}x`);
}
