/**
 * Clinical facts of a FHIR Bundle, for comparing our output with another converter's: identifiers,
 * names, birth date and sex; encounter class and period; observation codes, values, units,
 * reference ranges, interpretation, status and effective time; diagnosis codes; order numbers.
 * Ids, extensions, references and formatting differences are left out on purpose.
 */
type R = Record<string, unknown>;

const arr = (v: unknown): R[] => (Array.isArray(v) ? (v as R[]) : []);
const obj = (v: unknown): R => (v && typeof v === 'object' ? (v as R) : {});
const s = (v: unknown): string | undefined => (v === undefined || v === null ? undefined : String(v));

const OFFSET = /(Z|[+-]\d{2}:\d{2})$/;

/** Date/time cut to minutes (converters differ in seconds padding), its UTC offset kept when it has one. */
function dt(v: unknown): string | undefined {
  const t = s(v);
  if (t === undefined) return undefined;
  const off = t.length > 10 ? OFFSET.exec(t)?.[1] : undefined;
  return t.slice(0, 16) + (off === undefined ? '' : off === 'Z' ? '+00:00' : off);
}

const TIME = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})([+-]\d{2}:\d{2})?$/;

/**
 * Two facts agree when equal; two times agree when they show the same local time (a source time
 * without offset gets each converter's default zone: ours the sender's +08:00, rs UTC) or name
 * the same instant (msft restates a time that has an offset in its own host zone: 11:34+01:10
 * as 15:54+05:30).
 */
export function sameFact(expected: string, actual: string | undefined): boolean {
  if (actual === expected) return true;
  const [e, a] = [TIME.exec(expected), actual === undefined ? null : TIME.exec(actual)];
  if (!e || !a) return false;
  if (e[1] === a[1]) return true;
  return e[2] !== undefined && a[2] !== undefined && Date.parse(`${e[1]}:00${e[2]}`) === Date.parse(`${a[1]}:00${a[2]}`);
}

function firstCode(cc: unknown): string | undefined {
  return s(arr(obj(cc).coding)[0]?.code);
}

/**
 * msft codes the observations it derives from ACC and PDA in a placeholder system of its own; we
 * code the same observations with the standard codes the VRDR IG uses (our segments/ACC and
 * segments/PDA_* mappings). Same concept, compared under the standard code.
 */
const MSFT_PLACEHOLDER = 'http://example.com/v2-to-fhir-converter/CodeSystem/observation-code';
const PLACEHOLDER_CODES: Record<string, string> = {
  'injury-incident': '11374-6', // LOINC Injury incident description Narrative
  'death-certificate': '308646001', // SNOMED CT Death certification
  autopsy: '85699-7', // LOINC Autopsy was performed
  coroner: '74497-9', // LOINC Medical examiner or coroner was contacted
};

function observationCode(cc: unknown): string | undefined {
  const c = obj(arr(obj(cc).coding)[0]);
  const code = s(c.code);
  return c.system === MSFT_PLACEHOLDER && code !== undefined ? (PLACEHOLDER_CODES[code] ?? code) : code;
}

export function clinicalFacts(bundle: unknown): Map<string, string> {
  const facts = new Map<string, string>();
  const put = (k: string, v: string | undefined): void => {
    if (v !== undefined && v !== '') facts.set(k, v);
  };
  const resources = arr(obj(bundle).entry).map((e) => obj(e.resource));
  const seen = new Map<string, number>();
  const nth = (k: string): number => {
    const n = seen.get(k) ?? 0;
    seen.set(k, n + 1);
    return n;
  };
  for (const r of resources) {
    switch (r.resourceType) {
      case 'Patient': {
        if (r.active === false) break;
        const p = `Patient[${nth('Patient')}]`;
        // An identifier without a value (a type only) states nothing to compare.
        for (const id of arr(r.identifier)) if (s(id.value) !== undefined) put(`${p}.identifier|${s(id.value)}`, 'present');
        const name = obj(arr(r.name)[0]);
        put(`${p}.name.family`, s(name.family));
        put(`${p}.name.given`, arr(name.given).join(' ') || undefined);
        put(`${p}.birthDate`, s(r.birthDate)?.slice(0, 10));
        put(`${p}.gender`, s(r.gender));
        break;
      }
      case 'Encounter': {
        const p = `Encounter[${nth('Encounter')}]`;
        put(`${p}.class`, s(obj(r.class).code));
        put(`${p}.period.start`, dt(obj(r.period).start));
        put(`${p}.period.end`, dt(obj(r.period).end));
        break;
      }
      case 'Observation': {
        const code = observationCode(r.code) ?? '?';
        const p = `Observation[${code}#${nth(`Observation ${code}`)}]`;
        const q = obj(r.valueQuantity);
        put(`${p}.value`, s(q.value) ?? s(r.valueString)?.trim() ?? firstCode(r.valueCodeableConcept) ?? dt(r.valueDateTime) ?? s(r.valueTime));
        put(`${p}.unit`, s(q.code) ?? s(q.unit));
        if (r.valueRange) put(`${p}.value`, `${s(obj(obj(r.valueRange).low).value)}-${s(obj(obj(r.valueRange).high).value)}`);
        if (r.valueRatio) put(`${p}.value`, `${s(obj(obj(r.valueRatio).numerator).value)}:${s(obj(obj(r.valueRatio).denominator).value)}`);
        const rr = obj(arr(r.referenceRange)[0]);
        put(`${p}.referenceRange.low`, s(obj(rr.low).value));
        put(`${p}.referenceRange.high`, s(obj(rr.high).value));
        put(`${p}.interpretation`, firstCode(arr(r.interpretation)[0]));
        put(`${p}.status`, s(r.status));
        put(`${p}.effective`, dt(r.effectiveDateTime));
        break;
      }
      case 'Condition':
        put(`Condition[${firstCode(r.code) ?? '?'}]`, 'present');
        break;
      case 'ServiceRequest':
      case 'DiagnosticReport':
        for (const id of arr(r.identifier)) if (s(id.value) !== undefined) put(`${s(r.resourceType)}.identifier|${s(id.value)}`, 'present');
        // The placer group number (ORC-4) is an order number of the request wherever a converter
        // files it: msft and rs add it to ServiceRequest.identifier typed PGN, the v2-to-FHIR IG
        // (and we) put that same Identifier in ServiceRequest.requisition. Same number, same type.
        if (r.resourceType === 'ServiceRequest') {
          const req = s(obj(r.requisition).value);
          if (req !== undefined) put(`ServiceRequest.identifier|${req}`, 'present');
        }
        if (r.resourceType === 'DiagnosticReport') put(`DiagnosticReport[${firstCode(r.code) ?? '?'}].status`, s(r.status));
        break;
    }
  }
  return facts;
}

export interface Disagreement {
  readonly fixture: string;
  readonly field: string;
  readonly expected: string;
  readonly actual: string | null;
}

/** Compares every fact the other converter states with ours. */
export function compareFacts(fixture: string, expected: Map<string, string>, ours: Map<string, string>): { compared: number; disagreements: Disagreement[] } {
  const disagreements: Disagreement[] = [];
  for (const [k, v] of expected) {
    const a = ours.get(k);
    if (!sameFact(v, a)) disagreements.push({ fixture, field: k, expected: v, actual: a ?? null });
  }
  return { compared: expected.size, disagreements };
}
