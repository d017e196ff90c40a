/**
 * Referrals over HL7 v2, for HIS systems that cannot speak FHIR. The mapping engine turns the
 * message into its Bundle (mappings/hl7v2/REF_I12.json, RRI_I12.json); this step then brings the
 * referral into the same workflow as a FHIR one, and the Bundle goes through the one write path,
 * where the workflow hook (workflow.ts) checks it exactly as it checks a REST write:
 *
 * - REF^I12 (and I13, a modification): the PRD segments name the institutions: PRD-1 `RP` the
 *   referring one, which must be the sender's own (MSH-3/MSH-4 are bound to it), `RT` the
 *   referred-to one, by PRD-7 (provider identifiers), PRD-10 (organization identifier, XON-10 or
 *   XON-3) or PRD-4 (facility, PL-4): a USCC, or the facility code of a registered sender. The
 *   direction is RF1-3 or RF1-10 (table referralDirection), else the levels of the two
 *   institutions; the condition is the DG1 diagnoses; the priority RF1-2. The ServiceRequest gets
 *   requester, performer and direction, and a referral Task (status requested) is created once,
 *   keyed on the referral identifier RF1-6. Each PRD is also kept as a PractitionerRole
 *   (segments/PRD) of the institution it names.
 * - RRI^I12 from the receiving institution: RF1-1 (table referralTaskStatus) moves the Task of the
 *   referral that RF1-6 (originating referral identifier), else RF1-11 (external referral
 *   identifier), names; a reason (NTE, else RF1-10) goes to statusReason, the reports sent along
 *   (OBR) become the back-report outputs.
 * - REF^I14 from the sender cancels the referral's Task.
 *
 * A REF^I12 whose PRD segments name no member institution and whose RF1 names no direction (the
 * referral records of older feeds) is stored as a plain ServiceRequest, as before.
 * Refusals by the write path name the segment and field they come from (`locate`).
 */
import type { BundleEntry, Identifier, Organization, PractitionerRole, Reference, Resource, ServiceRequest, Task, TaskOutput } from '@medplum/fhirtypes';
import type { MapFn, Mapped, MappingContext, SenderRegistry } from '../ingest/index.js';
import { valueAt, type Hl7Location, type Hl7Message, type Hl7Segment } from '../ingest/hl7v2/index.js';
import { deterministicUuid, HL7_ERROR, MappingError, searchEscape, triggerOf } from '../ingest/hl7v2/mapping/index.js';
import { USCC_SYSTEM } from '../fhir/systems.js';
import { institutionsByUscc } from '../recognition/index.js';
import type { Queryable } from '../store/index.js';
import { findMatches } from '../store/search/index.js';
import { DIRECTION_EXTENSION, OUTPUT_TYPE_SYSTEM, REFERRAL_TASK_CODE, TASK_CODE_SYSTEM } from './codes.js';
import type { Direction, LevelRules, ReferralLevel } from './rules.js';
import { directionOf, isReferralRequest, isReferralTask, openingTask, type ReferralStatus } from './workflow.js';

export interface ReferralHl7Deps {
  readonly db: Queryable;
  /** The registered senders: a facility code (MSH-4) names the institution it is bound to. */
  readonly senders: SenderRegistry;
  readonly rules: LevelRules;
  /** The mapping tables (mappings/hl7v2/tables.json): referralDirection, referralTaskStatus. */
  readonly tables: ReadonlyMap<string, ReadonlyMap<string, unknown>>;
}

const USCC = /^[0-9A-HJ-NPQRTUWXY]{18}$/;
/** Most referrals with one identifier value looked at when matching an answer. */
const MAX_MATCHES = 20;

/** One identifier a PRD segment gives, and where. */
interface Named {
  readonly value: string;
  /** The USCC it stands for: itself, or the institution of the sender with that facility code. */
  readonly uscc?: string;
  readonly location: Hl7Location;
}

