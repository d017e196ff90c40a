/**
 * Consent enforcement (PIPL): a patient's active `Consent` with a `deny` provision withholds their
 * record, or only its sensitive categories, from every member institution or the named ones.
 *
 * - Scope: a Consent on any local Patient covers the whole person (every Patient linked to the same
 *   golden record), since the person, not one registration, consents.
 * - Categories (`provision.securityLabel`, v3-ActCode): `PSY` mental health, `HIV`, `STD`, `SEX`
 *   sexual and reproductive health; none listed means the whole record. A resource's categories are
 *   its `meta.security` labels plus those its codes imply (ICD-10 chapters, a few LOINC tests).
 * - Institutions (`provision.actor.reference`): `Organization/{id}` or an identifier with the
 *   institution's USCC; none listed means every institution. The institution that wrote a resource
 *   always sees it: it is its own record.
 * - What is never withheld: the Patient and Person resources (the index of the record, needed to
 *   find the person at all) and Consents themselves.
 * - Break the glass: a clinician (a HIS client, with `X-User-Id`) sending `X-Break-Glass: <reason>`
 *   sees what would have been withheld; the access is flagged and audited (`subtype=break-glass`).
 */
import type { Coding, Consent, Resource } from '@medplum/fhirtypes';
import type { Queryable } from '../store/index.js';
import type { RequestContext } from '../fhir/context.js';
import { INSTITUTION_TAG_SYSTEM, USCC_SYSTEM } from '../fhir/systems.js';
import { GatewayError } from '../errors.js';
import { recordAccess } from '../audit/index.js';

export const ACT_CODE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
export const SENSITIVE_CATEGORIES = ['PSY', 'HIV', 'STD', 'SEX'] as const;

/** ICD-10 code ranges that imply a sensitive category. */
const ICD10: readonly [string, string, string][] = [
  ['F00', 'F99', 'PSY'],
  ['B20', 'B24', 'HIV'],
  ['Z21', 'Z21', 'HIV'],
  ['A50', 'A64', 'STD'],
  ['O00', 'O9A', 'SEX'],
  ['Z30', 'Z39', 'SEX'],
  ['N96', 'N98', 'SEX'],
];
/** LOINC tests whose results are sensitive: HIV antibody/antigen/RNA, syphilis. */
const LOINC: Readonly<Record<string, string>> = {
  '7917-8': 'HIV', '7918-6': 'HIV', '56888-1': 'HIV', '75622-1': 'HIV', '68961-2': 'HIV', '5221-7': 'HIV', '29893-5': 'HIV', '25835-0': 'HIV',
  '20507-0': 'STD', '22587-0': 'STD', '5292-8': 'STD',
};

function codingsOf(resource: Resource): Coding[] {
  const r = resource as unknown as Record<string, unknown>;
  const out: Coding[] = [];
  const take = (cc: unknown) => {
    for (const c of ([] as unknown[]).concat(cc ?? [])) {
      const codings = (c as { coding?: Coding[] } | undefined)?.coding;
      if (Array.isArray(codings)) out.push(...codings);
    }
  };
  take(r.code);
  take(r.reasonCode);
  take(r.conclusionCode);
  take(r.valueCodeableConcept);
  take(r.medicationCodeableConcept);
  return out;
}

/** The sensitive categories of a resource: its security labels and what its codes imply. */
export function sensitivityOf(resource: Resource): Set<string> {
  const out = new Set<string>();
  for (const s of resource.meta?.security ?? []) if (s.code && (SENSITIVE_CATEGORIES as readonly string[]).includes(s.code)) out.add(s.code);
  for (const c of codingsOf(resource)) {
    const code = c.code ?? '';
    if (c.system === 'http://loinc.org') {
      if (LOINC[code]) out.add(LOINC[code]);
      continue;
    }
    const head = code.toUpperCase().replace('.', '').slice(0, 3);
    if (!/^[A-Z]\d[\dA-Z]$/.test(head)) continue;
    for (const [lo, hi, cat] of ICD10) if (head >= lo && head <= hi) out.add(cat);
  }
  return out;
}

const NEVER_WITHHELD = new Set(['Patient', 'Person', 'Consent', 'AuditEvent', 'Organization', 'Practitioner', 'PractitionerRole', 'Location']);

interface Restriction {
  readonly consent: string;
  /** Empty: the whole record. */
  readonly categories: ReadonlySet<string>;
  /** USCC codes of the institutions it applies to; undefined: all. */
  readonly institutions?: ReadonlySet<string>;
}

