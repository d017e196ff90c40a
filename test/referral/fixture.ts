/**
 * A referral test world: the demo community loaded into a test app, its institutions by USCC,
 * a patient, reserved slots, and builders of referral requests.
 */
import type { Bundle, BundleEntry, Organization, Patient, Resource, ServiceRequest, Slot, Task } from '@medplum/fhirtypes';
import { randomUUID } from 'node:crypto';
import { createTestApp, FHIR_HEADERS, type TestApp } from '../helpers/app.js';
import type { Backend } from '../helpers/db.js';
import { loadDemoCommunity } from '../../src/demo/index.js';
import { processBundle, SYSTEM_CONTEXT } from '../../src/fhir/index.js';
import { DIRECTION_EXTENSION, EXCEPTION_EXTENSION, REFERRAL_CATEGORY, REFERRAL_RESERVED, SLOT_RESERVATION_SYSTEM, openingTask } from '../../src/referral/index.js';
import { USCC_SYSTEM } from '../../src/fhir/systems.js';

export const COUNTY = '1233042447101234XX';
export const TOWNSHIP1 = '1233042447102341XF';
export const TOWNSHIP2 = '12330424471034522H';
export const VILLAGE1 = '52330424681045633Y';
export const VILLAGE2 = '52330424681056746X';
export const ICD10 = 'http://hl7.org/fhir/sid/icd-10';

export const CLIENT_OF: Record<string, string> = { [COUNTY]: 'county-his', [TOWNSHIP1]: 'township1-his', [TOWNSHIP2]: 'township2-his', [VILLAGE1]: 'village1-his' };

export interface World {
  readonly ta: TestApp;
  /** Organization id by USCC. */
  readonly org: Record<string, string>;
  readonly patient: string;
  headers(uscc: string): Promise<Record<string, string>>;
  /** POSTs a transaction Bundle as an institution's client. */
  transaction(uscc: string, entries: BundleEntry[]): Promise<{ status: number; body: Bundle & { issue?: { diagnostics?: string }[] } }>;
  /** Publishes `n` reserved referral slots (and one ordinary slot) at an institution; returns the Slot ids. */
  publishSlots(uscc: string, n: number): Promise<string[]>;
  /** Opens a referral (ServiceRequest + Task) as the sender's client; returns the response. */
  refer(r: ReferralSpec): Promise<{ status: number; srId?: string; taskId?: string; body: Bundle & { issue?: { diagnostics?: string }[] } }>;
  /** Moves a referral Task to a status by a PUT as an institution's client. */
  move(taskId: string, uscc: string, status: string, extra?: Partial<Task>): Promise<{ status: number; body: Task & { issue?: { diagnostics?: string; code?: string }[] } }>;
}

export interface ReferralSpec {
  from: string;
  to: string;
  direction: 'up' | 'down';
  icd10: string;
  priority?: ServiceRequest['priority'];
  exception?: string;
  patient?: string;
  supporting?: BundleEntry[];
  authoredOn?: string;
}