/** A PRD segment: its role and the institution identifiers it carries. */
interface Provider {
  readonly segment: Hl7Segment;
  readonly role: string;
  readonly names: readonly Named[];
}

/** A resolved institution. */
interface Member {
  readonly uscc: string;
  readonly id: string;
  readonly level: ReferralLevel;
  readonly location: Hl7Location;
}

const at = (segment: Hl7Segment, field?: number, component?: number, repetition?: number): Hl7Location => ({
  segment: segment.name,
  position: segment.position,
  ...(field !== undefined ? { field } : {}),
  ...(repetition !== undefined && repetition > 1 ? { repetition } : {}),
  ...(component !== undefined ? { component } : {}),
});

const refuse = (code: (typeof HL7_ERROR)[keyof typeof HL7_ERROR], location: Hl7Location | undefined, text: string) => new MappingError(code, location, text);

function lookup(tables: ReferralHl7Deps['tables'], table: string, code: string): string | undefined {
  const t = tables.get(table);
  const key = code.trim();
  const hit = t?.get(key) ?? t?.get(key.toUpperCase());
  return typeof hit === 'string' ? hit : undefined;
}

/** The institution identifiers of each PRD segment (PRD-7, PRD-10 XON-10/XON-3, PRD-4 PL-4). */
function providers(msg: Hl7Message, senders: SenderRegistry): Provider[] {
  const facility = new Map(senders.senders.map((s) => [s.sendingFacility, s.institution]));
  const named = (value: string, location: Hl7Location): Named[] => {
    const v = value.trim();
    if (!v) return [];
    return [{ value: v, uscc: USCC.test(v) ? v : facility.get(v), location }];
  };
  return msg.segments
    .filter((s) => s.name === 'PRD')
    .map((segment) => {
      const names: Named[] = [];
      (segment.fields[7] ?? []).forEach((_rep, i) => names.push(...named(valueAt(segment, 7, 1, 1, i + 1), at(segment, 7, 1, i + 1))));
      (segment.fields[10] ?? []).forEach((_rep, i) => {
        names.push(...named(valueAt(segment, 10, 10, 1, i + 1), at(segment, 10, 10, i + 1)));
        names.push(...named(valueAt(segment, 10, 3, 1, i + 1), at(segment, 10, 3, i + 1)));
      });
      names.push(...named(valueAt(segment, 4, 4), at(segment, 4, 4)));
      return { segment, role: valueAt(segment, 1).trim().toUpperCase(), names };
    });
}

/** The member institutions of the USCCs named, by USCC. */
async function members(db: Queryable, usccs: readonly string[]): Promise<Map<string, { id: string; level: ReferralLevel }>> {
  const out = new Map<string, { id: string; level: ReferralLevel }>();
  for (const [uscc, i] of await institutionsByUscc(db, [...new Set(usccs)])) {
    out.set(uscc, { id: i.id, level: i.level === 'village' || i.level === 'township' || i.level === 'county' ? i.level : 'outside' });
  }
  return out;
}

/** The institution a PRD segment names; throws when it names one that is not known. */
function memberOf(p: Provider, known: Map<string, { id: string; level: ReferralLevel }>, what: string): Member | undefined {
  for (const n of p.names) {
    const m = n.uscc ? known.get(n.uscc) : undefined;
    if (m && n.uscc) return { uscc: n.uscc, ...m, location: n.location };
  }
  const meant = p.names.find((n) => n.uscc);
  if (meant) {
    throw refuse(HL7_ERROR.UNKNOWN_KEY_IDENTIFIER, meant.location, `the ${what} "${meant.value}" is not an institution of the community (no Organization with USCC ${meant.uscc})`);
  }
  return undefined;
}

const organization = (uscc: string): Reference<Organization> => ({ reference: `Organization?identifier=${encodeURIComponent(searchEscape(USCC_SYSTEM))}|${encodeURIComponent(searchEscape(uscc))}` });

