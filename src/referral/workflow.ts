/**
 * The referral workflow (双向转诊) as the write path enforces it. A referral is a ServiceRequest
 * (category referral, direction up or down, ICD-10 reason, requester and target Organization,
 * priority) and a Task carrying its state through the FHIR workflow pattern:
 * requested → received → accepted | rejected → in-progress → completed, cancelled by the sender,
 * on-hold by either side. Every write of either resource, whatever door it came in by (REST
 * create/update/patch, a transaction Bundle, HL7 v2), passes `checkReferralWrites`: invalid
 * transitions and transitions by the wrong side are refused with an OperationOutcome.
 */
import type { CarePlan, CodeableConcept, Organization, Reference, Resource, ServiceRequest, Task, TaskOutput } from '@medplum/fhirtypes';
import { GatewayError } from '../errors.js';
import type { RequestContext, WorkflowHook, WorkflowWrite, WriteRequest, WriteResult } from '../fhir/index.js';
import { INSTITUTION_LEVEL_EXTENSION, INSTITUTION_TAG_SYSTEM, USCC_SYSTEM } from '../fhir/systems.js';
import type { Queryable } from '../store/index.js';
import {
  ACCEPTED_AT_EXTENSION,
  BUSINESS_STATUS_SYSTEM,
  DIRECTION_EXTENSION,
  EXCEPTION_EXTENSION,
  FLAG_EXTENSION,
  GREEN_PRIORITIES,
  ICD10_SYSTEMS,
  OUTPUT_TYPE_SYSTEM,
  REFERRAL_CATEGORY,
  REFERRAL_TASK_CODE,
  TASK_CODE_SYSTEM,
} from './codes.js';
import type { Direction, LevelRules, ReferralLevel } from './rules.js';
import { bookReservedSlot } from './slots.js';

export type ReferralStatus = 'requested' | 'received' | 'accepted' | 'rejected' | 'in-progress' | 'completed' | 'cancelled' | 'on-hold';
type Side = 'sender' | 'receiver' | 'either';

/** The allowed transitions of a referral Task and the side that may make each. */
export const TRANSITIONS: Readonly<Record<ReferralStatus, Readonly<Partial<Record<ReferralStatus, Side>>>>> = {
  requested: { received: 'receiver', accepted: 'receiver', rejected: 'receiver', cancelled: 'sender', 'on-hold': 'either' },
  received: { accepted: 'receiver', rejected: 'receiver', cancelled: 'sender', 'on-hold': 'either' },
  accepted: { 'in-progress': 'receiver', cancelled: 'sender', 'on-hold': 'either' },
  'in-progress': { completed: 'receiver', 'on-hold': 'either' },
  'on-hold': { requested: 'sender', received: 'receiver', accepted: 'receiver', 'in-progress': 'receiver', cancelled: 'sender' },
  rejected: {},
  completed: {},
  cancelled: {},
};

/** States in which the referral is still open. */
export const OPEN_STATUSES: ReadonlySet<string> = new Set(['requested', 'received', 'accepted', 'in-progress', 'on-hold']);

export function isReferralRequest(r: Resource | undefined): r is ServiceRequest {
  return r?.resourceType === 'ServiceRequest' && (r.category ?? []).some((c) => c.coding?.some((x) => x.system === REFERRAL_CATEGORY.system && x.code === REFERRAL_CATEGORY.code));
}

export function isReferralTask(r: Resource | undefined): r is Task {
  return r?.resourceType === 'Task' && (r.code?.coding ?? []).some((c) => c.system === TASK_CODE_SYSTEM && c.code === REFERRAL_TASK_CODE);
}

/**
 * The Task that opens a referral: requested, focused on the referral request (`focus`: its
 * reference or fullUrl), for its patient, from its requester to its performer.
 */
export function openingTask(sr: ServiceRequest, focus: string): Task {
  return {
    resourceType: 'Task',
    status: 'requested',
    intent: 'order',
    code: { coding: [{ system: TASK_CODE_SYSTEM, code: REFERRAL_TASK_CODE }] },
    focus: { reference: focus },
    for: sr.subject,
    requester: sr.requester,
    owner: sr.performer?.[0],
  };
}