export interface ConsentVerdict {
  /** Resources the caller may not see. */
  readonly withheld: ReadonlySet<Resource>;
  /** Resources shown only because the glass was broken. */
  readonly revealed: readonly Resource[];
}

function institutionOf(resource: Resource): string | undefined {
  return resource.meta?.tag?.find((t) => t.system === INSTITUTION_TAG_SYSTEM)?.code;
}

/** Throws unless the context may break the glass: a clinical (HIS) client naming its clinician. */
export function assertMayBreakGlass(ctx: RequestContext): void {
  if (!ctx.breakGlass) return;
  if (ctx.role !== 'his' || !ctx.institution) throw new GatewayError('GW_ERR_FORBIDDEN', 'Only a clinical client of a member institution may break the glass', { expression: 'X-Break-Glass' });
  if (!ctx.userId) throw new GatewayError('GW_ERR_FORBIDDEN', 'Breaking the glass needs the clinician named in X-User-Id', { expression: 'X-User-Id' });
}

/** True when consent rules do not apply to the context: the gateway itself. */
function exempt(ctx: RequestContext): boolean {
  return !ctx.scopes;
}

/** Every Patient id of the person `patientId` belongs to (itself included). */
export async function samePerson(q: Queryable, patientId: string): Promise<Set<string>> {
  const { rows } = await q.query<{ member: string }>(
    `SELECT o.target_id AS member
       FROM sp_reference s JOIN resource pr ON pr.rid = s.rid AND NOT pr.deleted
       JOIN sp_reference o ON o.rid = s.rid AND o.rtype = 'Person' AND o.code = 'link' AND o.target_type = 'Patient'
      WHERE s.rtype = 'Person' AND s.code = 'link' AND s.target_type = 'Patient' AND s.target_id = $1`,
    [patientId],
  );
  return new Set([patientId, ...rows.map((r) => r.member)]);
}

/**
 * A resident's app sees the resident's own record and nothing else: resources of the Patient
 * compartment of any of the person's Patients, those Patients, and the person's Person. The
 * resident's own record is never withheld from them by their own consent.
 */
async function residentVerdict(q: Queryable, ctx: RequestContext, resources: readonly Resource[], patientsOf: (r: Resource) => string[]): Promise<ConsentVerdict> {
  const own = await samePerson(q, ctx.patient as string);
  const withheld = new Set<Resource>();
  for (const r of resources) {
    const mine =
      r.resourceType === 'Patient'
        ? own.has(r.id as string)
        : r.resourceType === 'Person'
          ? ((r as { link?: { target: { reference?: string } }[] }).link ?? []).some((l) => own.has((l.target.reference ?? '').replace('Patient/', '')))
          : patientsOf(r).some((p) => own.has(p.replace('Patient/', '')));
    if (!mine) withheld.add(r);
  }
  return { withheld, revealed: [] };
}

async function anyConsent(q: Queryable): Promise<boolean> {
  const { rows } = await q.query("SELECT 1 FROM resource WHERE type = 'Consent' AND NOT deleted LIMIT 1");
  return rows.length > 0;
}

/**
 * The restrictions that apply to each patient of `patientIds`, through every Patient linked to the
 * same person. Returned by patient id.
 */