/** The referral ServiceRequest entry of a mapped REF message (the RF1 rule). */
function referralEntry(entries: readonly BundleEntry[]): number {
  return entries.findIndex((e) => isReferralRequest(e.resource));
}

/** The text of the reason sent with a status: the NTE comments, else RF1-10. */
function reasonText(msg: Hl7Message): string | undefined {
  const notes = msg.segments.filter((s) => s.name === 'NTE').map((s) => valueAt(s, 3).trim()).filter(Boolean);
  if (notes.length) return notes.join('\n');
  const rf1 = msg.segments.find((s) => s.name === 'RF1');
  return (valueAt(rf1, 10, 2) || valueAt(rf1, 10, 1)).trim() || undefined;
}

/** The referral (its request and Task) an answer or cancellation names by RF1-6, else RF1-11. */
async function findReferral(db: Queryable, rf1: Hl7Segment, party: { uscc: string; id: string }): Promise<{ request: ServiceRequest; task: Task; version: number }> {
  const keys = [
    { field: 6, value: valueAt(rf1, 6).trim(), namespace: valueAt(rf1, 6, 2).trim(), uid: valueAt(rf1, 6, 3).trim() },
    { field: 11, value: valueAt(rf1, 11).trim(), namespace: '', uid: '' },
  ].filter((k) => k.value);
  if (keys.length === 0) throw refuse(HL7_ERROR.REQUIRED_FIELD_MISSING, at(rf1, 6), 'the referral answered is named by RF1-6 (originating referral identifier) or RF1-11 (external referral identifier); both are empty');
  const me = `Organization/${party.id}`;
  for (const key of keys) {
    const rows = await findMatches(db, 'ServiceRequest', { identifier: searchEscape(key.value) }, MAX_MATCHES);
    const requests = rows
      .map((r) => JSON.parse(r.content as string) as ServiceRequest)
      .filter((sr) => isReferralRequest(sr) && (sr.requester?.reference === me || sr.performer?.[0]?.reference === me))
      .filter((sr) => (sr.identifier ?? []).some((i) => i.value === key.value && sameNamespace(i, key.namespace, key.uid)));
    if (requests.length > 1) {
      throw refuse(HL7_ERROR.UNKNOWN_KEY_IDENTIFIER, at(rf1, key.field), `${requests.length} referrals of ${party.uscc} carry the identifier "${key.value}"; send the one the referral was sent with`);
    }
    const request = requests[0];
    if (!request) continue;
    if (!directionOf(request)) {
      throw refuse(HL7_ERROR.UNKNOWN_KEY_IDENTIFIER, at(rf1, key.field), `referral "${key.value}" was stored as a plain record (its PRD segments named no member institution), so it has no workflow to update`);
    }
    const taskRows = await findMatches(db, 'Task', { focus: `ServiceRequest/${request.id}`, code: `${TASK_CODE_SYSTEM}|${REFERRAL_TASK_CODE}` }, 2);
    const tasks = taskRows.map((row) => ({ task: JSON.parse(row.content as string) as Task, version: row.versionId })).filter((x) => isReferralTask(x.task));
    if (!tasks[0]) throw refuse(HL7_ERROR.UNKNOWN_KEY_IDENTIFIER, at(rf1, key.field), `referral "${key.value}" has no workflow Task`);
    return { request, ...tasks[0] };
  }
  const [first] = keys;
  throw refuse(
    HL7_ERROR.UNKNOWN_KEY_IDENTIFIER,
    at(rf1, first.field),
    `no referral sent by or to ${party.uscc} carries the identifier "${keys.map((k) => k.value).join('" or "')}" (RF1-6 originating, RF1-11 external referral identifier)`,
  );
}

