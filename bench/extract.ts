/**
 * A HIS lab-results extract of BENCH_ROWS rows (default 1,000,000) in GBK with 3 malformed rows,
 * streamed over HTTP to POST /ingest/extract/lab-results of a gateway running as its own process
 * (the build in dist/, as `npm start` runs it): prints rows/s, the job's counts, the rejected row
 * numbers, and the gateway process's resident memory (peak during the load, and the kernel's
 * high-water mark VmHWM). `npm run bench:extract` builds first. Not part of npm test.
 *
 * The file is generated into a temporary directory and removed afterwards. Its rows name the
 * township registrations of 5,000 residents (realistic names, from the MPI population generator)
 * and 20 lab items. Rows 1,000, BENCH_ROWS/2 and BENCH_ROWS-1 are malformed (a bad number, a missing
 * report number, a short row). The bench checks that exactly those are rejected, that stored +
 * rejected = read, and that the Observations found by search equal the rows stored.
 *
 * Environment (all optional):
 *   BENCH_ROWS           data rows (default 1000000)
 *   BENCH_BACKEND        postgres (default) or pglite (embedded, in a temporary data directory)
 *   BENCH_DATABASE_URL   PostgreSQL server (default postgres://postgres@127.0.0.1:5432/test); the
 *                        load goes into a fresh schema, dropped afterwards
 *   BENCH_SERVER_ENTRY   gateway entry (default dist/server.js)
 *   BENCH_NODE_ARGS      node options of the gateway process (default: those of `npm start`, from
 *                        package.json, so that the figures are those of the gateway as it is run)
 */
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import iconv from 'iconv-lite';
import { request } from 'undici';
import { population } from '../test/helpers/mpi-population.js';
import { createBenchDatabase, gatewayNodeArgs, startGateway, type BenchDatabase, type Gateway } from './gateway.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ROWS = Number(process.env.BENCH_ROWS || 1_000_000);
const BACKEND = process.env.BENCH_BACKEND === 'pglite' ? 'pglite' : 'postgres';
const DATABASE_URL = process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
const ENTRY = process.env.BENCH_SERVER_ENTRY || join(ROOT, 'dist', 'server.js');
const NODE_ARGS = gatewayNodeArgs(ROOT);
const TOWNSHIP = '1233042447102341XF';
const HEADER = 'report_no,item_code,item_name,mrn,patient_name,value,unit,ref_low,ref_high,flag,result_time';
const ITEMS = Array.from({ length: 20 }, (_, i) => [`L${String(i).padStart(3, '0')}`, `检验项目${i}`]);
const PATIENTS = 5000;