export function directionOf(sr: ServiceRequest): Direction | undefined {
  const v = sr.extension?.find((e) => e.url === DIRECTION_EXTENSION)?.valueCode;
  return v === 'up' || v === 'down' ? v : undefined;
}

export function icd10Codes(concepts: readonly CodeableConcept[] | undefined): string[] {
  return (concepts ?? []).flatMap((c) => (c.coding ?? []).filter((x) => x.system && ICD10_SYSTEMS.has(x.system) && x.code).map((x) => x.code as string));
}

export function isGreenChannel(sr: ServiceRequest): boolean {
  return GREEN_PRIORITIES.has(sr.priority ?? 'routine');
}

function refused(message: string, expression: string, code: 'GW_ERR_BUSINESS_RULE' | 'GW_ERR_FORBIDDEN' | 'GW_ERR_BAD_REQUEST' = 'GW_ERR_BUSINESS_RULE'): GatewayError {
  return new GatewayError(code, message, { expression });
}

export interface Institution {
  readonly id: string;
  readonly uscc?: string;
  readonly level: ReferralLevel;
  readonly partOf?: string;
}

/** The institution an Organization reference names: its USCC and level (none: outside the county). */
export async function institution(resolve: (ref: string) => Promise<Resource | undefined>, ref: Reference | undefined, expression: string): Promise<Institution> {
  const value = ref?.reference;
  if (!value?.startsWith('Organization/')) throw refused('A referral names its institutions as Organization references', expression, 'GW_ERR_BAD_REQUEST');
  const org = (await resolve(value)) as Organization | undefined;
  if (!org) throw refused(`${value} does not exist`, expression, 'GW_ERR_BAD_REQUEST');
  const level = org.extension?.find((e) => e.url === INSTITUTION_LEVEL_EXTENSION)?.valueCoding?.code;
  return {
    id: org.id as string,
    uscc: org.identifier?.find((i) => i.system === USCC_SYSTEM)?.value,
    level: level === 'village' || level === 'township' || level === 'county' ? level : 'outside',
    partOf: org.partOf?.reference,
  };
}

/** True when `target` is `root` or lies under it through Organization.partOf. */
async function isUnder(resolve: (ref: string) => Promise<Resource | undefined>, target: Institution, root: Institution): Promise<boolean> {
  let current: string | undefined = `Organization/${target.id}`;
  for (let depth = 0; current && depth < 8; depth++) {
    if (current === `Organization/${root.id}`) return true;
    const org = (await resolve(current)) as Organization | undefined;
    current = org?.partOf?.reference;
  }
  return false;
}

/** The parties of a referral: sender (requester) and receiver (performer). */
export interface Parties {
  readonly sender: Institution;
  readonly receiver: Institution;
}

async function parties(resolve: (ref: string) => Promise<Resource | undefined>, sr: ServiceRequest, where: string): Promise<Parties> {
  if (sr.requester?.reference === undefined) throw refused('A referral needs requester: the sending Organization', `${where}.requester`, 'GW_ERR_BAD_REQUEST');
  if ((sr.performer ?? []).length !== 1) throw refused('A referral needs exactly one performer: the receiving Organization', `${where}.performer`, 'GW_ERR_BAD_REQUEST');
  return {
    sender: await institution(resolve, sr.requester, `${where}.requester`),
    receiver: await institution(resolve, sr.performer?.[0], `${where}.performer[0]`),
  };
}

/** Which side the client acts for; the gateway itself and clients of no institution act for both. */
function sideOf(ctx: RequestContext, p: Parties): Side | undefined {
  if (!ctx.scopes || !ctx.institution) return 'either';
  if (ctx.institution === p.sender.uscc) return 'sender';
  if (ctx.institution === p.receiver.uscc) return 'receiver';
  return undefined;
}

