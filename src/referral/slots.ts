/**
 * Reserved referral slots (预约转诊号源). An upper institution publishes Schedules (actor: the
 * Organization) and Slots; the Slots whose serviceCategory is slot-reservation|referral are kept
 * for referrals from below. Accepting a referral books the earliest free one: inside the accepting
 * write's transaction, under a transaction-scoped advisory lock per receiving institution (the
 * same on PostgreSQL and PGlite), the Slot is set busy with If-Match on the version read and an
 * Appointment is created; so two acceptances can never take the same slot, and when none is free
 * the acceptance is refused and nothing is written.
 */
import type { Appointment, ServiceRequest, Slot, TaskOutput } from '@medplum/fhirtypes';
import { GatewayError } from '../errors.js';
import type { WriteRequest, WriteResult } from '../fhir/index.js';
import { INSTITUTION_TAG_SYSTEM } from '../fhir/systems.js';
import type { Queryable } from '../store/index.js';
import { findMatches } from '../store/search/index.js';
import { OUTPUT_TYPE_SYSTEM, REFERRAL_RESERVED, SLOT_RESERVATION_SYSTEM } from './codes.js';
import type { Institution } from './workflow.js';

/** Most Schedules of one institution and free reserved Slots looked at per booking. */
const MAX_SCHEDULES = 100;
const MAX_SLOTS = 500;

export async function bookReservedSlot(
  q: Queryable,
  r: { request: ServiceRequest; receiver: Institution; sender: Institution; where: string },
  write: (requests: readonly WriteRequest[]) => Promise<WriteResult[]>,
): Promise<TaskOutput> {
  await q.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`referral-slots:${r.receiver.id}`]);
  const schedules = await findMatches(q, 'Schedule', { actor: `Organization/${r.receiver.id}`, active: 'true' }, MAX_SCHEDULES);
  const rows =
    schedules.length === 0
      ? []
      : await findMatches(q, 'Slot', { schedule: schedules.map((s) => `Schedule/${s.id}`).join(','), status: 'free', 'service-category': `${SLOT_RESERVATION_SYSTEM}|${REFERRAL_RESERVED}` }, MAX_SLOTS);
  const free = rows.map((row) => ({ row, slot: JSON.parse(row.content as string) as Slot })).sort((a, b) => a.slot.start.localeCompare(b.slot.start) || a.row.id.localeCompare(b.row.id));
  const first = free[0];
  if (!first) {
    throw new GatewayError('GW_ERR_CONFLICT', `No reserved referral slot is free at ${r.receiver.uscc ?? `Organization/${r.receiver.id}`}: the referral is not accepted and stays as it was (publish more reserved Slots, or send it by the green channel if urgent)`, {
      expression: `${r.where}.status`,
    });
  }
  const subject = r.request.subject?.reference as string;
  const appointment: Appointment = {
    resourceType: 'Appointment',
    meta: { tag: [{ system: INSTITUTION_TAG_SYSTEM, code: r.receiver.uscc ?? '' }].filter((t) => t.code) },
    status: 'booked',
    serviceCategory: first.slot.serviceCategory,
    slot: [{ reference: `Slot/${first.row.id}` }],
    start: first.slot.start,
    end: first.slot.end,
    basedOn: [{ reference: `ServiceRequest/${r.request.id}` }],
    participant: [{ actor: { reference: subject }, status: 'accepted' }],
    description: '预约转诊 Referral appointment',
  };
  const [, booked] = await write([
    { method: 'PUT', type: 'Slot', id: first.row.id, ifMatch: first.row.versionId, resource: { ...first.slot, status: 'busy' } },
    { method: 'POST', type: 'Appointment', resource: appointment },
  ]);
  return {
    type: { coding: [{ system: OUTPUT_TYPE_SYSTEM, code: 'appointment', display: 'Appointment in a reserved referral slot' }] },
    valueReference: { reference: `Appointment/${booked.id}` },
  };
}
