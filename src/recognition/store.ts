/**
 * What the recognition service keeps besides FHIR resources: the qualification history of each
 * institution per item category (动态调整: qualified from a date, suspended from another), and the
 * recognition events (offered, accepted, repeated with a reason) that the statistics count.
 */
import type { Queryable } from '../store/index.js';
import type { ItemCategory } from './catalogue.js';

export type QualificationStatus = 'qualified' | 'suspended';

export interface QualificationChange {
  readonly id: number;
  /** USCC of the institution. */
  readonly institution: string;
  readonly category: ItemCategory;
  readonly status: QualificationStatus;
  /** First day (YYYY-MM-DD) the status holds. */
  readonly effectiveFrom: string;
  readonly reason?: string;
  readonly recordedAt: string;
  readonly recordedBy: string;
}

export type QualificationInput = Omit<QualificationChange, 'id' | 'recordedAt'>;

interface QualificationRow {
  id: string | number;
  institution: string;
  category: ItemCategory;
  status: QualificationStatus;
  effective_from: string | Date;
  reason: string | null;
  recorded_at: string | Date;
  recorded_by: string;
}

/** A date column as YYYY-MM-DD whichever driver read it (pg gives a local-midnight Date). */
function day(v: string | Date): string {
  if (typeof v === 'string') return v.slice(0, 10);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${v.getFullYear()}-${p(v.getMonth() + 1)}-${p(v.getDate())}`;
}

const toChange = (r: QualificationRow): QualificationChange => ({
  id: Number(r.id),
  institution: r.institution,
  category: r.category,
  status: r.status,
  effectiveFrom: day(r.effective_from),
  ...(r.reason ? { reason: r.reason } : {}),
  recordedAt: new Date(r.recorded_at).toISOString(),
  recordedBy: r.recorded_by,
});

export async function addQualification(q: Queryable, c: QualificationInput): Promise<QualificationChange> {
  const { rows } = await q.query<QualificationRow>(
    `INSERT INTO recognition_qualification (institution, category, status, effective_from, reason, recorded_by)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
    [c.institution, c.category, c.status, c.effectiveFrom, c.reason ?? null, c.recordedBy],
  );
  return toChange(rows[0]);
}

export async function listQualifications(q: Queryable, filter: { institution?: string; category?: string } = {}): Promise<QualificationChange[]> {
  const { rows } = await q.query<QualificationRow>(
    `SELECT * FROM recognition_qualification
      WHERE ($1::text IS NULL OR institution = $1) AND ($2::text IS NULL OR category = $2)
      ORDER BY institution, category, effective_from, id`,
    [filter.institution ?? null, filter.category ?? null],
  );
  return rows.map(toChange);
}

/**
 * Qualification on a day, from the whole history: the latest change in force that day (by
 * effective date, then by when it was recorded) decides; no change means not qualified.
 */
export class QualificationHistory {
  private readonly byKey = new Map<string, QualificationChange[]>();

  constructor(changes: readonly QualificationChange[]) {
    for (const c of changes) {
      const k = `${c.institution}|${c.category}`;
      const list = this.byKey.get(k) ?? [];
      list.push(c);
      this.byKey.set(k, list);
    }
    for (const list of this.byKey.values()) list.sort((a, b) => a.effectiveFrom.localeCompare(b.effectiveFrom) || a.id - b.id);
  }

  /** The change in force for this institution and category on a day, if any. */
  onDay(institution: string, category: ItemCategory, date: string): QualificationChange | undefined {
    let found: QualificationChange | undefined;
    for (const c of this.byKey.get(`${institution}|${category}`) ?? []) if (c.effectiveFrom <= date) found = c;
    return found;
  }

  qualified(institution: string, category: ItemCategory, date: string): boolean {
    return this.onDay(institution, category, date)?.status === 'qualified';
  }
}

export type EventKind = 'offered' | 'accepted' | 'repeated';

export interface RecognitionEvent {
  readonly kind: EventKind;
  /** USCC of the ordering institution. */
  readonly institution: string;
  readonly item: string;
  readonly catalogueVersion: string;
  readonly patient: string;
  readonly orderDate: string;
  readonly results: readonly string[];
  readonly reason?: string;
  readonly price?: number;
  readonly clientId?: string;
}

export async function addEvent(q: Queryable, e: RecognitionEvent): Promise<number> {
  const { rows } = await q.query<{ id: string | number }>(
    `INSERT INTO recognition_event (kind, institution, item, catalogue_version, patient, order_date, results, reason, price, client_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
    [e.kind, e.institution, e.item, e.catalogueVersion, e.patient, e.orderDate, JSON.stringify(e.results), e.reason ?? null, e.price ?? null, e.clientId ?? null],
  );
  return Number(rows[0].id);
}

export interface StatsFilter {
  readonly institution?: string;
  readonly item?: string;
  /** Order dates, inclusive (YYYY-MM-DD). */
  readonly from?: string;
  readonly to?: string;
}

export interface StatsRow {
  readonly institution: string;
  readonly item: string;
  readonly offered: number;
  readonly accepted: number;
  readonly repeated: number;
  readonly repeatedByReason: Readonly<Record<string, number>>;
  /** Sum of the catalogue prices of the accepted recognitions (yuan). */
  readonly saved: number;
}

/** Counts per ordering institution and item, from the events table (one grouped query). */
export async function recognitionStats(q: Queryable, f: StatsFilter): Promise<StatsRow[]> {
  const { rows } = await q.query<{ institution: string; item: string; kind: EventKind; reason: string | null; n: number; saved: string | number | null }>(
    `SELECT institution, item, kind, reason, count(*)::int AS n, sum(price) AS saved
       FROM recognition_event
      WHERE ($1::text IS NULL OR institution = $1) AND ($2::text IS NULL OR item = $2)
        AND ($3::date IS NULL OR order_date >= $3::date) AND ($4::date IS NULL OR order_date <= $4::date)
      GROUP BY institution, item, kind, reason
      ORDER BY institution, item`,
    [f.institution ?? null, f.item ?? null, f.from ?? null, f.to ?? null],
  );
  const out = new Map<string, { institution: string; item: string; offered: number; accepted: number; repeated: number; repeatedByReason: Record<string, number>; saved: number }>();
  for (const r of rows) {
    const k = `${r.institution}|${r.item}`;
    const s = out.get(k) ?? { institution: r.institution, item: r.item, offered: 0, accepted: 0, repeated: 0, repeatedByReason: {}, saved: 0 };
    s[r.kind] += r.n;
    if (r.kind === 'repeated') s.repeatedByReason[r.reason ?? 'unspecified'] = (s.repeatedByReason[r.reason ?? 'unspecified'] ?? 0) + r.n;
    if (r.kind === 'accepted') s.saved += Number(r.saved ?? 0);
    out.set(k, s);
  }
  return [...out.values()];
}
