/**
 * Every HL7 v2 message of ../shared/fixtures/hl7v2 (112, from six public projects) goes through
 * the real pipeline — parser, mapping engine, write path, ACK — as if sent by a registered
 * system of the county hospital. Each is stored (AA) or refused with a precise AE/AR, and what
 * each gets is pinned in fixture-outcomes.json (regenerate after an intended change with
 * UPDATE_FIXTURE_OUTCOMES=1, and read the diff). None is dropped: every refusal leaves a dead
 * letter; none crashes the pipeline.
 */
import t from 'tap';
import { readdirSync, readFileSync, writeFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Registry } from 'prom-client';
import { loadConfig } from '../../src/config.js';
import { prepareAudit } from '../../src/audit/index.js';
import { createFhirServices } from '../../src/fhir/index.js';
import { loadMappings } from '../../src/ingest/hl7v2/mapping/index.js';
import { engineMap, IngestPipeline, parseSenders, readEnvelope } from '../../src/ingest/index.js';
import { openTestDb } from '../helpers/db.js';

/** MSA-1 and the first ERR of an ACK, read with the ACK's own field separator (MSH-1). */
function ackOf(ack: Buffer): { code: string; text: string; err?: string } {
  const text = ack.toString('utf8');
  const fs = text[3];
  const segs = text.split('\r').map((s) => s.split(fs));
  const msa = segs.find((s) => s[0] === 'MSA') ?? [];
  const err = segs.find((s) => s[0] === 'ERR');
  // ERR-3 (v2.5+) holds the 0357 code; older versions put everything in ERR-1.
  return { code: msa[1] ?? '', text: msa[3] ?? '', err: err ? (err[3] || err[1] || '').split(/[\^&}]/).find((x) => /^\d{3}$/.test(x)) : undefined };
}

const DIR = new URL('../../../shared/fixtures/hl7v2/', import.meta.url);
const OUTCOMES = new URL('./fixture-outcomes.json', import.meta.url);
const COUNTY = '1233042447101234XX';

interface Outcome {
  readonly ack: string;
  /** ERR-3 (HL7 table 0357 code) of the first error, when refused. */
  readonly code?: string;
}

t.test('every fixture is stored or refused precisely, and kept when refused', async (t) => {
  const files = readdirSync(DIR)
    .filter((f) => f.endsWith('.hl7'))
    .sort();
  t.equal(files.length, 112, 'all fixtures found');

  // One registered sender per MSH-3/MSH-4 pair in the fixtures, all of the county hospital.
  const pairs = new Map<string, { app: string; facility: string }>();
  for (const f of files) {
    const env = readEnvelope(readFileSync(new URL(f, DIR)));
    if (env?.sendingApplication && env.sendingFacility) pairs.set(`${env.sendingApplication}|${env.sendingFacility}`, { app: env.sendingApplication, facility: env.sendingFacility });
  }
  const senders = parseSenders({
    senders: [...pairs.values()].map((p, i) => ({ id: `fixture-${i}`, sendingApplication: p.app, sendingFacility: p.facility, institution: COUNTY, defaultCharset: 'UTF-8' })),
  });

  const config = loadConfig({ BASE_URL: 'http://gateway.test', LOG_LEVEL: 'silent' });
  const tdb = await openTestDb('pglite');
  const spoolDir = mkdtempSync(join(tmpdir(), 'hl7-fixtures-'));
  t.teardown(async () => {
    await tdb.close();
    rmSync(spoolDir, { recursive: true, force: true });
  });
  await prepareAudit(tdb.db, config);
  const fhir = await createFhirServices(config, tdb.db);
  const pipeline = new IngestPipeline({ db: tdb.db, fhir, senders, map: engineMap(loadMappings('mappings/hl7v2')), spoolDir, metrics: new Registry() });

  const actual: Record<string, Outcome> = {};
  let keptMessages = 0;
  for (const f of files) {
    const r = await pipeline.handleMessage(readFileSync(new URL(f, DIR)), { channel: 'mllp', remoteAddress: '127.0.0.1', localPort: 2575 });
    if (r.batch) {
      // A batch: each message handled alone; pinned as the list of their application ACKs.
      t.ok(r.ack.toString('latin1').startsWith('BHS') || r.ack.toString('latin1').startsWith('FHS'), `${f}: answered with a batch acknowledgement`);
      const acks = r.batch.map((m) => ackOf(m.ack));
      for (const [i, m] of r.batch.entries()) if (acks[i].code !== 'AA') t.ok(m.deadLetterId !== undefined, `${f} message ${i + 1}: refused, kept as a dead letter`);
      keptMessages += acks.filter((a) => a.code !== 'AA').length;
      actual[f] = { ack: `batch ${acks.map((a) => (a.code === 'AA' ? 'AA' : `${a.code}${a.err ? `/${a.err}` : ''}`)).join(' ')}` };
      continue;
    }
    const ack = ackOf(r.ack);
    t.ok(['AA', 'AE', 'AR'].includes(ack.code), `${f}: answered with an ACK (${ack.code})`);
    actual[f] = ack.code === 'AA' ? { ack: 'AA' } : { ack: ack.code, ...(ack.err ? { code: ack.err } : {}) };
    if (ack.code !== 'AA') {
      keptMessages++;
      t.ok(r.deadLetterId !== undefined, `${f}: refused, kept as a dead letter`);
      t.ok(ack.text || ack.err, `${f}: the ACK says why`);
    }
  }
  const { rows } = await tdb.db.query<{ n: number }>('SELECT count(*)::int AS n FROM dead_letter');
  t.equal(rows[0].n, keptMessages, 'one dead letter per refused message');

  const summary = Object.values(actual).reduce<Record<string, number>>((acc, o) => ({ ...acc, [o.ack]: (acc[o.ack] ?? 0) + 1 }), {});
  t.comment(`fixtures: ${JSON.stringify(summary)}`);
  if (process.env.UPDATE_FIXTURE_OUTCOMES === '1' || !existsSync(OUTCOMES)) writeFileSync(OUTCOMES, JSON.stringify(actual, null, 2) + '\n');
  t.same(actual, JSON.parse(readFileSync(OUTCOMES, 'utf8')), 'outcomes as pinned in fixture-outcomes.json');
});
