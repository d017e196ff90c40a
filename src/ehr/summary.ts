/**
 * The clinician-facing summary of a person's shared record, a FHIR document Bundle a referral can
 * carry (shaped after the International Patient Summary): a Composition with sections for active
 * problems, allergies, current medications, the last result of each test, recent encounters and
 * recent imaging, followed by the resources it cites, gathered from every member institution.
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, Composition, CompositionSection, Patient, Person, Resource } from '@medplum/fhirtypes';

const LOINC = 'http://loinc.org';

export interface SummaryOptions {
  /** How many recent encounters and imaging studies to list. */
  readonly recent: number;
  /** How many distinct tests' last results to list. */
  readonly results: number;
  readonly now?: Date;
}

type Any = Record<string, unknown>;

function status(r: Resource, field: string): string | undefined {
  const v = (r as unknown as Any)[field] as { coding?: { code?: string }[] } | string | undefined;
  return typeof v === 'string' ? v : v?.coding?.[0]?.code;
}

/** The clinically relevant date of a resource, for "recent" and "last". */
function when(r: Resource): string {
  const a = r as unknown as Any;
  const candidates = [
    a.effectiveDateTime,
    (a.effectivePeriod as Any | undefined)?.start,
    a.issued,
    (a.period as Any | undefined)?.start,
    a.started,
    a.authoredOn,
    a.recordedDate,
    a.onsetDateTime,
    a.recordedDate,
    r.meta?.lastUpdated,
  ];
  return String(candidates.find((c) => typeof c === 'string') ?? '');
}

function codeKey(r: Resource): string | undefined {
  const code = (r as unknown as Any).code as { coding?: { system?: string; code?: string }[]; text?: string } | undefined;
  const c = code?.coding?.find((x) => x.system === LOINC) ?? code?.coding?.[0];
  return c?.code ? `${c.system ?? ''}|${c.code}` : code?.text;
}

const newestFirst = (a: Resource, b: Resource) => when(b).localeCompare(when(a));

/** Picks the summary's sections from the person's resources. */
export function summarySections(resources: readonly Resource[], options: SummaryOptions): { title: string; code: string; entries: Resource[] }[] {
  const of = (type: string) => resources.filter((r) => r.resourceType === type);
  const problems = of('Condition').filter((c) => !['resolved', 'inactive', 'remission'].includes(status(c, 'clinicalStatus') ?? 'active') && status(c, 'verificationStatus') !== 'entered-in-error');
  const allergies = of('AllergyIntolerance').filter((a) => status(a, 'clinicalStatus') !== 'resolved' && status(a, 'verificationStatus') !== 'entered-in-error');
  const medications = [...of('MedicationRequest').filter((m) => status(m, 'status') === 'active'), ...of('MedicationStatement').filter((m) => status(m, 'status') === 'active')];
  const last = new Map<string, Resource>();
  for (const o of of('Observation').filter((o) => ['final', 'amended', 'corrected', 'preliminary'].includes(status(o, 'status') ?? '')).sort(newestFirst)) {
    const key = codeKey(o);
    if (key && !last.has(key)) last.set(key, o);
  }
  const results = [...last.values()].sort(newestFirst).slice(0, options.results);
  const encounters = of('Encounter').sort(newestFirst).slice(0, options.recent);
  const imaging = [
    ...of('ImagingStudy'),
    ...of('DiagnosticReport').filter((d) => ((d as unknown as Any).category as { coding?: { code?: string }[] }[] | undefined)?.some((c) => c.coding?.some((x) => ['RAD', 'LP29684-5', 'imaging'].includes(x.code ?? '')))),
  ]
    .sort(newestFirst)
    .slice(0, options.recent);
  return [
    { title: '现患问题 Active problems', code: '11450-4', entries: problems },
    { title: '过敏 Allergies and intolerances', code: '48765-2', entries: allergies },
    { title: '当前用药 Current medications', code: '10160-0', entries: medications },
    { title: '最近检验结果 Last results', code: '30954-2', entries: results },
    { title: '最近就诊 Recent encounters', code: '46240-8', entries: encounters },
    { title: '最近影像 Recent imaging', code: '18748-4', entries: imaging },
  ];
}

/** The summary document of a person: Composition, Patients, then the cited resources. */
export function summaryDocument(
  who: { person?: Person; patients: readonly Patient[]; subject: string },
  resources: readonly Resource[],
  options: SummaryOptions & { baseUrl: string },
): { bundle: Bundle; cited: Resource[] } {
  const sections = summarySections(resources, options);
  const url = (r: Resource) => `${options.baseUrl}/${r.resourceType}/${r.id}`;
  const now = (options.now ?? new Date()).toISOString();
  const section = (s: (typeof sections)[number]): CompositionSection => ({
    title: s.title,
    code: { coding: [{ system: LOINC, code: s.code }] },
    ...(s.entries.length
      ? { entry: s.entries.map((r) => ({ reference: url(r) })) }
      : {
          // cmp-1: a section has text, entries or sections; an empty one says so in its text.
          text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${s.title}: nothing recorded in the shared record</div>` },
          emptyReason: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/list-empty-reason', code: 'unavailable', display: 'Unavailable' }] },
        }),
  });
  const composition: Composition = {
    resourceType: 'Composition',
    id: randomUUID(),
    status: 'final',
    type: { coding: [{ system: LOINC, code: '60591-5', display: 'Patient summary Document' }] },
    subject: { reference: `Patient/${who.subject}` },
    date: now,
    author: [{ display: 'county-hie-gateway (shared record of the county medical community)' }],
    title: '患者摘要 Patient summary',
    section: sections.map(section),
  };
  const cited = [...new Map(sections.flatMap((s) => s.entries).map((r) => [url(r), r])).values()];
  return {
    bundle: {
      resourceType: 'Bundle',
      identifier: { system: 'urn:ietf:rfc:3986', value: `urn:uuid:${randomUUID()}` },
      type: 'document',
      timestamp: now,
      entry: [],
    },
    cited: [composition, ...(who.person ? [who.person] : []), ...who.patients, ...cited],
  };
}