/** MRN and name of the township registration of each of 5,000 residents. */
function patients(): [string, string][] {
  const out: [string, string][] = [];
  for (const reg of population(PATIENTS)) {
    if (reg.site !== 'township') continue;
    const name = reg.patient.name?.[0];
    const text = name?.text ?? `${name?.family ?? ''}${(name?.given ?? []).join('')}`;
    out.push([`B${String(reg.person).padStart(5, '0')}`, text.replace(/[,"\r\n]/g, ' ')]);
  }
  return out.sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

/** Writes the file; returns the malformed row numbers. */
async function writeFile(file: string): Promise<number[]> {
  const people = patients();
  const bad = [Math.min(1000, Math.floor(ROWS / 4)), Math.floor(ROWS / 2), ROWS - 1];
  const out = createWriteStream(file);
  const write = async (s: string) => {
    if (!out.write(iconv.encode(s, 'gbk'))) await once(out, 'drain');
  };
  await write(HEADER + '\r\n');
  let chunk = '';
  for (let i = 1; i <= ROWS; i++) {
    const [code, item] = ITEMS[i % ITEMS.length];
    const [mrn, name] = people[i % people.length];
    const time = `2026-11-${String(1 + (i % 28)).padStart(2, '0')} ${String(i % 24).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}:00`;
    if (i === bad[0]) chunk += `R${i},${code},${item},${mrn},${name},4.2,mmol/L,三点九,6.1,N,${time}\r\n`;
    else if (i === bad[1]) chunk += `,${code},${item},${mrn},${name},4.2,mmol/L,3.9,6.1,N,${time}\r\n`;
    else if (i === bad[2]) chunk += `R${i},${code}\r\n`;
    else chunk += `R${Math.floor(i / ITEMS.length)},${code},${item},${mrn},${name},${(3 + (i % 50) / 10).toFixed(1)},mmol/L,3.9,6.1,${i % 7 ? 'N' : 'H'},${time}\r\n`;
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

/** CPU time (user + system) a process has used so far, in seconds, from /proc/<pid>/stat. */
function cpuOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  // After the command: state is field 3, utime 14 and stime 15 (1-based, in clock ticks of 1/100 s).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Resident memory of a process, from /proc: current (VmRSS) and the high-water mark (VmHWM), in bytes. */
function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

async function token(base: string, client: string): Promise<string> {
  const res = await request(`${base}/auth/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${client}:${client}-secret`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
  });
  return ((await res.body.json()) as { access_token: string }).access_token;
}

async function getJson<T>(url: string, bearer: string): Promise<T> {
  const res = await request(url, { headers: { authorization: `Bearer ${bearer}` } });
  if (res.statusCode !== 200) throw new Error(`GET ${url}: ${res.statusCode} ${await res.body.text()}`);
  return (await res.body.json()) as T;
}

interface JobJson {
  id: string;
  status: string;
  rowsRead: number;
  rowsStored: number;
  rowsRejected: number;
}

const mb = (b: number) => `${(b / 1e6).toFixed(0)} MB`;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-extract-'));
  let database: BenchDatabase | undefined;
  let gateway: Gateway | undefined;
  try {
    const file = join(dir, 'lab-results.gbk.csv');
    const bad = await writeFile(file);
    console.log(`extract: ${ROWS} rows, ${(statSync(file).size / 1e6).toFixed(1)} MB GBK, malformed rows ${bad.join(', ')}`);

    database = BACKEND === 'postgres' ? await createBenchDatabase(DATABASE_URL, 'database') : undefined;
    gateway = await startGateway({
      root: ROOT,
      entry: ENTRY,
      nodeArgs: NODE_ARGS,
      databaseUrl: database?.url,
      env: { MLLP_PORT: '0', HL7_SPOOL_DIR: join(dir, 'spool'), TOKEN_TTL_SECONDS: '86400', ...(database ? {} : { DATA_DIR: join(dir, 'data') }) },
    });
    const pid = gateway.pid as number;
    const base = gateway.baseUrl;
    const township = await token(base, 'township1-his');
    const admin = await token(base, 'admin');
    const started = memoryOf(pid);
    console.log(`gateway (${gateway.command}, ${BACKEND}) started: RSS ${mb(started.rss)}, VmHWM ${mb(started.hwm)} so far`);

    const cpu0 = cpuOf(pid);
    let peak = started.rss;
    const sampler = setInterval(() => (peak = Math.max(peak, memoryOf(pid).rss)), 100);
    const t0 = performance.now();
    const progress = setInterval(() => {
      void getJson<{ items: JobJson[] }>(`${base}/ingest/jobs`, township).then(
        ({ items }) => {
          const job = items.find((j) => j.status === 'running');
          const s = (performance.now() - t0) / 1000;
          if (job) console.log(`  ${s.toFixed(0)} s: read ${job.rowsRead}, stored ${job.rowsStored} (${(job.rowsRead / s).toFixed(0)} rows/s), RSS ${mb(memoryOf(pid).rss)}`);
        },
        () => undefined,
      );
    }, 15_000);
    const res = await request(`${base}/ingest/extract/lab-results`, {
      method: 'POST',
      headers: { authorization: `Bearer ${township}`, 'content-type': 'text/csv; charset=GBK' },
      body: createReadStream(file),
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    const body = await res.body.text();
    const seconds = (performance.now() - t0) / 1000;
    clearInterval(sampler);
    clearInterval(progress);
    if (res.statusCode !== 200) throw new Error(`load answered ${res.statusCode}: ${body.slice(0, 500)}`);
    const job = JSON.parse(body) as JobJson;
    const end = memoryOf(pid);
    const cpu = cpuOf(pid) - cpu0;
    peak = Math.max(peak, end.rss);

    const dead = await getJson<{ items: { controlId: string; errorLocation?: string }[] }>(`${base}/ingest/dead-letters?type=${encodeURIComponent('EXTRACT lab-results')}&_count=100`, admin);
    const rejectedRows = dead.items
      .filter((d) => d.controlId.startsWith(`${job.id}#`))
      .map((d) => Number(d.controlId.split('#')[1]))
      .sort((a, b) => a - b);
    const system = `https://fhir.county-hie.cn/sid/lab-result/${TOWNSHIP}`;
    const found = await getJson<{ total: number }>(`${base}/fhir/Observation?identifier=${encodeURIComponent(`${system}|`)}&_summary=count`, township);

    console.log(`status ${res.statusCode}, job ${job.status}: read ${job.rowsRead}, stored ${job.rowsStored}, rejected ${job.rowsRejected} (rows ${rejectedRows.join(', ')})`);
    console.log(`${(job.rowsRead / seconds).toFixed(0)} rows/s over ${seconds.toFixed(1)} s; gateway CPU ${cpu.toFixed(1)} s (${((cpu * 1000) / job.rowsRead).toFixed(2)} ms per row)`);
    console.log(`gateway RSS: ${mb(started.rss)} started, peak ${mb(peak)} during the load (limit 300 MB: ${peak < 300e6 ? 'ok' : 'EXCEEDED'}), ${mb(end.rss)} at the end; VmHWM ${mb(end.hwm)}`);
    const checks: [string, boolean][] = [
      ['stored + rejected = read', job.rowsStored + job.rowsRejected === job.rowsRead],
      [`read = ${ROWS}`, job.rowsRead === ROWS],
      [`rejected rows = ${bad.join(', ')}`, rejectedRows.join(',') === bad.join(',')],
      [`Observations found = stored (${found.total})`, found.total === job.rowsStored],
    ];
    for (const [what, ok] of checks) console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${what}`);
    if (checks.some(([, ok]) => !ok)) process.exitCode = 1;
  } finally {
    await gateway?.stop();
    await database?.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
