/**
 * Loads one HIS extract from a stream, in bounded memory: bytes → text (UTF-8 or GBK) → records
 * (CSV with a header row, or NDJSON) → rows checked against the kind's columns → batches of
 * BATCH_ROWS rows, each written as one transaction Bundle through the one write path (which
 * resolves the batch's conditional keys together). Up to BATCHES_IN_FLIGHT batches commit at once
 * (one is validated and indexed while another waits on the database); when that many are in
 * flight the stream is not read on (for await pulls the next record only then), so memory holds
 * that many batches at most. A batch that shares a business key, or a patient still being
 * created, with one in flight waits for it, so that rows of one key are stored in file order.
 *
 * Patients are resolved once per file: the first batch naming an MRN carries its conditional
 * create (linked by the MPI like any Patient write); once committed, the Patient's id is kept for
 * the rest of the file (PATIENT_CACHE entries at most) and later rows refer to it directly.
 *
 * A bad row is kept as a dead letter naming its row number and field, and the rows around it
 * load; when a batch is refused as a whole, it is split in halves until the rows at fault are
 * alone, so that only those are rejected. Progress is kept in the ingest_job row after every batch.
 */
import type { Bundle, BundleEntry } from '@medplum/fhirtypes';
import { parse } from 'csv-parse';
import iconv from 'iconv-lite';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { setTimeout } from 'node:timers/promises';
import { GatewayError, isGatewayError } from '../../errors.js';
import { processBundle, type FhirServices, type RequestContext } from '../../fhir/index.js';
import { isTransactionConflict, type Db } from '../../store/index.js';
import { insertDeadLetter } from '../dead-letters.js';
import { checkRow, missingColumns, type ExtractMapping, type Row } from './mappings.js';
import { rowEntries, type RowContext } from './resources.js';
import { finishJob, updateJob, type Job } from './jobs.js';

export type ExtractFormat = 'csv' | 'ndjson';
export const EXTRACT_CHARSETS = ['UTF-8', 'GBK', 'GB18030'] as const;
export type ExtractCharset = (typeof EXTRACT_CHARSETS)[number];

/** Rows written per transaction. */
export const BATCH_ROWS = 250;
/** Batches committing concurrently, each in its own transaction. */
export const BATCHES_IN_FLIGHT = 2;
/** Attempts of a batch that keeps losing to concurrent writers before the load fails. */
const CONFLICT_ATTEMPTS = 5;
/** MRN → Patient id entries kept per load; past this the oldest are forgotten (and resolved again if named again). */
export const PATIENT_CACHE = 50_000;

export interface ExtractDeps {
  readonly db: Db;
  readonly fhir: Pick<FhirServices, 'repository' | 'validator'>;
  readonly translate?: RowContext['translate'];
}

export interface ExtractInput {
  readonly job: Job;
  readonly mapping: ExtractMapping;
  readonly ctx: RequestContext & { institution: string };
  readonly remoteAddress?: string;
  /** Told of each rejected row instead of keeping it as a dead letter (a replay of one already kept). */
  readonly onReject?: (rejected: Rejected) => void;
}

export interface Rejected {
  readonly rowNo: number;
  readonly code: string;
  readonly text: string;
  readonly field?: string;
}

/** A row that passed its column checks, with where it came from. */
interface Checked {
  readonly rowNo: number;
  readonly raw: string;
  readonly row: Row;
}

/** One record of the file: its 1-based data row number (the header is row 0), raw text and fields. */
interface Rec {
  readonly rowNo: number;
  /** The row as written; for CSV, preceded by the header line (a one-row file a replay reads again). */
  readonly raw: string;
  readonly fields?: Readonly<Record<string, unknown>>;
  readonly error?: string;
}

async function* csvRecords(text: AsyncIterable<string> & Readable, mapping: ExtractMapping): AsyncGenerator<Rec> {
  const parser = text.pipe(parse({ bom: true, raw: true, relax_column_count: true, skip_empty_lines: true }));
  let header: string[] | undefined;
  let headerLine = '';
  let rowNo = 0;
  for await (const r of parser as AsyncIterable<{ record: string[]; raw: string }>) {
    if (!header) {
      header = r.record.map((h) => h.trim());
      headerLine = r.raw.replace(/^\uFEFF/, '').replace(/\r?\n$/, '');
      const missing = missingColumns(mapping, header);
      if (missing.length) throw new GatewayError('GW_ERR_BAD_REQUEST', `The header row lacks the required column(s) ${missing.join(', ')} of "${mapping.kind}"`, { expression: missing.map((m) => `header.${m}`) });
      continue;
    }
    rowNo++;
    const raw = `${headerLine}\r\n${r.raw.replace(/\r?\n$/, '')}`;
    if (r.record.length !== header.length) {
      yield { rowNo, raw, error: `has ${r.record.length} fields, the header ${header.length}` };
      continue;
    }
    const fields: Record<string, string> = {};
    header.forEach((h, i) => (fields[h] = r.record[i]));
    yield { rowNo, raw, fields };
  }
  if (!header) throw new GatewayError('GW_ERR_BAD_REQUEST', 'The file is empty: a CSV extract starts with a header row', { expression: 'body' });
}

