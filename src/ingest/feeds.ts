/**
 * Feed statistics for the operators' console: per member institution and feed (an HL7 v2
 * sender, DICOM study posts, each kind of HIS extract), the messages of the last hour and day,
 * the errors (dead letters), the time of the last message, an hourly series for a throughput
 * chart, and whether a normally busy feed has gone quiet (stale).
 *
 * Read from what the ingest already keeps: hl7_processed (one row per stored HL7 message),
 * dead_letter (one row per message not stored), ingest_job (extract loads) and the ImagingStudy
 * versions written (one per DICOM post that changed a study). No personal data is read.
 */
import type { Queryable } from '../store/index.js';
import { INSTITUTION_TAG_SYSTEM } from '../fhir/systems.js';
import type { SenderRegistry } from './senders.js';

export type FeedKind = 'hl7v2' | 'dicom' | 'extract';

export interface FeedStats {
  readonly institution: string;
  readonly kind: FeedKind;
  /** HL7 v2: the sender id; extract: the extract kind; DICOM: `dicom`. */
  readonly source: string;
  /** Doors seen in the window (mllp, http). */
  readonly channels: string[];
  lastHour: number;
  lastDay: number;
  errorsLastHour: number;
  errorsLastDay: number;
  lastMessage?: string;
  lastError?: string;
  /** Messages per hour, oldest first; the last element is the current hour. */
  readonly hourly: number[];
  readonly hourlyErrors: number[];
  /** Sent in the last day, but nothing for the stale period. */
  stale: boolean;
}

export interface FeedReport {
  readonly generatedAt: string;
  readonly hours: number;
  readonly staleMinutes: number;
  readonly feeds: FeedStats[];
}

interface Row {
  institution: string | null;
  client: string | null;
  kind: FeedKind;
  source: string;
  channel: string | null;
  at: Date | string;
  n: number | string;
  errors: number | string;
  latest: Date | string;
}

const HOUR = 3_600_000;

/** The feed report of the `hours` up to `now` (default 24). */
export async function feedStatistics(
  q: Queryable,
  senders: SenderRegistry,
  opts: { now?: Date; hours?: number; staleMinutes: number; institutionOfClient: (clientId: string) => string | undefined },
): Promise<FeedReport> {
  const now = opts.now ?? new Date();
  const hours = opts.hours ?? 24;
  const currentHour = Math.floor(now.getTime() / HOUR) * HOUR;
  const since = new Date(currentHour - (hours - 1) * HOUR);
  // One row per feed and hour: messages stored and errors kept.
  const { rows } = await q.query<Row>(
    `SELECT NULL::text AS institution, NULL::text AS client, 'hl7v2' AS kind, sender_id AS source, channel, date_trunc('hour', processed_at) AS at,
            count(*) AS n, 0 AS errors, max(processed_at) AS latest
       FROM hl7_processed WHERE processed_at >= $1 AND processed_at <= $2 GROUP BY sender_id, channel, date_trunc('hour', processed_at)
     UNION ALL
     SELECT NULL, client_id,
            CASE WHEN message_type LIKE 'DICOM%' THEN 'dicom' WHEN message_type LIKE 'EXTRACT %' THEN 'extract' ELSE 'hl7v2' END,
            CASE WHEN message_type LIKE 'DICOM%' THEN 'dicom' WHEN message_type LIKE 'EXTRACT %' THEN substr(message_type, 9) ELSE COALESCE(sender_id, 'unknown') END,
            channel, date_trunc('hour', received_at), 0, count(*), max(received_at)
       FROM dead_letter WHERE received_at >= $1 AND received_at <= $2
      GROUP BY 2, 3, 4, channel, date_trunc('hour', received_at)
     UNION ALL
     SELECT institution, client_id, 'extract', kind, 'http', date_trunc('hour', started_at), sum(rows_stored), 0, max(COALESCE(finished_at, started_at))
       FROM ingest_job WHERE started_at >= $1 AND started_at <= $2 GROUP BY institution, client_id, kind, date_trunc('hour', started_at)
     UNION ALL
     SELECT t.value, NULL, 'dicom', 'dicom', 'http', date_trunc('hour', v.last_updated), count(*), 0, max(v.last_updated)
       FROM resource_version v JOIN sp_token t ON t.rid = v.rid AND t.code = '_tag' AND t.system = $3
      WHERE v.type = 'ImagingStudy' AND v.last_updated >= $1 AND v.last_updated <= $2
      GROUP BY t.value, date_trunc('hour', v.last_updated)`,
    [since.toISOString(), now.toISOString(), INSTITUTION_TAG_SYSTEM],
  );
  // The last message of each HL7 sender, also from before the window (a feed silent for days).
  const { rows: last } = await q.query<{ source: string; at: Date | string }>('SELECT sender_id AS source, max(processed_at) AS at FROM hl7_processed GROUP BY sender_id');
  const lastHl7 = new Map(last.map((r) => [r.source, new Date(r.at).toISOString()]));

  const feeds = new Map<string, FeedStats>();
  const feedOf = (institution: string, kind: FeedKind, source: string): FeedStats => {
    const key = `${institution}|${kind}|${source}`;
    let f = feeds.get(key);
    if (!f) {
      f = { institution, kind, source, channels: [], lastHour: 0, lastDay: 0, errorsLastHour: 0, errorsLastDay: 0, hourly: new Array<number>(hours).fill(0), hourlyErrors: new Array<number>(hours).fill(0), stale: false };
      const seen = kind === 'hl7v2' ? lastHl7.get(source) : undefined;
      if (seen) f.lastMessage = seen;
      feeds.set(key, f);
    }
    return f;
  };
  // Every registered HL7 sender is listed, even when it sent nothing in the window.
  for (const s of senders.senders) feedOf(s.institution, 'hl7v2', s.id);
  for (const r of rows) {
    const institution = r.institution ?? (r.kind === 'hl7v2' ? senders.byId(r.source)?.institution : undefined) ?? (r.client ? opts.institutionOfClient(r.client) : undefined) ?? '';
    const f = feedOf(institution, r.kind, r.source);
    const at = new Date(r.at).getTime();
    const i = Math.floor((at - since.getTime()) / HOUR);
    if (i < 0 || i >= hours) continue;
    const n = Number(r.n);
    const errors = Number(r.errors);
    f.hourly[i] += n;
    f.hourlyErrors[i] += errors;
    f.lastDay += i >= hours - 24 ? n : 0;
    f.errorsLastDay += i >= hours - 24 ? errors : 0;
    if (i === hours - 1) {
      f.lastHour += n;
      f.errorsLastHour += errors;
    }
    if (r.channel && !f.channels.includes(r.channel)) f.channels.push(r.channel);
    const latest = new Date(r.latest).toISOString();
    if (n > 0 && (!f.lastMessage || f.lastMessage < latest)) f.lastMessage = latest;
    if (errors > 0 && (!f.lastError || f.lastError < latest)) f.lastError = latest;
  }
  const staleBefore = now.getTime() - opts.staleMinutes * 60_000;
  for (const f of feeds.values()) {
    f.stale = f.lastDay > 0 && f.lastMessage !== undefined && Date.parse(f.lastMessage) < staleBefore;
  }
  const list = [...feeds.values()].sort((a, b) => (a.institution + a.kind + a.source < b.institution + b.kind + b.source ? -1 : 1));
  return { generatedAt: now.toISOString(), hours, staleMinutes: opts.staleMinutes, feeds: list };
}