/** An identifier from RF1-6 (EI) matches a stored one: same OID, or the same namespace in the system. */
function sameNamespace(i: Identifier, namespace: string, uid: string): boolean {
  if (uid && /^\d+(\.\d+)+$/.test(uid)) return i.system === `urn:oid:${uid}`;
  if (!namespace) return true;
  return (i.system ?? '').endsWith(`/${encodeURIComponent(namespace)}`);
}

/** Maps HL7 v2 referral messages into the referral workflow; every other message passes through `next`. */
export function referralMap(next: MapFn, deps: ReferralHl7Deps): MapFn {
  return async (message, ctx) => {
    const { type, event } = triggerOf(message);
    const trigger = `${type}^${event}`;
    const mapped = await next(message, ctx);
    if (trigger === 'REF^I12' || trigger === 'REF^I13' || trigger === 'REF^I14') return referral(message, ctx, mapped, trigger, deps);
    if (trigger === 'RRI^I12') return answer(message, ctx, mapped, deps);
    return mapped;
  };
}

/** Where in the message a write-path refusal about one entry comes from. */
type Locator = (path: string) => Hl7Location | undefined;

function locator(entries: ReadonlyMap<number, Locator>, fallback?: Mapped['locate']): Mapped['locate'] {
  return (expression) => {
    const m = /^Bundle\.entry\[(\d+)\](?:\.resource)?\.?(.*)$/.exec(expression);
    const hit = m ? entries.get(Number(m[1]))?.(m[2]) : undefined;
    return hit ?? fallback?.(expression);
  };
}

function taskLocator(msg: Hl7Message, rf1: Hl7Segment): Locator {
  const firstObr = msg.segments.find((s) => s.name === 'OBR');
  const firstNte = msg.segments.find((s) => s.name === 'NTE');
  return (path) => {
    if (path.startsWith('status')) return path.startsWith('statusReason') ? (firstNte ? at(firstNte, 3) : at(rf1, 10)) : at(rf1, 1);
    if (path.startsWith('output')) return firstObr ? at(firstObr, 4) : at(rf1, 1);
    return at(rf1, 6);
  };
}

/** The providers' roles (segments/PRD, one entry per PRD, in order) belong to the member institutions they name. */
function placeRoles(entries: BundleEntry[], prds: readonly Provider[], known: ReadonlyMap<string, unknown>): void {
  const roles = entries.flatMap((e, i) => (e.resource?.resourceType === 'PractitionerRole' ? [i] : []));
  prds.forEach((p, k) => {
    const i = roles[k];
    const uscc = p.names.find((n) => n.uscc && known.has(n.uscc))?.uscc;
    if (i === undefined || !uscc) return;
    entries[i] = { ...entries[i], resource: { ...(entries[i].resource as PractitionerRole), organization: organization(uscc) } };
  });
}