function setTag(next: Resource, code: string | undefined): void {
  if (!code) return;
  const meta = (next.meta ??= {});
  meta.tag = [...(meta.tag ?? []).filter((t) => t.system !== INSTITUTION_TAG_SYSTEM), { system: INSTITUTION_TAG_SYSTEM, code }];
}

function tagOf(r: Resource | undefined): string | undefined {
  return r?.meta?.tag?.find((t) => t.system === INSTITUTION_TAG_SYSTEM)?.code;
}

export interface ReferralDeps {
  readonly rules: LevelRules;
  readonly now?: () => Date;
}

/** Checks a referral ServiceRequest: its shape, the sender, the level rules (flagging what they flag). */
async function checkRequest(ctx: RequestContext, w: WorkflowWrite, deps: ReferralDeps, resolve: (ref: string) => Promise<Resource | undefined>): Promise<void> {
  const sr = w.next as ServiceRequest;
  const where = w.where;
  const direction = directionOf(sr);
  if (!direction) throw refused(`A referral needs the direction extension (${DIRECTION_EXTENSION}) with valueCode up or down`, `${where}.extension`, 'GW_ERR_BAD_REQUEST');
  if (!sr.subject?.reference?.startsWith('Patient/')) throw refused('A referral needs subject: the Patient referred', `${where}.subject`, 'GW_ERR_BAD_REQUEST');
  // The condition: reasonCode, or the Conditions named by reasonReference (as HL7 DG1 segments map).
  const conditions = icd10Codes(sr.reasonCode);
  for (const ref of sr.reasonReference ?? []) {
    const found = ref.reference?.startsWith('Condition/') ? await resolve(ref.reference) : undefined;
    if (found?.resourceType === 'Condition') conditions.push(...icd10Codes(found.code ? [found.code] : []));
  }
  if (conditions.length === 0) throw refused('A referral needs reasonCode, or reasonReference to a Condition, with an ICD-10 coding of the condition', `${where}.reasonCode`, 'GW_ERR_BAD_REQUEST');
  const p = await parties(resolve, sr, where);
  const side = sideOf(ctx, p);
  if (side === 'receiver' || side === undefined) {
    throw refused(`Only the sending institution (${p.sender.uscc ?? p.sender.id}) may write its referral; client "${ctx.clientId}" acts for ${ctx.institution}`, `${where}.requester`, 'GW_ERR_FORBIDDEN');
  }
  if (w.current && isReferralRequest(w.current)) {
    // The parties and the condition are fixed once sent: a new referral is a new request.
    const before = w.current;
    if (before.requester?.reference !== sr.requester?.reference || before.performer?.[0]?.reference !== sr.performer?.[0]?.reference || before.subject?.reference !== sr.subject?.reference || directionOf(before) !== direction) {
      throw refused('The sender, receiver, patient and direction of a referral cannot change', where);
    }
  }
  const exception = sr.extension?.find((e) => e.url === EXCEPTION_EXTENSION)?.valueString?.trim();
  const verdict = deps.rules.judge({
    direction,
    from: p.sender.level,
    to: p.receiver.level,
    conditions,
    exception: exception || undefined,
    // A patient returned after treatment outside the county comes back to any member.
    withinCommunity: direction === 'down' && p.sender.level !== 'outside' ? await isUnder(resolve, p.receiver, p.sender) : true,
  });
  if (!verdict.ok) throw refused(verdict.refusal as string, `${where}.performer[0]`);
  sr.extension = (sr.extension ?? []).filter((e) => e.url !== FLAG_EXTENSION);
  if (verdict.flag) sr.extension.push({ url: FLAG_EXTENSION, valueString: verdict.flag });
}

