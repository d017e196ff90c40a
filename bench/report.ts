/**
 * The one table of `npm run bench`: a row per workload and backend, with the baselines measured
 * in the same run, our figures as ratios to them, and the issue's targets met or not.
 */

export type Backend = 'postgres' | 'pglite' | 'baseline';

export interface Row {
  readonly workload: string;
  readonly backend: Backend;
  readonly unit: string;
  readonly throughput: number;
  readonly p50?: number;
  readonly p95?: number;
  readonly p99?: number;
  readonly errors?: number;
  /** CPU of the server process (100 = one core) and its highest RSS, over the workload. */
  readonly cpuPercent?: number;
  readonly peakRssMb?: number;
  /** Busy share of the whole machine (all processes, all cores) over the workload. */
  readonly hostBusyPercent?: number;
  /** Ratios to baselines, e.g. "0.52× fastify+pg". */
  vs?: string[];
  targets?: { text: string; met: boolean }[];
  readonly note?: string;
}

const fmt = (n: number | undefined, digits = 0) => (n === undefined ? '-' : n.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: 0 }));
const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}×` : '-');

function find(rows: readonly Row[], backend: Backend, workload: string | RegExp): Row | undefined {
  return rows.find((r) => r.backend === backend && (typeof workload === 'string' ? r.workload === workload : workload.test(r.workload)));
}

/** Published reference figures of the issue, per 2 cores (this machine), for context only. */
const PUBLISHED = {
  crudPer2Cores: { hapi: 2 * 245, medplum: 2 * 85 },
  importPer2Cores: { blaze: (4100 / 8) * 2 },
  hl7Per2Cores: { ensemble: 2 * 200, iguana: 490 },
};

/**
 * Fills `vs` and `targets` of the rows from the baselines among them. Targets (issue 10) apply to
 * the PostgreSQL rows, except the PGlite ones; RSS ≤ 300 MB applies to every gateway row.
 */
export function applyTargets(rows: Row[]): void {
  const base = (name: string) => find(rows, 'baseline', name);
  const pgRead = base('fastify+pg read by id');
  const pgCreate = base('fastify+pg create');
  const mpRead = base('medplum fhir-router read by id');
  const mpCreate = base('medplum fhir-router create');
  const liteRead = base('PGlite raw SELECT by id');
  const liteInsert = base('PGlite raw INSERT');
  const add = (r: Row, text: string, met: boolean) => (r.targets ??= []).push({ text, met });
  const vs = (r: Row, b: Row | undefined, label: string) => {
    if (b) (r.vs ??= []).push(`${ratio(r.throughput, b.throughput)} ${label}`);
  };
  for (const r of rows) {
    if (r.backend === 'baseline') continue;
    const pg = r.backend === 'postgres';
    if (/^CRUD mix/.test(r.workload)) {
      (r.vs ??= []).push(`${ratio(r.throughput, PUBLISHED.crudPer2Cores.hapi)} HAPI pub.`, `${ratio(r.throughput, PUBLISHED.crudPer2Cores.medplum)} Medplum pub.`);
      if (pg) add(r, '≥ 2,500 req/s, p99 ≤ 25 ms', r.throughput >= 2500 && (r.p99 ?? Infinity) <= 25);
    }
    if (r.workload === 'read Patient') {
      if (pg) {
        vs(r, pgRead, 'fastify+pg');
        vs(r, mpRead, 'medplum');
        if (pgRead) add(r, '≥ 0.70× fastify+pg read', r.throughput >= 0.7 * pgRead.throughput);
      } else {
        vs(r, liteRead, 'PGlite raw');
        vs(r, mpRead, 'medplum');
        if (liteRead) add(r, '≥ 0.70× PGlite raw SELECT', r.throughput >= 0.7 * liteRead.throughput);
      }
    }
    if (r.workload === 'create Patient') {
      if (pg) {
        vs(r, pgCreate, 'fastify+pg');
        vs(r, mpCreate, 'medplum');
        if (pgCreate) add(r, '≥ 0.50× fastify+pg create', r.throughput >= 0.5 * pgCreate.throughput);
      } else {
        vs(r, liteInsert, 'PGlite raw');
        vs(r, mpCreate, 'medplum');
        add(r, '≥ 1,000 creates/s', r.throughput >= 1000);
      }
    }
    if (/^import Bundles/.test(r.workload)) {
      (r.vs ??= []).push(`${ratio(r.throughput, PUBLISHED.importPer2Cores.blaze)} Blaze pub.`);
      if (pg) add(r, '≥ 10,000 resources/s', r.throughput >= 10_000);
    }
    if (/^MLLP ORU\^R01 10 OBX/.test(r.workload)) {
      (r.vs ??= []).push(`${ratio(r.throughput, PUBLISHED.hl7Per2Cores.ensemble)} Ensemble pub.`);
      if (pg && /×16$/.test(r.workload)) add(r, '≥ 1,500 msg/s', r.throughput >= 1500);
    }
    if (/^subscription 200\/s/.test(r.workload) && pg) add(r, 'p50 ≤ 20 ms, p99 ≤ 100 ms', (r.p50 ?? Infinity) <= 20 && (r.p99 ?? Infinity) <= 100);
    if (r.peakRssMb !== undefined && r.peakRssMb > 0) add(r, 'RSS ≤ 300 MB', r.peakRssMb <= 300);
  }
  // HL7 parsing: ours against the fastest full npm parser on the same messages.
  for (const r of rows.filter((x) => x.backend === 'baseline' && x.workload.startsWith('parse ') && x.workload.includes('ours: parseHl7Text'))) {
    const messages = r.workload.slice('parse '.length).split(': ')[0];
    const others = rows.filter((x) => x.backend === 'baseline' && x.workload.startsWith(`parse ${messages}: `) && !x.workload.includes('ours') && !x.workload.includes('(lazy)'));
    const best = others.reduce<Row | undefined>((a, b) => (a === undefined || b.throughput > a.throughput ? b : a), undefined);
    if (best) {
      (r.vs ??= []).push(`${ratio(r.throughput, best.throughput)} ${best.workload.split(': ')[1]}`);
      add(r, '≥ 1.2× fastest npm parser', r.throughput >= 1.2 * best.throughput);
    }
  }
}

/** The markdown table printed at the end of the run and pasted into the README. */
export function table(rows: readonly Row[]): string {
  const header = ['workload', 'backend', 'throughput', 'unit', 'p50 ms', 'p95 ms', 'p99 ms', 'errors', 'CPU %', 'RSS MB', 'vs baselines', 'target', 'met'];
  const cells = rows.map((r) => [
    r.workload,
    r.backend,
    fmt(r.throughput),
    r.unit,
    fmt(r.p50, 1),
    fmt(r.p95, 1),
    fmt(r.p99, 1),
    r.errors === undefined ? '-' : String(r.errors),
    fmt(r.cpuPercent),
    fmt(r.peakRssMb),
    (r.vs ?? []).join(', ') || '-',
    (r.targets ?? []).map((t) => t.text).join('; ') || '-',
    (r.targets ?? []).map((t) => (t.met ? 'met' : 'NOT met')).join('; ') || '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i].length)));
  const left = new Set([0, 1, 3, 10, 11, 12]);
  const line = (c: string[]) => `| ${c.map((x, i) => (left.has(i) ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (left.has(i) ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...cells.map(line)].join('\n');
}