/** REF^I12/I13/I14: the referral request joins the workflow, with its Task. */
async function referral(msg: Hl7Message, ctx: MappingContext, mapped: Mapped, trigger: string, deps: ReferralHl7Deps): Promise<Mapped> {
  const rf1 = msg.segments.find((s) => s.name === 'RF1') as Hl7Segment;
  const prds = providers(msg, deps.senders);
  const rt = prds.find((p) => p.role === 'RT');
  const rp = prds.find((p) => p.role === 'RP');
  const sent = [{ field: 3, code: valueAt(rf1, 3) }, { field: 10, code: valueAt(rf1, 10) }].map((c) => ({ ...c, direction: c.code ? lookup(deps.tables, 'referralDirection', c.code) : undefined }));
  const coded = sent.find((c) => c.direction);
  // A plain referral record: no member institution named, no direction sent.
  if (!coded && !prds.some((p) => p.names.some((n) => n.uscc))) return mapped;

  const known = await members(deps.db, [ctx.institution, ...prds.flatMap((p) => p.names.flatMap((n) => (n.uscc ? [n.uscc] : [])))]);
  const senderOrg = known.get(ctx.institution);
  const msh4 = at(msg.segments[0], 4);
  if (!senderOrg) throw refuse(HL7_ERROR.APPLICATION_INTERNAL_ERROR, msh4, `the sender's institution ${ctx.institution} has no Organization in the community directory`);
  const sender: Member = { uscc: ctx.institution, ...senderOrg, location: msh4 };
  if (!rt) throw refuse(HL7_ERROR.REQUIRED_FIELD_MISSING, at(rf1), 'a referral names the referred-to institution in a PRD segment with PRD-1 RT (its USCC or facility code in PRD-7, PRD-10 or PRD-4)');
  const receiver = memberOf(rt, known, 'referred-to institution');
  if (!receiver) throw refuse(HL7_ERROR.UNKNOWN_KEY_IDENTIFIER, at(rt.segment, 7), 'the PRD segment with PRD-1 RT names no institution: give its USCC or facility code in PRD-7, PRD-10 or PRD-4');
  const referring = rp ? memberOf(rp, known, 'referring institution') : undefined;
  if (referring && referring.uscc !== sender.uscc) {
    throw refuse(
      HL7_ERROR.APPLICATION_INTERNAL_ERROR,
      referring.location,
      `the referring institution (PRD-1 RP) ${referring.uscc} is not the sender's: MSH-3/MSH-4 "${valueAt(msg.segments[0], 3)}"/"${valueAt(msg.segments[0], 4)}" send for ${sender.uscc}, and a referral is sent by its referring institution`,
    );
  }
  let direction = coded?.direction as Direction | undefined;
  if (!direction) {
    const [from, to] = [deps.rules.rank(sender.level), deps.rules.rank(receiver.level)];
    if (from === to) {
      throw refuse(HL7_ERROR.REQUIRED_FIELD_MISSING, at(rf1, 3), `the direction cannot be told from the levels (${sender.level} → ${receiver.level}): send UP or DOWN (上转/下转) in RF1-3`);
    }
    direction = to > from ? 'up' : 'down';
  }

  const entries = [...mapped.bundle.entry ?? []];
  const index = referralEntry(entries);
  if (index < 0) return mapped;
  const entry = entries[index];
  const sr = structuredClone(entry.resource) as ServiceRequest;
  const key = sr.identifier?.find((i) => i.system && i.value === valueAt(rf1, 6).trim());
  if (!key) throw refuse(HL7_ERROR.REQUIRED_FIELD_MISSING, at(rf1, 6), 'a referral names itself in RF1-6 (originating referral identifier), so that the answers (RRI^I12) can find it');
  sr.extension = [...(sr.extension ?? []).filter((e) => e.url !== DIRECTION_EXTENSION), { url: DIRECTION_EXTENSION, valueCode: direction }];
  const [requester, performer] = [organization(sender.uscc), organization(receiver.uscc)];
  sr.requester = requester;
  sr.performer = [performer];
  if (trigger === 'REF^I14') sr.status = 'revoked';
  else if (sr.status === 'unknown' || sr.status === 'revoked') sr.status = 'active';
  entries[index] = { ...entry, resource: sr };
  placeRoles(entries, prds, known);

  const pid = msg.segments.find((s) => s.name === 'PID');
  const dg1 = msg.segments.find((s) => s.name === 'DG1');
  const rfLocate: Locator = (path) => {
    if (path.startsWith('performer')) return receiver.location;
    if (path.startsWith('requester')) return referring?.location ?? sender.location;
    if (path.startsWith('extension')) return coded ? at(rf1, coded.field) : receiver.location;
    if (path.startsWith('reason')) return dg1 ? at(dg1, 3) : at(rf1, 10);
    if (path.startsWith('subject')) return pid ? at(pid, 3) : undefined;
    if (path.startsWith('priority')) return at(rf1, 2);
    return at(rf1);
  };
  const byEntry = new Map<number, Locator>([[index, rfLocate]]);
  const condition = `identifier=${encodeURIComponent(searchEscape(key.system as string))}|${encodeURIComponent(searchEscape(key.value as string))}`;
  if (trigger === 'REF^I14') {
    const current = await findReferral(deps.db, rf1, sender);
    const task: Task = { ...current.task, status: 'cancelled' };
    const reason = reasonText(msg);
    if (reason) task.statusReason = { text: reason };
    byEntry.set(entries.length, taskLocator(msg, rf1));
    entries.push({ request: { method: 'PUT', url: `Task/${current.task.id}`, ifMatch: `W/"${current.version}"` }, resource: task });
  } else {
    const task: Task = {
      ...openingTask(sr, entry.fullUrl as string),
      identifier: [{ system: key.system, value: key.value }],
      ...(sr.priority ? { priority: sr.priority } : {}),
    };
    byEntry.set(entries.length, taskLocator(msg, rf1));
    entries.push({ fullUrl: `urn:uuid:${deterministicUuid(`${entry.fullUrl}|referral-task`)}`, request: { method: 'POST', url: 'Task', ifNoneExist: condition }, resource: task });
  }
  return { bundle: { ...mapped.bundle, entry: entries }, locate: locator(byEntry, mapped.locate) };
}

