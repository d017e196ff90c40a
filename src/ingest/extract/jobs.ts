/**
 * The ingest_job table: one row per extract load, updated after every batch, so that
 * GET /ingest/jobs/{id} shows how far a load is while it runs and how it ended.
 */
import type { Queryable } from '../../store/index.js';

export type JobStatus = 'running' | 'done' | 'failed';

export interface Job {
  readonly id: string;
  readonly kind: string;
  readonly format: string;
  readonly charset: string;
  readonly institution: string;
  readonly clientId?: string;
  readonly status: JobStatus;
  readonly rowsRead: number;
  readonly rowsStored: number;
  readonly rowsRejected: number;
  readonly startedAt: string;
  readonly finishedAt?: string;
  readonly error?: string;
}

interface JobRow {
  id: string;
  kind: string;
  format: string;
  charset: string;
  institution: string;
  client_id: string | null;
  status: JobStatus;
  rows_read: number;
  rows_stored: number;
  rows_rejected: number;
  started_at: Date | string;
  finished_at: Date | string | null;
  error: string | null;
}

function fromRow(r: JobRow): Job {
  return {
    id: r.id,
    kind: r.kind,
    format: r.format,
    charset: r.charset,
    institution: r.institution,
    ...(r.client_id ? { clientId: r.client_id } : {}),
    status: r.status,
    rowsRead: Number(r.rows_read),
    rowsStored: Number(r.rows_stored),
    rowsRejected: Number(r.rows_rejected),
    startedAt: new Date(r.started_at).toISOString(),
    ...(r.finished_at ? { finishedAt: new Date(r.finished_at).toISOString() } : {}),
    ...(r.error ? { error: r.error } : {}),
  };
}

export async function createJob(q: Queryable, j: { id: string; kind: string; format: string; charset: string; institution: string; clientId?: string }): Promise<Job> {
  const { rows } = await q.query<JobRow>(
    `INSERT INTO ingest_job (id, kind, format, charset, institution, client_id, status) VALUES ($1, $2, $3, $4, $5, $6, 'running') RETURNING *`,
    [j.id, j.kind, j.format, j.charset, j.institution, j.clientId ?? null],
  );
  return fromRow(rows[0]);
}

export interface Counts {
  read: number;
  stored: number;
  rejected: number;
}

export async function updateJob(q: Queryable, id: string, c: Counts): Promise<void> {
  await q.query('UPDATE ingest_job SET rows_read = $2, rows_stored = $3, rows_rejected = $4 WHERE id = $1', [id, c.read, c.stored, c.rejected]);
}

export async function finishJob(q: Queryable, id: string, c: Counts, status: Exclude<JobStatus, 'running'>, error?: string): Promise<Job> {
  const { rows } = await q.query<JobRow>(
    'UPDATE ingest_job SET rows_read = $2, rows_stored = $3, rows_rejected = $4, status = $5, error = $6, finished_at = now() WHERE id = $1 RETURNING *',
    [id, c.read, c.stored, c.rejected, status, error?.slice(0, 2000) ?? null],
  );
  return fromRow(rows[0]);
}

export async function getJob(q: Queryable, id: string): Promise<Job | undefined> {
  const { rows } = await q.query<JobRow>('SELECT * FROM ingest_job WHERE id = $1', [id]);
  return rows[0] ? fromRow(rows[0]) : undefined;
}

/** The newest jobs of one institution (all institutions when undefined). */
export async function listJobs(q: Queryable, institution: string | undefined, limit: number): Promise<Job[]> {
  const { rows } = institution
    ? await q.query<JobRow>('SELECT * FROM ingest_job WHERE institution = $1 ORDER BY started_at DESC, id LIMIT $2', [institution, limit])
    : await q.query<JobRow>('SELECT * FROM ingest_job ORDER BY started_at DESC, id LIMIT $1', [limit]);
  return rows.map(fromRow);
}
