/**
 * Loads one HIS extract from a stream, in bounded memory: bytes → text (UTF-8 or GBK) → records
 * (CSV with a header row, or NDJSON) → rows checked against the kind's columns → batches written
 * as transaction Bundles through the one write path. A bad row is kept as a dead letter naming
 * its row number and field, and the rows around it load; when a batch is refused as a whole, its
 * rows are written one by one so that only the bad ones are rejected. Progress is kept in the
 * ingest_job row after every batch.
 */
import type { BundleEntry } from '@medplum/fhirtypes';
import { parse } from 'csv-parse';
import iconv from 'iconv-lite';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { GatewayError, isGatewayError } from '../../errors.js';
import { processBundle, Repository, type FhirServices, type RequestContext } from '../../fhir/index.js';
import type { Db } from '../../store/index.js';
import { insertDeadLetter } from '../dead-letters.js';
import { checkRow, missingColumns, type ExtractMapping, type Row } from './mappings.js';
import { rowEntries, type RowContext } from './resources.js';
import { finishJob, updateJob, type Job } from './jobs.js';

export type ExtractFormat = 'csv' | 'ndjson';
export const EXTRACT_CHARSETS = ['UTF-8', 'GBK', 'GB18030'] as const;
export type ExtractCharset = (typeof EXTRACT_CHARSETS)[number];

/** Rows written per transaction. */
export const BATCH_ROWS = 200;

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
}

/** One record of the file: its 1-based data row number (the header is row 0), raw text and fields. */
interface Rec {
  readonly rowNo: number;
  readonly raw: string;
  readonly fields?: Readonly<Record<string, unknown>>;
  readonly error?: string;
}

async function* csvRecords(text: AsyncIterable<string> & Readable, mapping: ExtractMapping): AsyncGenerator<Rec> {
  const parser = text.pipe(parse({ bom: true, raw: true, relax_column_count: true, skip_empty_lines: true }));
  let header: string[] | undefined;
  let rowNo = 0;
  for await (const r of parser as AsyncIterable<{ record: string[]; raw: string }>) {
    if (!header) {
      header = r.record.map((h) => h.trim());
      const missing = missingColumns(mapping, header);
      if (missing.length) throw new GatewayError('GW_ERR_BAD_REQUEST', `The header row lacks the required column(s) ${missing.join(', ')} of "${mapping.kind}"`, { expression: missing.map((m) => `header.${m}`) });
      continue;
    }
    rowNo++;
    const raw = r.raw.replace(/\r?\n$/, '');
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
  const repo = new Repository({ db, validator: fhir.validator, search: fhir.repository.searchOptions });
  const counts = { read: 0, stored: 0, rejected: 0 };

  const reject = async (rowNo: number, raw: string, code: string, text: string, field?: string) => {
    counts.rejected++;
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

  const bundleOf = (rows: readonly { row: Row }[]) => {
    const entry: BundleEntry[] = [];
    const patients = new Map<string, string>();
    for (const { row } of rows) {
      const mrn = String(row.mrn);
      const url = patients.get(mrn) ?? `urn:uuid:${randomUUID()}`;
      const r = rowEntries(mapping.kind, row, rowCtx, url);
      if (r.patient && !patients.has(mrn)) {
        patients.set(mrn, url);
        entry.push(r.patient.entry);
      }
      entry.push(r.entry);
    }
    return { resourceType: 'Bundle' as const, type: 'transaction' as const, entry };
  };

  const write = async (batch: { rowNo: number; raw: string; row: Row }[]) => {
    if (batch.length === 0) return;
    try {
      await processBundle(repo, bundleOf(batch), ctx, { minimal: true });
      counts.stored += batch.length;
    } catch (e) {
      if (!isGatewayError(e) || e.statusCode >= 500) throw e;
      // Refused as a whole: find the rows at fault one by one.
      for (const one of batch) {
        try {
          await processBundle(repo, bundleOf([one]), ctx, { minimal: true });
          counts.stored++;
        } catch (e1) {
          if (!isGatewayError(e1) || e1.statusCode >= 500) throw e1;
          await reject(one.rowNo, one.raw, e1.code, e1.message);
        }
      }
    }
    await updateJob(db, job.id, counts);
  };

  try {
    const text = body.pipe(iconv.decodeStream(charset === 'UTF-8' ? 'utf8' : charset.toLowerCase())) as unknown as Readable & AsyncIterable<string>;
    const records = format === 'csv' ? csvRecords(text, mapping) : ndjsonRecords(text);
    let batch: { rowNo: number; raw: string; row: Row }[] = [];
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
    return await finishJob(db, job.id, counts, 'done');
  } catch (e) {
    // A CSV that cannot be read on (an unclosed quote) stops the load at that point: the client's error.
    const csv = (e as { code?: unknown }).code;
    const err = typeof csv === 'string' && csv.startsWith('CSV_') ? new GatewayError('GW_ERR_BAD_REQUEST', `The CSV cannot be read after row ${counts.read}: ${(e as Error).message}`, { expression: `row ${counts.read + 1}` }) : e;
    const message = isGatewayError(err) ? err.message : `load stopped: ${(err as Error).message}`;
    await finishJob(db, job.id, counts, 'failed', message);
    throw err;
  }
}