async function* ndjsonRecords(text: Readable): AsyncGenerator<Rec> {
  let rowNo = 0;
  for await (const line of createInterface({ input: text, crlfDelay: Infinity })) {
    if (line.trim() === '') continue;
    rowNo++;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      yield { rowNo, raw: line, error: `is not JSON: ${(e as Error).message}` };
      continue;
    }
    if (!value || typeof value !== 'object' || Array.isArray(value)) yield { rowNo, raw: line, error: 'is not a JSON object' };
    else yield { rowNo, raw: line, fields: value as Record<string, unknown> };
  }
}

export async function runExtract(deps: ExtractDeps, input: ExtractInput, body: Readable, format: ExtractFormat, charset: ExtractCharset): Promise<Job> {
  const { db, fhir } = deps;
  const { job, mapping, ctx } = input;
  const rowCtx: RowContext = { institution: ctx.institution, ...(deps.translate ? { translate: deps.translate } : {}) };
  /** For a row's business key alone: no terminology lookup (the key does not depend on it, and an unmapped code is counted when the row is written). */
  const keyCtx: RowContext = { institution: ctx.institution };
  const repo = fhir.repository;
  const counts = { read: 0, stored: 0, rejected: 0 };
  /** MRN → `Patient/id`, learnt from committed batches. */
  const patients = new Map<string, string>();

  const reject = async (rowNo: number, raw: string, code: string, text: string, field?: string) => {
    counts.rejected++;
    if (input.onReject) return input.onReject({ rowNo, code, text, ...(field ? { field } : {}) });
    await insertDeadLetter(db, {
      receivedAt: new Date(),
      raw: Buffer.from(raw, 'utf8'),
      charset: 'UTF-8',
      channel: 'http',
      clientId: ctx.clientId,
      remoteAddress: input.remoteAddress,
      messageType: `EXTRACT ${mapping.kind}`,
      controlId: `${job.id}#${rowNo}`,
      ackCode: 'AR',
      errorCode: code,
      errorText: `row ${rowNo}: ${text}`.slice(0, 2000),
      errorLocation: field ? `row ${rowNo}.${field}` : `row ${rowNo}`,
    });
  };

  /**
   * The Bundle of the leading rows up to (not including) the first that repeats a business key of
   * an earlier one (that row goes in the next transaction, so that it updates what the first
   * stored); `taken` says how many. `created`: the MRN of each entry that creates a patient.
   */
  const bundleOf = (rows: readonly Checked[]) => {
    const entry: BundleEntry[] = [];
    const created = new Map<number, string>();
    const urls = new Map<string, string>();
    const keys = new Set<string>();
    let taken = 0;
    for (const { row } of rows) {
      const mrn = String(row.mrn);
      const known = patients.get(mrn);
      const url = known ?? urls.get(mrn) ?? `urn:uuid:${randomUUID()}`;
      const r = rowEntries(mapping.kind, row, rowCtx, url);
      const key = r.entry.request?.url ?? '';
      if (keys.has(key)) break;
      keys.add(key);
      if (r.patient && !known && !urls.has(mrn)) {
        urls.set(mrn, url);
        created.set(entry.length, mrn);
        entry.push(r.patient.entry);
      }
      entry.push(r.entry);
      taken++;
    }
    return { bundle: { resourceType: 'Bundle' as const, type: 'transaction' as const, entry }, created, taken };
  };

  const remember = (mrn: string, location: string | undefined) => {
    const ref = location?.replace(/\/_history\/.*$/, '');
    if (!ref?.startsWith('Patient/')) return;
    patients.delete(mrn);
    patients.set(mrn, ref);
    if (patients.size > PATIENT_CACHE) patients.delete(patients.keys().next().value as string);
  };

  /** One transaction; one that loses to a concurrent writer (deadlock, serialization) is rolled back whole and run again. */
  const commit = async (bundle: Bundle): Promise<Bundle> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await processBundle(repo, bundle, ctx, { minimal: true });
      } catch (e) {
        if (!isTransactionConflict(e) || attempt >= CONFLICT_ATTEMPTS) throw e;
        await setTimeout(50 * attempt + Math.random() * 100 * attempt);
      }
    }
  };

  /**
   * Writes the leading rows (see bundleOf) as one transaction and returns how many it took; a
   * refused transaction is split in halves until the rows at fault are alone and rejected.
   */
  const store = async (rows: readonly Checked[]): Promise<number> => {
    const { bundle, created, taken } = bundleOf(rows);
    try {
      const res = await commit(bundle);
      for (const [i, mrn] of created) remember(mrn, res.entry?.[i]?.response?.location);
      counts.stored += taken;
    } catch (e) {
      if (!isGatewayError(e) || e.statusCode >= 500) throw e;
      if (taken === 1) {
        await reject(rows[0].rowNo, rows[0].raw, e.code, e.message);
      } else {
        const half = Math.ceil(taken / 2);
        await storeAll(rows.slice(0, half));
        await storeAll(rows.slice(half, taken));
      }
    }
    return taken;
  };
  const storeAll = async (rows: readonly Checked[]): Promise<void> => {
    for (let at = 0; at < rows.length; ) at += await store(rows.slice(at));
  };

  /**
   * The keys a batch writes: its rows' conditional update URLs, and the MRNs whose Patient it may
   * create (not yet known). Two batches sharing one run one after the other.
   */
  const keysOf = (batch: readonly Checked[]): Set<string> => {
    const keys = new Set<string>();
    for (const { row } of batch) {
      const mrn = String(row.mrn);
      if (!patients.has(mrn)) keys.add(`Patient|${mrn}`);
      keys.add(rowEntries(mapping.kind, row, keyCtx, '').entry.request?.url ?? '');
    }
    return keys;
  };
  const inFlight = new Map<Promise<void>, Set<string>>();
  let failure: unknown;
  /** Progress is written in batch completion order, one update at a time. */
  let progress: Promise<void> = Promise.resolve();
  /** Starts writing a batch once a slot is free and no batch in flight shares its keys. */
  const write = async (batch: Checked[]) => {
    if (batch.length === 0) return;
    for (;;) {
      if (failure) throw failure;
      const keys = keysOf(batch);
      const blocking = [...inFlight].filter(([, k]) => [...keys].some((x) => k.has(x))).map(([p]) => p);
      if (blocking.length === 0 && inFlight.size < BATCHES_IN_FLIGHT) {
        const done: Promise<void> = storeAll(batch)
          .then(() => {
            progress = progress.then(() => updateJob(db, job.id, counts));
            return progress;
          })
          .catch((e: unknown) => {
            failure ??= e;
          })
          .finally(() => inFlight.delete(done));
        inFlight.set(done, keys);
        return;
      }
      await Promise.race(blocking.length ? blocking : inFlight.keys());
    }
  };
  /** Waits for every batch in flight; throws the first failure. */
  const drain = async () => {
    await Promise.all(inFlight.keys());
    await progress.catch(() => undefined);
    if (failure) throw failure;
  };

  try {
    const text = body.pipe(iconv.decodeStream(charset === 'UTF-8' ? 'utf8' : charset.toLowerCase())) as unknown as Readable & AsyncIterable<string>;
    const records = format === 'csv' ? csvRecords(text, mapping) : ndjsonRecords(text);
    let batch: Checked[] = [];
    for await (const rec of records) {
      counts.read++;
      if (rec.error || !rec.fields) {
        await reject(rec.rowNo, rec.raw, 'GW_ERR_BAD_REQUEST', `the row ${rec.error ?? 'is empty'}`);
        continue;
      }
      const checked = checkRow(mapping, rec.fields);
      if ('errors' in checked) {
        await reject(rec.rowNo, rec.raw, 'GW_ERR_BAD_REQUEST', checked.errors.map((x) => x.message).join('; '), checked.errors[0].field);
        continue;
      }
      batch.push({ rowNo: rec.rowNo, raw: rec.raw, row: checked.row });
      if (batch.length >= BATCH_ROWS) {
        await write(batch);
        batch = [];
      }
    }
    await write(batch);
    await drain();
    return await finishJob(db, job.id, counts, 'done');
  } catch (e) {
    await Promise.all(inFlight.keys());
    // A CSV that cannot be read on (an unclosed quote) stops the load at that point: the client's error.
    const csv = (e as { code?: unknown }).code;
    const err = typeof csv === 'string' && csv.startsWith('CSV_') ? new GatewayError('GW_ERR_BAD_REQUEST', `The CSV cannot be read after row ${counts.read}: ${(e as Error).message}`, { expression: `row ${counts.read + 1}` }) : e;
    const message = isGatewayError(err) ? err.message : `load stopped: ${(err as Error).message}`;
    await finishJob(db, job.id, counts, 'failed', message);
    throw err;
  }
}
