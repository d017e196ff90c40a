/**
 * Referral KPIs ($referral-stats), the figures county policy reports: per institution and period
 * (the referral's authoredOn), referrals sent up, down and out of the county; patients returned
 * after out-of-county treatment; of the referrals received, how many were accepted or rejected,
 * the acceptance rate, the median time to accept, and the open ones past the deadline.
 */
import type { Resource, ServiceRequest, Task } from '@medplum/fhirtypes';
import { GatewayError } from '../errors.js';
import type { Queryable } from '../store/index.js';
import { readCurrent } from '../store/index.js';
import { findMatches } from '../store/search/index.js';
import { ACCEPTED_AT_EXTENSION, REFERRAL_TASK_CODE, TASK_CODE_SYSTEM } from './codes.js';
import { directionOf, institution, isReferralRequest, type Institution } from './workflow.js';

/** Most referrals one statistics request reads; a larger period must be split. */
export const STATS_LIMIT = 50_000;

export interface StatsQuery {
  /** USCC of the institution; undefined for the whole community. */
  readonly institution?: string;
  /** First and last day (YYYY-MM-DD) of the period, by the referral's authoredOn. */
  readonly start?: string;
  readonly end?: string;
  readonly deadlineHours: number;
  readonly now: Date;
}

export interface ReferralStats {
  readonly up: number;
  readonly down: number;
  readonly outOfCounty: number;
  readonly returnedAfterOutOfCounty: number;
  readonly received: number;
  readonly accepted: number;
  readonly rejected: number;
  /** accepted ÷ (accepted + rejected); undefined before any decision. */
  readonly acceptanceRate?: number;
  /** Median hours from authoredOn to acceptance; undefined when none was accepted. */
  readonly medianHoursToAccept?: number;
  readonly overdueOpen: number;
}

export function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const HOUR = 3_600_000;
const WAITING = new Set(['requested', 'received', 'on-hold']);

export async function referralStats(q: Queryable, query: StatsQuery): Promise<ReferralStats> {
  const search: Record<string, string | string[]> = { code: `${TASK_CODE_SYSTEM}|${REFERRAL_TASK_CODE}` };
  const dates = [...(query.start ? [`ge${query.start}`] : []), ...(query.end ? [`le${query.end}`] : [])];
  if (dates.length) search['authored-on'] = dates;
  const rows = await findMatches(q, 'Task', search, STATS_LIMIT + 1);
  if (rows.length > STATS_LIMIT) throw new GatewayError('GW_ERR_BAD_REQUEST', `More than ${STATS_LIMIT} referrals in the period: ask for a shorter one`, { expression: 'start' });
  const cache = new Map<string, Promise<Resource | undefined>>();
  const resolve = (ref: string): Promise<Resource | undefined> => {
    let hit = cache.get(ref);
    if (!hit) {
      const [type, id] = ref.split('/');
      hit = readCurrent(q, type, id).then((row) => (row && !row.deleted ? (JSON.parse(row.content as string) as Resource) : undefined));
      cache.set(ref, hit);
    }
    return hit;
  };
  const orgs = new Map<string, Promise<Institution>>();
  const org = (ref: string | undefined): Promise<Institution> => {
    const key = ref ?? '';
    if (!orgs.has(key)) orgs.set(key, institution(resolve, { reference: ref }, 'Organization'));
    return orgs.get(key) as Promise<Institution>;
  };

  let up = 0, down = 0, outOfCounty = 0, returned = 0, received = 0, accepted = 0, rejected = 0, overdue = 0;
  const hours: number[] = [];
  const mine = (i: Institution) => query.institution === undefined || i.uscc === query.institution;
  for (const row of rows) {
    const task = JSON.parse(row.content as string) as Task;
    const sr = task.focus?.reference ? await resolve(task.focus.reference) : undefined;
    if (!isReferralRequest(sr)) continue;
    const request: ServiceRequest = sr;
    const direction = directionOf(request);
    const [sender, receiver] = [await org(request.requester?.reference), await org(request.performer?.[0]?.reference)];
    if (mine(sender)) {
      if (direction === 'up') up++;
      if (direction === 'down') down++;
      if (receiver.level === 'outside') outOfCounty++;
    }
    if (!mine(receiver)) continue;
    received++;
    if (direction === 'down' && sender.level === 'outside') returned++;
    const acceptedAt = task.extension?.find((e) => e.url === ACCEPTED_AT_EXTENSION)?.valueDateTime;
    const authored = task.authoredOn ? Date.parse(task.authoredOn) : NaN;
    if (acceptedAt) {
      accepted++;
      if (!Number.isNaN(authored)) hours.push((Date.parse(acceptedAt) - authored) / HOUR);
    } else if (task.status === 'rejected') rejected++;
    else if (WAITING.has(task.status) && !Number.isNaN(authored) && query.now.getTime() - authored > query.deadlineHours * HOUR) overdue++;
  }
  return {
    up,
    down,
    outOfCounty,
    returnedAfterOutOfCounty: returned,
    received,
    accepted,
    rejected,
    acceptanceRate: accepted + rejected > 0 ? accepted / (accepted + rejected) : undefined,
    medianHoursToAccept: median(hours),
    overdueOpen: overdue,
  };
}
