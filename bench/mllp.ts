/**
 * HL7 v2 over MLLP, end to end: a message goes in, is parsed, mapped and committed in one
 * transaction, and the ACK comes out. Each connection sends its next message only once the ACK of
 * the previous one is back (durable ACKs, as an interface engine in original mode does), for a
 * fixed time; the figure is committed messages per second and the ACK latency seen by the sender.
 * Run by bench/run.ts against the gateway it started.
 */
import { countyLabOru } from '../test/helpers/hl7-samples.js';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { frameMllp, MllpFrameDecoder } from '../src/ingest/mllp/index.js';
import { percentile } from './stats.js';

export interface MllpWorkload {
  readonly name: string;
  readonly description: string;
  readonly connections: number;
  /** The n-th message of connection `conn`: distinct control id, order and visit numbers. */
  message(conn: number, n: number): { controlId: string; bytes: Buffer };
}

export interface MllpResult {
  readonly name: string;
  readonly description: string;
  readonly connections: number;
  readonly messagesPerSecond: number;
  readonly latencyP50Ms: number;
  readonly latencyP95Ms: number;
  readonly latencyP99Ms: number;
  /** ACKs received (any code). */
  readonly messages: number;
  /** ACKs other than AA, or an AA naming another control id. */
  readonly nonAa: number;
  /** Connections that failed (socket error, closed, no ACK in time). */
  readonly errors: number;
  readonly durationSeconds: number;
  /** A few of the non-AA ACKs and errors, for the report. */
  readonly samples: readonly string[];
}


/** Residents the messages are spread over (each message updates its Patient). */
const PATIENTS = 1000;

/** ORU^R01 of the county LIS (QSLIS/QSXRMYY, UTF-8): one order with `results` OBX (10 or 20). */
function oru(tag: string, conn: number, n: number, results: number): { controlId: string; bytes: Buffer } {
  const controlId = `${tag}O${conn}-${n}`;
  const p = (conn * 7919 + n) % PATIENTS;
  return countyLabOru({ controlId, mrn: `${tag}M${p}`, given: `测试${p}`, results });
}

/** ADT^A01 of the county HIS (QSHIS/QSXRMYY): an admission with a new visit number. */
function adt(tag: string, conn: number, n: number): { controlId: string; bytes: Buffer } {
  const controlId = `${tag}A${conn}-${n}`;
  const p = (conn * 7919 + n) % PATIENTS;
  const text = [
    `MSH|^~\\&|QSHIS|QSXRMYY|COUNTY-HIE|QS|20250301083000+0800||ADT^A01^ADT_A01|${controlId}|P|2.5||||||UNICODE UTF-8`,
    'EVN|A01|20250301083000+0800',
    `PID|1||${tag}M${p}^^^QSHIS^MR||李^住院${p}||19650312|M`,
    `PV1|1|I|W1^101^1||||||||||||||||V${controlId}`,
  ].join('\r');
  return { controlId, bytes: Buffer.from(text, 'utf8') };
}

/** One message of each kind the MLLP workloads send (for the parser comparison). */
export function sampleMessages(): { label: string; bytes: Buffer }[] {
  return [
    { label: 'ORU^R01 10 OBX', bytes: oru('S', 0, 0, 10).bytes },
    { label: 'ORU^R01 20 OBX', bytes: oru('S', 0, 0, 20).bytes },
    { label: 'ADT^A01', bytes: adt('S', 0, 0).bytes },
  ];
}

/**
 * ORU^R01 with 10 and 20 OBX and ADT^A01, each at the given connection counts (1, 4 and 16 by
 * default).
 */
export function mllpWorkloads(connectionCounts: readonly number[] = [1, 4, 16]): MllpWorkload[] {
  // A run-specific tag keeps control ids distinct from any earlier run on the same database.
  const tag = `B${randomBytes(3).toString('hex').toUpperCase()}`;
  const out: MllpWorkload[] = [];
  for (const results of [10, 20]) {
    for (const connections of connectionCounts) {
      out.push({
        name: `MLLP ORU^R01 ${results} OBX ×${connections}`,
        description: `ORU^R01 with ${results} OBX over MLLP, ${connections} connection(s), next message after the ACK`,
        connections,
        message: (conn, n) => oru(`${tag}R${results}C${connections}`, conn, n, results),
      });
    }
  }
  for (const connections of connectionCounts) {
    out.push({
      name: `MLLP ADT^A01 ×${connections}`,
      description: `ADT^A01 (Patient and Encounter) over MLLP, ${connections} connection(s), next message after the ACK`,
      connections,
      message: (conn, n) => adt(`${tag}C${connections}`, conn, n),
    });
  }
  return out;
}