async function restrictionsFor(q: Queryable, patientIds: readonly string[], now: Date): Promise<Map<string, Restriction[]>> {
  // Each patient's group: itself and every Patient linked to the same Person.
  const { rows } = await q.query<{ patient: string; member: string }>(
    `WITH mine AS (
       SELECT s.target_id AS patient, s.rid FROM sp_reference s JOIN resource pr ON pr.rid = s.rid AND NOT pr.deleted
        WHERE s.rtype = 'Person' AND s.code = 'link' AND s.target_type = 'Patient' AND s.target_id = ANY($1::text[]))
     SELECT m.patient, o.target_id AS member FROM mine m JOIN sp_reference o ON o.rid = m.rid AND o.rtype = 'Person' AND o.code = 'link' AND o.target_type = 'Patient'
     UNION SELECT p, p FROM unnest($1::text[]) p`,
    [patientIds],
  );
  const members = [...new Set(rows.map((r) => r.member))];
  const consents = await q.query<{ content: string }>(
    `SELECT c.content FROM resource c WHERE c.type = 'Consent' AND NOT c.deleted
        AND c.rid IN (SELECT rid FROM sp_reference WHERE rtype = 'Consent' AND code = 'patient' AND target_type = 'Patient' AND target_id = ANY($1::text[]))`,
    [members],
  );
  const byMember = new Map<string, Restriction[]>();
  const orgIds = new Set<string>();
  const parsed = consents.rows.map((r) => JSON.parse(r.content) as Consent);
  for (const c of parsed) for (const a of c.provision?.actor ?? []) if (a.reference?.reference?.startsWith('Organization/')) orgIds.add(a.reference.reference.slice(13));
  const usccOf = new Map<string, string>();
  if (orgIds.size) {
    const orgs = await q.query<{ id: string; value: string }>(
      `SELECT r.id, t.value FROM resource r JOIN sp_token t ON t.rid = r.rid AND t.code = 'identifier' AND t.system = $2
        WHERE r.type = 'Organization' AND r.id = ANY($1::text[])`,
      [[...orgIds], USCC_SYSTEM],
    );
    for (const o of orgs.rows) usccOf.set(o.id, o.value);
  }
  for (const c of parsed) {
    const p = c.provision;
    if (c.status !== 'active' || p?.type !== 'deny') continue;
    if (p.period?.start && Date.parse(p.period.start) > now.getTime()) continue;
    if (p.period?.end && Date.parse(p.period.end) < now.getTime()) continue;
    const actors = (p.actor ?? []).map((a) => a.reference?.identifier?.value ?? usccOf.get((a.reference?.reference ?? '').replace('Organization/', '')) ?? '');
    const restriction: Restriction = {
      consent: c.id as string,
      categories: new Set((p.securityLabel ?? []).map((s) => s.code ?? '').filter(Boolean)),
      institutions: actors.length ? new Set(actors) : undefined,
    };
    const subject = (c.patient?.reference ?? '').replace('Patient/', '');
    byMember.set(subject, [...(byMember.get(subject) ?? []), restriction]);
  }
  const out = new Map<string, Restriction[]>();
  for (const r of rows) {
    const found = byMember.get(r.member);
    if (found) out.set(r.patient, [...(out.get(r.patient) ?? []), ...found]);
  }
  return out;
}

/**
 * Decides which of `resources` the context may see. `patientsOf` names the patients each resource
 * belongs to (the Patient compartment).
 */
export async function checkConsent(q: Queryable, ctx: RequestContext, resources: readonly Resource[], patientsOf: (r: Resource) => string[], now = new Date()): Promise<ConsentVerdict> {
  if (ctx.patient !== undefined) {
    if (ctx.breakGlass) throw new GatewayError('GW_ERR_FORBIDDEN', 'A resident app cannot break the glass', { expression: 'X-Break-Glass' });
    return residentVerdict(q, ctx, resources, patientsOf);
  }
  assertMayBreakGlass(ctx);
  const candidates = resources.filter((r) => !NEVER_WITHHELD.has(r.resourceType) && !(ctx.institution && institutionOf(r) === ctx.institution));
  if (exempt(ctx) || candidates.length === 0 || !(await anyConsent(q))) return { withheld: new Set(), revealed: [] };
  const patientIds = [...new Set(candidates.flatMap((r) => patientsOf(r).map((p) => p.replace('Patient/', ''))))];
  if (patientIds.length === 0) return { withheld: new Set(), revealed: [] };
  const restrictions = await restrictionsFor(q, patientIds, now);
  const withheld = new Set<Resource>();
  for (const r of candidates) {
    const rules = patientsOf(r).flatMap((p) => restrictions.get(p.replace('Patient/', '')) ?? []);
    if (rules.length === 0) continue;
    const categories = sensitivityOf(r);
    const applies = rules.some(
      (rule) => (!rule.institutions || (ctx.institution !== undefined && rule.institutions.has(ctx.institution))) && (rule.categories.size === 0 || [...rule.categories].some((c) => categories.has(c))),
    );
    if (applies) withheld.add(r);
  }
  if (ctx.breakGlass && withheld.size) return { withheld: new Set(), revealed: [...withheld] };
  return { withheld, revealed: [] };
}

/** Audits a break-glass access: one event naming the clinician, the reason and what was revealed. */
export async function recordBreakGlass(q: Queryable, ctx: RequestContext, revealed: readonly Resource[], patientsOf: (r: Resource) => string[]): Promise<void> {
  if (!revealed.length) return;
  await recordAccess(q, { ...ctx, purposeOfUse: 'BTG' }, [
    {
      interaction: 'operation',
      operation: 'break-glass',
      outcome: '0',
      outcomeText: `break the glass: ${(ctx.breakGlass ?? '').slice(0, 500)}`,
      resources: revealed.map((r) => `${r.resourceType}/${r.id}`),
      patients: [...new Set(revealed.flatMap(patientsOf))],
    },
  ]);
}
