/**
 * A HIS lab-results extract of BENCH_ROWS rows (default 1,000,000) in GBK with 3 malformed rows,
 * streamed over HTTP to POST /ingest/extract/lab-results: prints rows/s, the job's counts and the
 * peak RSS of the process (the gateway runs in it). `npm run bench:extract`. Not part of npm test.
 *
 * The file is generated into a temporary directory and removed afterwards. The rows name 5,000
 * patients and 20 lab items; rows 1,000, 500,000 and the last but one (or proportionally fewer in a
 * smaller run) are malformed: a bad number, a missing report number, a short row.
 *
 * Environment (all optional):
 *   BENCH_ROWS           data rows (default 1000000)
 *   BENCH_DATABASE_URL   PostgreSQL to load into (default: embedded PGlite in memory)
 */
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import iconv from 'iconv-lite';
import pg from 'pg';
import { request } from 'undici';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { openStore } from '../src/store/index.js';
import { prepareAudit } from '../src/audit/index.js';
import { createFhirServices } from '../src/fhir/index.js';
import { buildApp } from '../src/app.js';

const ROWS = Number(process.env.BENCH_ROWS || 1_000_000);
const DATABASE_URL = process.env.BENCH_DATABASE_URL || undefined;
const HEADER = 'report_no,item_code,item_name,mrn,patient_name,value,unit,ref_low,ref_high,flag,result_time';
const ITEMS = Array.from({ length: 20 }, (_, i) => [`L${String(i).padStart(3, '0')}`, `检验项目${i}`]);

async function writeFile(file: string): Promise<number[]> {
  const bad = [Math.min(1000, Math.floor(ROWS / 4)), Math.floor(ROWS / 2), ROWS - 1];
  const out = createWriteStream(file);
  const write = async (s: string) => {
    if (!out.write(iconv.encode(s, 'gbk'))) await once(out, 'drain');
  };
  await write(HEADER + '\r\n');
  let chunk = '';
  for (let i = 1; i <= ROWS; i++) {
    const [code, name] = ITEMS[i % ITEMS.length];
    const mrn = `B${String(i % 5000).padStart(5, '0')}`;
    const time = `2026-11-${String(1 + (i % 28)).padStart(2, '0')} ${String(i % 24).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}:00`;
    if (i === bad[0]) chunk += `R${i},${code},${name},${mrn},患者${i % 5000},4.2,mmol/L,三点九,6.1,N,${time}\r\n`;
    else if (i === bad[1]) chunk += `,${code},${name},${mrn},患者${i % 5000},4.2,mmol/L,3.9,6.1,N,${time}\r\n`;
    else if (i === bad[2]) chunk += `R${i},${code}\r\n`;
    else chunk += `R${Math.floor(i / ITEMS.length)},${code},${name},${mrn},患者${i % 5000},${(3 + (i % 50) / 10).toFixed(1)},mmol/L,3.9,6.1,${i % 7 ? 'N' : 'H'},${time}\r\n`;
    if (chunk.length > 1 << 16) {
      await write(chunk);
      chunk = '';
    }
  }
  await write(chunk);
  out.end();
  await once(out, 'finish');
  return bad;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-extract-'));
  try {
    const file = join(dir, 'lab-results.gbk.csv');
    const bad = await writeFile(file);
    console.log(`extract: ${ROWS} rows, ${(statSync(file).size / 1e6).toFixed(1)} MB GBK, malformed rows ${bad.join(', ')}`);

    const config = loadConfig({ LOG_LEVEL: 'silent', HL7_SPOOL_DIR: join(dir, 'spool'), ...(DATABASE_URL ? { DATABASE_URL } : {}) });
    const schema = `bench_extract_${process.pid}`;
    if (DATABASE_URL) {
      const admin = new pg.Client({ connectionString: DATABASE_URL });
      await admin.connect();
      await admin.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await admin.end();
    }
    const db = await openStore({ databaseUrl: DATABASE_URL, schema: DATABASE_URL ? schema : undefined });
    await prepareAudit(db, config);
    const fhir = await createFhirServices(config, db);
    const app = await buildApp(config, { db, logger: createLogger('silent'), fhir });
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    const token = await app.auth.mint('township1-his');

    global.gc?.();
    const baseline = process.memoryUsage().rss;
    console.log(`gateway started: RSS ${(baseline / 1e6).toFixed(0)} MB before the load`);
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
    const started = performance.now();
    const progress = setInterval(() => console.log(`  … rss ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB`), 10_000);
    const res = await request(`${address}/ingest/extract/lab-results`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'text/csv; charset=GBK' },
      body: createReadStream(file),
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    const job = (await res.body.json()) as { rowsRead: number; rowsStored: number; rowsRejected: number; status: string };
    const seconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    clearInterval(progress);
    console.log(`status ${res.statusCode} job ${job.status}: read ${job.rowsRead}, stored ${job.rowsStored}, rejected ${job.rowsRejected}`);
    console.log(`${(job.rowsRead / seconds).toFixed(0)} rows/s over ${seconds.toFixed(1)} s; peak RSS ${(peak / 1e6).toFixed(0)} MB during the load (limit 300 MB: ${peak < 300e6 ? 'ok' : 'EXCEEDED'}), ${((peak - baseline) / 1e6).toFixed(0)} MB above the started gateway`);
    await app.close();
    if (DATABASE_URL) await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