/** MSA-1 and MSA-2 of an ACK. */
function msa(ack: Buffer): { code: string; controlId: string } {
  const seg = ack
    .toString('utf8')
    .split(/\r\n?|\n/)
    .find((s) => s.startsWith('MSA|'));
  const f = seg?.split('|') ?? [];
  return { code: f[1] ?? '', controlId: f[2] ?? '' };
}

interface Tally {
  latencies: number[];
  nonAa: number;
  errors: number;
  samples: string[];
}

/** One sender: sends, waits for the ACK, sends the next, until `end`. */
function sender(host: string, port: number, w: MllpWorkload, conn: number, end: number, tally: Tally): Promise<void> {
  return new Promise((resolve) => {
    const decoder = new MllpFrameDecoder(64 * 1024 * 1024);
    const socket = net.connect({ host, port });
    socket.setNoDelay(true);
    let n = 0;
    let current: { controlId: string; sentAt: number } | undefined;
    let done = false;
    const finish = (problem?: string) => {
      if (done) return;
      done = true;
      clearTimeout(watchdog);
      if (problem) {
        tally.errors++;
        if (tally.samples.length < 5) tally.samples.push(`${w.name} connection ${conn}: ${problem}`);
      }
      socket.destroy();
      resolve();
    };
    // No ACK for 30 s past the end of the run: the connection counts as failed.
    const watchdog = setTimeout(() => finish(`no ACK for ${current?.controlId ?? 'the first message'}`), end - performance.now() + 30_000);
    const next = () => {
      if (performance.now() >= end) return finish();
      const m = w.message(conn, n++);
      current = { controlId: m.controlId, sentAt: performance.now() };
      socket.write(frameMllp(m.bytes));
    };
    socket.once('connect', next);
    socket.on('data', (chunk: Buffer) => {
      for (const frame of decoder.push(chunk).frames) {
        if (!current) return finish('an ACK nobody asked for');
        tally.latencies.push(performance.now() - current.sentAt);
        const a = msa(frame);
        if (a.code !== 'AA' || a.controlId !== current.controlId) {
          tally.nonAa++;
          if (tally.samples.length < 5) tally.samples.push(`${current.controlId}: ${frame.toString('utf8').replace(/\r/g, '\\r').slice(0, 400)}`);
        }
        current = undefined;
        next();
      }
    });
    socket.on('error', (err) => finish(err.message));
    socket.on('close', () => finish(current ? `closed while waiting for the ACK of ${current.controlId}` : undefined));
  });
}

export async function runMllp(host: string, port: number, w: MllpWorkload, durationSeconds: number): Promise<MllpResult> {
  const tally: Tally = { latencies: [], nonAa: 0, errors: 0, samples: [] };
  const started = performance.now();
  const end = started + durationSeconds * 1000;
  await Promise.all(Array.from({ length: w.connections }, (_, conn) => sender(host, port, w, conn, end, tally)));
  const elapsed = (performance.now() - started) / 1000;
  const sorted = [...tally.latencies].sort((a, b) => a - b);
  const round = (ms: number) => Math.round(ms * 10) / 10;
  return {
    name: w.name,
    description: w.description,
    connections: w.connections,
    messagesPerSecond: Math.round(((tally.latencies.length - tally.nonAa) / elapsed) * 10) / 10,
    latencyP50Ms: round(percentile(sorted, 50)),
    latencyP95Ms: round(percentile(sorted, 95)),
    latencyP99Ms: round(percentile(sorted, 99)),
    messages: tally.latencies.length,
    nonAa: tally.nonAa,
    errors: tally.errors,
    durationSeconds: Math.round(elapsed * 100) / 100,
    samples: tally.samples,
  };
}