/** Checks a referral Task write: its link to the request, the transition and the side making it. */
async function checkTask(
  q: Queryable,
  ctx: RequestContext,
  w: WorkflowWrite,
  deps: ReferralDeps,
  resolve: (ref: string) => Promise<Resource | undefined>,
  write: (requests: readonly WriteRequest[]) => Promise<WriteResult[]>,
): Promise<void> {
  const where = w.where;
  const before = isReferralTask(w.current) ? w.current : undefined;
  if (w.method === 'DELETE' || !w.next) {
    if (ctx.scopes) throw refused('A referral Task is not deleted: the sender cancels it (status cancelled)', where);
    return;
  }
  const task = w.next;
  if (!isReferralTask(task)) throw refused('A referral Task cannot be turned into another kind of Task', `${where}.code`);
  const srRef = task.focus?.reference;
  const sr = srRef ? await resolve(srRef) : undefined;
  if (!isReferralRequest(sr) || !directionOf(sr)) throw refused('A referral Task needs focus: the referral ServiceRequest (category referral, with its direction)', `${where}.focus`, 'GW_ERR_BAD_REQUEST');
  const p = await parties(resolve, sr, srRef as string);
  if (task.requester?.reference !== sr.requester?.reference || task.owner?.reference !== sr.performer?.[0]?.reference || task.for?.reference !== sr.subject?.reference) {
    throw refused(`A referral Task's requester, owner and for must be the request's requester (${sr.requester?.reference}), performer (${sr.performer?.[0]?.reference}) and subject (${sr.subject?.reference})`, where, 'GW_ERR_BAD_REQUEST');
  }
  if (before && before.focus?.reference !== srRef) throw refused('A referral Task cannot move to another request', `${where}.focus`);
  const side = sideOf(ctx, p);
  if (!side) throw refused(`Client "${ctx.clientId}" acts for ${ctx.institution}, which is neither side of this referral`, where, 'GW_ERR_FORBIDDEN');
  const status = task.status as ReferralStatus;
  const now = (deps.now?.() ?? new Date()).toISOString();

  if (!before) {
    if (status !== 'requested') throw refused(`A referral starts as requested, not ${status}`, `${where}.status`);
    if (side === 'receiver') throw refused('Only the sending institution may open a referral', where, 'GW_ERR_FORBIDDEN');
    task.authoredOn ??= now;
    setTag(task, p.sender.uscc ?? tagOf(sr));
    return;
  }
  // The Task stays the sender's record, whichever side writes it.
  setTag(task, tagOf(before));
  const from = before.status as ReferralStatus;
  if (from === status) return;
  const allowed = TRANSITIONS[from]?.[status];
  if (!allowed) {
    const next = Object.keys(TRANSITIONS[from] ?? {});
    throw refused(`A referral cannot go from ${from} to ${status}${next.length ? ` (from ${from}: ${next.join(', ')})` : ` (${from} is final)`}`, `${where}.status`);
  }
  if (allowed !== 'either' && side !== 'either' && side !== allowed) {
    const who = allowed === 'sender' ? `the sending institution (${p.sender.uscc})` : `the receiving institution (${p.receiver.uscc})`;
    throw refused(`Only ${who} may move a referral from ${from} to ${status}`, `${where}.status`, 'GW_ERR_FORBIDDEN');
  }
  if (status === 'rejected' && !task.statusReason?.text && !task.statusReason?.coding?.length) {
    throw refused('A rejected referral needs statusReason: why it was refused', `${where}.statusReason`, 'GW_ERR_BAD_REQUEST');
  }
  if (status === 'accepted') {
    task.extension = [...(task.extension ?? []).filter((e) => e.url !== ACCEPTED_AT_EXTENSION), { url: ACCEPTED_AT_EXTENSION, valueDateTime: now }];
    if (isGreenChannel(sr)) {
      task.businessStatus = { coding: [{ system: BUSINESS_STATUS_SYSTEM, code: 'green-channel', display: '绿色通道 Green channel: immediate handling' }], text: '绿色通道：无需预约号源，立即接诊' };
    } else if (directionOf(sr) === 'up' && !(task.output ?? []).some((o) => o.valueReference?.reference?.startsWith('Appointment/'))) {
      const appointment = await bookReservedSlot(q, { request: sr, receiver: p.receiver, sender: p.sender, where }, write);
      task.output = [...(task.output ?? []), appointment];
    }
  }
  if (status === 'in-progress') task.executionPeriod = { ...(task.executionPeriod ?? {}), start: task.executionPeriod?.start ?? now };
  if (status === 'accepted' && directionOf(sr) === 'down' && !outputsOf(task, 'follow-up-plan').length) {
    task.output = [...(task.output ?? []), await createFollowUpPlan(sr, p, write)];
  }
  for (const o of outputsOf(task, 'receiving-encounter')) {
    const ref = o.valueReference?.reference;
    if (!ref?.startsWith('Encounter/') || !(await resolve(ref))) throw refused('A receiving-encounter output names an existing Encounter at the receiver', `${where}.output`, 'GW_ERR_BAD_REQUEST');
  }
  if (status === 'completed') {
    if (directionOf(sr) === 'up' && !outputsOf(task, 'back-report').some((o) => /^(DocumentReference|DiagnosticReport|Composition)\//.test(o.valueReference?.reference ?? ''))) {
      throw refused('An up-referral is completed with its back-report to the sender: a Task.output of type back-report naming the discharge summary or results (DocumentReference or DiagnosticReport)', `${where}.output`);
    }
    task.executionPeriod = { ...(task.executionPeriod ?? {}), end: now };
  }
}

/** The Task outputs of one referral output type. */
export function outputsOf(task: Task, type: string): TaskOutput[] {
  return (task.output ?? []).filter((o) => o.type?.coding?.some((c) => c.system === OUTPUT_TYPE_SYSTEM && c.code === type));
}

/** The follow-up plan (CarePlan) of a down-referral, assigned to the receiving institution's team. */
async function createFollowUpPlan(sr: ServiceRequest, p: Parties, write: (requests: readonly WriteRequest[]) => Promise<WriteResult[]>): Promise<TaskOutput> {
  const plan: CarePlan = {
    resourceType: 'CarePlan',
    meta: p.receiver.uscc ? { tag: [{ system: INSTITUTION_TAG_SYSTEM, code: p.receiver.uscc }] } : undefined,
    status: 'active',
    intent: 'plan',
    title: '下转随访计划 Follow-up after down-referral',
    subject: { reference: sr.subject?.reference },
    basedOn: [{ reference: `ServiceRequest/${sr.id}` }],
    author: sr.requester,
    contributor: [{ reference: `Organization/${p.receiver.id}` }],
    activity: [
      {
        detail: {
          status: 'not-started',
          kind: 'ServiceRequest',
          code: { text: '随访与康复管理 Follow-up and rehabilitation' },
          reasonCode: sr.reasonCode,
          performer: [{ reference: `Organization/${p.receiver.id}` }],
        },
      },
    ],
  };
  const [created] = await write([{ method: 'POST', type: 'CarePlan', resource: plan }]);
  return { type: { coding: [{ system: OUTPUT_TYPE_SYSTEM, code: 'follow-up-plan', display: 'Follow-up plan at the receiving institution' }] }, valueReference: { reference: `CarePlan/${created.id}` } };
}

/** The write-path hook of the referral workflow (see WorkflowHook). */
export function createReferralHook(deps: ReferralDeps): WorkflowHook {
  return {
    types: new Set(['ServiceRequest', 'Task']),
    owns: (type, current, next) => type === 'Task' && (isReferralTask(current) || isReferralTask(next)),
    async check(q, ctx, writes, resolve, write) {
      for (const w of writes) {
        // A referral request enters the workflow with its direction; one without (a plain HL7 REF^I12
        // referral record, say) is stored as any ServiceRequest, and no referral Task can name it.
        if (w.type === 'ServiceRequest' && w.next && isReferralRequest(w.next) && (directionOf(w.next) || (isReferralRequest(w.current) && directionOf(w.current)))) await checkRequest(ctx, w, deps, resolve);
        else if (w.type === 'ServiceRequest' && isReferralRequest(w.current) && !w.next && ctx.scopes) throw refused('A referral request is not deleted: the sender cancels its Task', w.where);
        else if (w.type === 'Task' && (isReferralTask(w.current) || isReferralTask(w.next))) await checkTask(q, ctx, w, deps, resolve, write);
      }
    },
  };
}