/** RRI^I12: the receiving (or sending) institution moves the referral's Task. */
async function answer(msg: Hl7Message, ctx: MappingContext, mapped: Mapped, deps: ReferralHl7Deps): Promise<Mapped> {
  const rf1 = msg.segments.find((s) => s.name === 'RF1') as Hl7Segment;
  const code = valueAt(rf1, 1).trim();
  if (!code) throw refuse(HL7_ERROR.REQUIRED_FIELD_MISSING, at(rf1, 1), 'RF1-1 (referral status) says what becomes of the referral: A accepted, R rejected, CM completed …');
  const status = lookup(deps.tables, 'referralTaskStatus', code) as ReferralStatus | undefined;
  if (!status) throw refuse(HL7_ERROR.TABLE_VALUE_NOT_FOUND, at(rf1, 1), `RF1-1 "${code}" is not in table referralTaskStatus`);
  const prds = providers(msg, deps.senders);
  const known = await members(deps.db, [ctx.institution, ...prds.flatMap((p) => p.names.flatMap((n) => (n.uscc ? [n.uscc] : [])))]);
  const me = known.get(ctx.institution);
  const msh4 = at(msg.segments[0], 4);
  if (!me) throw refuse(HL7_ERROR.APPLICATION_INTERNAL_ERROR, msh4, `the sender's institution ${ctx.institution} has no Organization in the community directory`);
  const current = await findReferral(deps.db, rf1, { uscc: ctx.institution, id: me.id });

  const entries = [...mapped.bundle.entry ?? []];
  placeRoles(entries, prds, known);
  const task: Task = structuredClone(current.task);
  task.status = status;
  const reason = reasonText(msg);
  if (reason && (status === 'rejected' || status === 'cancelled' || status === 'on-hold')) task.statusReason = { text: reason };
  const reports: TaskOutput[] = entries
    .filter((e) => e.resource?.resourceType === 'DiagnosticReport' && e.fullUrl)
    .map((e) => ({ type: { coding: [{ system: OUTPUT_TYPE_SYSTEM, code: 'back-report', display: 'Discharge summary or results sent back to the referring institution' }] }, valueReference: { reference: e.fullUrl as string } }));
  if (reports.length) task.output = [...(task.output ?? []), ...reports];
  const byEntry = new Map<number, Locator>([[entries.length, taskLocator(msg, rf1)]]);
  entries.push({ request: { method: 'PUT', url: `Task/${task.id}`, ifMatch: `W/"${current.version}"` }, resource: task as Resource });
  return { bundle: { ...mapped.bundle, entry: entries }, locate: locator(byEntry, mapped.locate) };
}