export async function openWorld(backend: Backend): Promise<World> {
  const ta = await createTestApp(backend);
  await loadDemoCommunity((bundle) => processBundle(ta.fhir.repository, bundle, { ...SYSTEM_CONTEXT, channel: 'demo' }, { minimal: true }));
  const orgs = (await ta.app.inject({ url: '/fhir/Organization?_count=50' })).json() as Bundle<Organization>;
  const org: Record<string, string> = {};
  for (const e of orgs.entry ?? []) {
    const uscc = e.resource?.identifier?.find((i) => i.system === USCC_SYSTEM)?.value;
    if (uscc) org[uscc] = e.resource?.id as string;
  }
  const tokens = new Map<string, string>();
  const headers = async (uscc: string) => {
    const client = CLIENT_OF[uscc];
    // An institution without a client of its own (outside the county): the administrator's token.
    if (!client) return { ...FHIR_HEADERS };
    if (!tokens.has(client)) tokens.set(client, await ta.token(client));
    return { authorization: `Bearer ${tokens.get(client)}`, ...FHIR_HEADERS };
  };
  const created = await ta.app.inject({
    method: 'POST',
    url: '/fhir/Patient',
    headers: await headers(VILLAGE1),
    payload: { resourceType: 'Patient', identifier: [{ system: `https://fhir.county-hie.cn/sid/mrn/${VILLAGE1}`, value: `V-${randomUUID().slice(0, 8)}` }], name: [{ family: '钱', given: ['转诊'] }], gender: 'male', birthDate: '1958-07-12' } satisfies Patient,
  });
  const patient = (created.json() as Patient).id as string;

  const transaction: World['transaction'] = async (uscc, entries) => {
    const res = await ta.app.inject({ method: 'POST', url: '/fhir', headers: await headers(uscc), payload: { resourceType: 'Bundle', type: 'transaction', entry: entries } });
    return { status: res.statusCode, body: res.json() };
  };

  return {
    ta,
    org,
    patient,
    headers,
    transaction,
    async publishSlots(uscc, n) {
      const schedule = `urn:uuid:${randomUUID()}`;
      const slot = (i: number, reserved: boolean): BundleEntry => ({
        fullUrl: `urn:uuid:${randomUUID()}`,
        request: { method: 'POST', url: 'Slot' },
        resource: {
          resourceType: 'Slot',
          schedule: { reference: schedule },
          status: 'free',
          ...(reserved ? { serviceCategory: [{ coding: [{ system: SLOT_RESERVATION_SYSTEM, code: REFERRAL_RESERVED }] }] } : {}),
          start: `2030-01-01T${String(8 + (i % 10)).padStart(2, '0')}:${String(Math.floor(i / 10) * 5).padStart(2, '0')}:00+08:00`,
          end: `2030-01-01T${String(8 + (i % 10)).padStart(2, '0')}:${String(Math.floor(i / 10) * 5 + 4).padStart(2, '0')}:00+08:00`,
        } satisfies Slot,
      });
      const res = await transaction(uscc, [
        { fullUrl: schedule, request: { method: 'POST', url: 'Schedule' }, resource: { resourceType: 'Schedule', active: true, actor: [{ reference: `Organization/${org[uscc]}` }], comment: '专家门诊 转诊预留号源' } },
        // An ordinary slot, earlier than every reserved one: never given to a referral.
        { ...slot(0, false), resource: { ...(slot(0, false).resource as Slot), start: '2029-12-31T08:00:00+08:00', end: '2029-12-31T08:04:00+08:00' } },
        ...Array.from({ length: n }, (_, i) => slot(i, true)),
      ]);
      if (res.status !== 200) throw new Error(`publishing slots failed: ${JSON.stringify(res.body)}`);
      return (res.body.entry ?? []).slice(2).map((e) => (e.response?.location as string).split('/')[1]);
    },
    async refer(r) {
      const srUrl = `urn:uuid:${randomUUID()}`;
      const sr: ServiceRequest = {
        resourceType: 'ServiceRequest',
        status: 'active',
        intent: 'order',
        category: [{ coding: [REFERRAL_CATEGORY] }],
        extension: [{ url: DIRECTION_EXTENSION, valueCode: r.direction }, ...(r.exception ? [{ url: EXCEPTION_EXTENSION, valueString: r.exception }] : [])],
        priority: r.priority ?? 'routine',
        subject: { reference: `Patient/${r.patient ?? patient}` },
        reasonCode: [{ coding: [{ system: ICD10, code: r.icd10 }] }],
        requester: { reference: `Organization/${org[r.from]}` },
        performer: [{ reference: `Organization/${org[r.to]}` }],
        authoredOn: r.authoredOn,
        supportingInfo: (r.supporting ?? []).map((e) => ({ reference: e.fullUrl as string })),
      };
      const task: Task = { ...openingTask(sr, srUrl), authoredOn: r.authoredOn };
      const res = await transaction(r.from, [
        ...(r.supporting ?? []),
        { fullUrl: srUrl, request: { method: 'POST', url: 'ServiceRequest' }, resource: sr },
        { fullUrl: `urn:uuid:${randomUUID()}`, request: { method: 'POST', url: 'Task' }, resource: task },
      ]);
      const n = (r.supporting ?? []).length;
      const loc = (i: number) => (res.body.entry?.[i]?.response?.location as string | undefined)?.split('/')[1];
      return { status: res.status, body: res.body, srId: res.status === 200 ? loc(n) : undefined, taskId: res.status === 200 ? loc(n + 1) : undefined };
    },
    async move(taskId, uscc, status, extra = {}) {
      const current = (await ta.app.inject({ url: `/fhir/Task/${taskId}` })).json() as Task;
      const res = await ta.app.inject({ method: 'PUT', url: `/fhir/Task/${taskId}`, headers: await headers(uscc), payload: { ...current, ...extra, status } });
      return { status: res.statusCode, body: res.json() };
    },
  };
}

export async function read<T extends Resource>(w: World, ref: string): Promise<T> {
  return (await w.ta.app.inject({ url: `/fhir/${ref}` })).json() as T;
}
