/**
 * Resource validation: base R4 structure, then every profile the resource claims, then the
 * community rules that need other resources (the Organization partOf chain).
 *
 * medplum's `validateResource` does the structural and invariant work. Around it this module
 * adds what it misses or reports vaguely:
 * - property names of Object.prototype (`__proto__`, `constructor`, ...) pass medplum silently
 *   (it tests `key in {}`), so they are refused here before medplum sees the resource;
 * - an unknown resourceType (also of a contained resource) throws "Unknown data type" without a
 *   path; here it is an issue at `resourceType`;
 * - "Expected array"/"Expected single value" issues carry a path without indexes; they are
 *   re-located to each offending element (`Patient.name[1].given`), and choice elements are
 *   named as sent (`Observation.valueQuantity`, not `Observation.value[x]`);
 * - invariants apply to an element but may be about one of its children: a constraint carrying
 *   the constraint-focus extension moves its issue there (`Patient.identifier[0].value`);
 * - failures of the ID card invariants gain the precise reason from the GB 11643 check;
 * - its "Invalid reference" warning for `urn:uuid:` and absolute references is dropped;
 * - codes of elements with a required binding are not checked against the ValueSet: here every
 *   `code` element, and every Coding of a bound Coding/CodeableConcept whose system the ValueSet
 *   draws from, is checked when the ValueSet can be enumerated (see bindings.ts);
 * - date, dateTime and instant values are checked for their pattern only (`1990-02-30`
 *   passes): here they must be calendar dates and times.
 *
 * Status: errors of the base R4 structure → 400 GW_ERR_INVALID_RESOURCE; profile and invariant
 * failures, unknown claimed profiles → 422 GW_ERR_PROFILE_VIOLATION; partOf chain → 422
 * GW_ERR_BUSINESS_RULE.
 */
import { OperationOutcomeError, tryGetDataType, validateResource } from '@medplum/core';
import type {
  CodeSystem,
  Identifier,
  Organization,
  OperationOutcomeIssue,
  Resource,
  SearchParameter,
  StructureDefinition,
} from '@medplum/fhirtypes';
import { GatewayError, MAX_ISSUES, type GwErrorCode } from '../errors.js';
import { checkIdCard } from '../mpi/index.js';
import { codeViolation, codingViolation, expandValueSet } from './bindings.js';
import { isKnownResourceType, loadBaseDefinitions } from './definitions.js';
import { loadProfiles } from './profiles.js';
import { CONSTRAINT_FOCUS_EXTENSION, ID_CARD_SYSTEM, INSTITUTION_LEVEL_EXTENSION, type InstitutionLevel } from './systems.js';

/** Looks up a referenced resource (relative, absolute or `urn:uuid:` reference); undefined when absent. */
export type ReferenceResolver = (reference: string) => Promise<Resource | undefined>;

export interface ValidateOptions {
  /** Profiles to check in addition to `meta.profile` (the `$validate` `profile` parameter). */
  readonly profiles?: readonly string[];
}

export interface Validator {
  /** Loaded resource profiles, with snapshots (for the CapabilityStatement). */
  readonly profiles: readonly StructureDefinition[];
  readonly extensions: readonly StructureDefinition[];
  readonly searchParameters: readonly SearchParameter[];
  readonly codeSystems: readonly CodeSystem[];
  /** All issues (errors and warnings); empty when the resource is valid. */
  validate(resource: unknown, resolver?: ReferenceResolver, options?: ValidateOptions): Promise<OperationOutcomeIssue[]>;
  /** Throws a GatewayError carrying every error issue; resolves when there is none. */
  assertValid(resource: unknown, resolver?: ReferenceResolver, options?: ValidateOptions): Promise<void>;
}

type Origin = 'structure' | 'profile' | 'rule';
interface Tagged {
  readonly origin: Origin;
  readonly issue: OperationOutcomeIssue;
}

/** Keys that are never FHIR elements and that medplum's `key in {}` test lets through. */
const RESERVED_KEYS = new Set(Object.getOwnPropertyNames(Object.prototype).flatMap((k) => [k, `_${k}`]));
const MAX_CHAIN = 16;

function issue(severity: OperationOutcomeIssue['severity'], code: OperationOutcomeIssue['code'], diagnostics: string, expression: string): OperationOutcomeIssue {
  return { severity, code, diagnostics, expression: [expression] };
}

const isErrorIssue = (i: OperationOutcomeIssue): boolean => i.severity === 'error' || i.severity === 'fatal';

/** Checks the JSON shape medplum cannot be trusted with: reserved keys, unknown nested resource types. */
function preflight(root: Record<string, unknown>, rootType: string): OperationOutcomeIssue[] {
  const issues: OperationOutcomeIssue[] = [];
  const stack: { value: unknown; path: string }[] = [{ value: root, path: rootType }];
  while (stack.length > 0) {
    const { value, path } = stack.pop() as { value: unknown; path: string };
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push({ value: value[i], path: `${path}[${i}]` });
      continue;
    }
    if (value === null || typeof value !== 'object') continue;
    const obj = value as Record<string, unknown>;
    const rt = Object.hasOwn(obj, 'resourceType') ? obj.resourceType : undefined;
    if (obj !== root && rt !== undefined && (typeof rt !== 'string' || !isKnownResourceType(rt))) {
      issues.push(issue('error', 'structure', `Unknown resource type ${JSON.stringify(rt)}`, `${path}.resourceType`));
      continue;
    }
    const children: { value: unknown; path: string }[] = [];
    for (const key of Object.keys(obj)) {
      if (RESERVED_KEYS.has(key)) {
        issues.push(issue('error', 'structure', `Invalid property "${key}": a reserved name, never a FHIR element`, `${path}.${key}`));
      } else {
        children.push({ value: obj[key], path: `${path}.${key}` });
      }
    }
    // A loop, not push(...children): a huge array would exceed the argument limit.
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]);
  }
  return issues;
}

const DATE_TYPES = new Set(['date', 'dateTime', 'instant']);
/** Lenient shape; the exact pattern is medplum's check, the calendar is this one. */
const DATE_SHAPE = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.\d+)?)?)?)?)?)?(?:Z|[+-](\d{2}):(\d{2}))?$/;
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** Why a date, dateTime or instant is not on the calendar (or the clock); undefined when it is. */
export function calendarProblem(value: string): string | undefined {
  const m = DATE_SHAPE.exec(value);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second, tzHour, tzMinute] = m.slice(1).map((x) => (x === undefined ? undefined : Number(x)));
  if (month !== undefined && (month < 1 || month > 12)) return `month ${m[2]} does not exist`;
  if (day !== undefined && month !== undefined && year !== undefined) {
    const days = new Date(Date.UTC(year, month, 0)).getUTCDate();
    if (day < 1 || day > days) return `${MONTHS[month - 1]} ${m[1]} has ${days} days, not ${m[3]}`;
  }
  if (hour !== undefined && hour > 23) return `hour ${m[4]} does not exist`;
  if (minute !== undefined && minute > 59) return `minute ${m[5]} does not exist`;
  if (second !== undefined && second > 60) return `second ${m[6]} does not exist`;
  if (tzHour !== undefined && tzMinute !== undefined && (tzMinute > 59 || tzHour * 60 + tzMinute > 14 * 60)) return `time zone offset ${m[7]}:${m[8]} does not exist`;
  return undefined;
}

/** What the base definitions say about one JSON property of a type. */
interface Slot {
  /** Type code: a data type, a backbone type (`PatientContact`), `Resource` or a primitive. */
  readonly type: string;
  /** ValueSet url of a required binding. */
  readonly valueSet?: string;
  /** Whether the walk has anything to check there (a complex type, a date, a bound code). */
  readonly visit: boolean;
}
const slotsByType = new Map<string, ReadonlyMap<string, Slot> | null>();
const PRIMITIVE_EXTENSION: Slot = { type: 'Element', visit: true };

/** JSON property → slot for a type (choice elements under each of their names); cached. */
function slotsOf(type: string): ReadonlyMap<string, Slot> | undefined {
  const cached = slotsByType.get(type);
  if (cached !== undefined) return cached ?? undefined;
  const schema = tryGetDataType(type);
  const slots = new Map<string, Slot>();
  for (const [name, el] of Object.entries(schema?.elements ?? {})) {
    const valueSet = el.binding?.strength === 'required' ? el.binding.valueSet : undefined;
    const choice = name.endsWith('[x]') ? name.slice(0, -3) : undefined;
    for (const t of choice === undefined ? el.type.slice(0, 1) : el.type) {
      const key = choice === undefined ? name : choice + t.code[0].toUpperCase() + t.code.slice(1);
      const visit = /^[A-Z]/.test(t.code) || DATE_TYPES.has(t.code) || (t.code === 'code' && valueSet !== undefined);
      slots.set(key, valueSet ? { type: t.code, valueSet, visit } : { type: t.code, visit });
      if (/^[a-z]/.test(t.code)) slots.set(`_${key}`, PRIMITIVE_EXTENSION);
    }
  }
  const result = schema ? slots : null;
  slotsByType.set(type, result);
  return result ?? undefined;
}

/**
 * Required-binding codes and calendar dates, walking the resource by the base type schemas; the
 * walk stops once it has found more than `limit` issues.
 */
function valueIssues(root: Record<string, unknown>, rootType: string, limit: number): OperationOutcomeIssue[] {
  const issues: OperationOutcomeIssue[] = [];
  const stack: { value: unknown; type: string; path: string; slot?: Slot }[] = [{ value: root, type: rootType, path: rootType }];
  while (stack.length > 0 && issues.length <= limit) {
    const { value, type, path, slot } = stack.pop() as (typeof stack)[number];
    if (typeof value === 'string') {
      if (DATE_TYPES.has(type)) {
        const why = calendarProblem(value);
        if (why) issues.push(issue('error', 'value', `Invalid ${type} ${JSON.stringify(value)}: ${why}`, path));
      } else if (type === 'code' && slot?.valueSet) {
        const expansion = expandValueSet(slot.valueSet);
        const why = expansion && codeViolation(expansion, value);
        if (why) issues.push(issue('error', 'code-invalid', why, path));
      }
      continue;
    }
    if ((typeof value === 'number' || typeof value === 'boolean') && /^[A-Z]/.test(type)) {
      // medplum lets a bare number or boolean stand where a complex type belongs.
      issues.push(issue('error', 'structure', `Expected a ${type} object, got the ${typeof value} ${String(value)}`, path));
      continue;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) continue;
    const obj = value as Record<string, unknown>;
    let actual = type;
    if (type === 'Resource') {
      if (typeof obj.resourceType !== 'string' || !isKnownResourceType(obj.resourceType)) continue;
      actual = obj.resourceType;
    }
    if (slot?.valueSet && (type === 'Coding' || type === 'CodeableConcept')) {
      const expansion = expandValueSet(slot.valueSet);
      const codings = !expansion ? [] : type === 'Coding' ? [{ coding: obj, at: path }] : codingsOf(obj.coding, `${path}.coding`);
      for (const { coding, at } of codings) {
        if (!expansion || typeof coding.code !== 'string') continue;
        const why = codingViolation(expansion, typeof coding.system === 'string' ? coding.system : undefined, coding.code);
        if (why) issues.push(issue('error', 'code-invalid', why, `${at}.code`));
      }
    }
    const slots = slotsOf(actual);
    if (!slots) continue;
    const children: (typeof stack)[number][] = [];
    for (const key of Object.keys(obj)) {
      const child = slots.get(key);
      if (!child?.visit) continue;
      const v = obj[key];
      if (Array.isArray(v)) v.forEach((x, i) => children.push({ value: x, type: child.type, path: `${path}.${key}[${i}]`, slot: child }));
      else children.push({ value: v, type: child.type, path: `${path}.${key}`, slot: child });
    }
    // A loop, not push(...children): a huge array would exceed the argument limit.
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]);
  }
  return issues;
}

function codingsOf(value: unknown, path: string): { coding: Record<string, unknown>; at: string }[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((c, i) => (c !== null && typeof c === 'object' && !Array.isArray(c) ? [{ coding: c as Record<string, unknown>, at: `${path}[${i}]` }] : []));
}

/** Concrete JSON locations of an index-less path such as `Patient.name.given`. */
function locate(resource: Record<string, unknown>, path: string): { path: string; value: unknown }[] {
  const [root, ...segments] = path.split('.');
  let current: { path: string; value: unknown }[] = [{ path: root, value: resource }];
  segments.forEach((seg, n) => {
    const next: { path: string; value: unknown }[] = [];
    for (const c of current) {
      if (c.value === null || typeof c.value !== 'object' || !Object.hasOwn(c.value, seg)) continue;
      const v = (c.value as Record<string, unknown>)[seg];
      if (Array.isArray(v) && n < segments.length - 1) v.forEach((x, i) => next.push({ path: `${c.path}.${seg}[${i}]`, value: x }));
      else next.push({ path: `${c.path}.${seg}`, value: v });
    }
    current = next;
  });
  return current;
}

/** Replaces `value[x]` in an indexed path by the JSON name present (`valueString`); unchanged when not found. */
function concreteChoice(resource: Record<string, unknown>, path: string): string {
  if (!path.includes('[x]')) return path;
  const [root, ...segments] = path.split('.');
  let node: unknown = resource;
  const out = [root];
  for (const seg of segments) {
    const m = /^([^[]+)(\[x\])?((?:\[\d+\])*)$/.exec(seg);
    if (!m || node === null || typeof node !== 'object') return path;
    let name = m[1];
    if (m[2]) {
      const prefix = name;
      const found = Object.keys(node).find((k) => k.startsWith(prefix) && /^[A-Z]/.test(k.slice(prefix.length)));
      if (!found) return path;
      name = found;
    }
    node = (node as Record<string, unknown>)[name];
    for (const idx of m[3].match(/\d+/g) ?? []) node = Array.isArray(node) ? node[Number(idx)] : undefined;
    out.push(name + m[3]);
  }
  return out.join('.');
}

/** Runs medplum; returns its issues with our diagnostics, whether it threw or not. */
function runMedplum(resource: Resource, profile?: StructureDefinition): OperationOutcomeIssue[] {
  let raw: OperationOutcomeIssue[];
  try {
    raw = validateResource(resource, profile ? { profile } : undefined);
  } catch (err) {
    if (!(err instanceof OperationOutcomeError)) throw err;
    raw = err.outcome.issue ?? [];
  }
  const out: OperationOutcomeIssue[] = [];
  for (const i of raw) {
    const text = i.details?.text ?? i.diagnostics ?? 'Invalid resource';
    // medplum takes the type of `urn:uuid:...` or absolute references from before the first
    // slash and warns that it is wrong; transaction Bundles rely on exactly such references.
    if (i.severity === 'warning' && /^Invalid reference: got "[^"]*:/.test(text)) continue;
    const expression = i.expression?.length ? i.expression.map((e) => concreteChoice(resource as unknown as Record<string, unknown>, e)) : [resource.resourceType];
    const base: OperationOutcomeIssue = { severity: i.severity, code: i.code, diagnostics: text, details: { text }, expression };
    const shape = text === 'Expected array of values for property' ? true : text === 'Expected single value for property' ? false : undefined;
    const found = shape === undefined ? [] : locate(resource as unknown as Record<string, unknown>, expression[0]);
    const wrong = found.filter((f) => Array.isArray(f.value) !== shape);
    if (wrong.length === 0) out.push(base);
    else for (const w of wrong) out.push({ ...base, expression: [w.path] });
  }
  return out;
}

const issueKey = (i: OperationOutcomeIssue): string => `${i.severity}|${i.code}|${i.diagnostics}|${(i.expression ?? []).join(',')}`;

function levelOf(org: Resource | undefined): InstitutionLevel | undefined {
  if (org?.resourceType !== 'Organization') return undefined;
  const ext = org.extension?.find((e) => e.url === INSTITUTION_LEVEL_EXTENSION);
  const code = ext?.valueCoding?.code;
  return code === 'county' || code === 'township' || code === 'village' ? code : undefined;
}

const EXPECTED_PARENT: Record<InstitutionLevel, InstitutionLevel> = { village: 'township', township: 'county', county: 'county' };

/**
 * The partOf chain of a member institution: a village belongs to a township, a township to a
 * county-level institution, a county institution (if it names a parent with a level) to a
 * county-level one; the chain must end, not loop.
 */
export async function organizationChainIssues(org: Organization, resolver: ReferenceResolver): Promise<OperationOutcomeIssue[]> {
  const level = levelOf(org);
  const first = org.partOf?.reference;
  if (!level || !first) return [];
  const at = 'Organization.partOf';
  const seen = new Set<string>(org.id ? [`Organization/${org.id}`] : []);
  const chain: string[] = [];
  let ref: string | undefined = first;
  for (let depth = 0; ref; depth++) {
    chain.push(ref);
    if (seen.has(ref)) return [issue('error', 'business-rule', `partOf chain loops: ${chain.join(' → ')}`, at)];
    if (depth >= MAX_CHAIN) return [issue('error', 'business-rule', `partOf chain is deeper than ${MAX_CHAIN} levels`, at)];
    seen.add(ref);
    const parent = await resolver(ref);
    if (parent === org) return [issue('error', 'business-rule', `partOf chain loops back to this organisation: ${chain.join(' → ')}`, at)];
    if (!parent || parent.resourceType !== 'Organization') {
      if (depth > 0) return [];
      const what = parent ? `a ${parent.resourceType}` : 'not found';
      return [issue('error', 'business-rule', `partOf ${ref} must be an existing Organization; it is ${what}`, at)];
    }
    if (parent.id) {
      const own = `Organization/${parent.id}`;
      if (own !== ref && seen.has(own)) return [issue('error', 'business-rule', `partOf chain loops: ${chain.join(' → ')}`, at)];
      seen.add(own);
    }
    if (depth === 0) {
      const parentLevel = levelOf(parent);
      const expected = EXPECTED_PARENT[level];
      // A county institution may belong to a body outside the community's levels (no level).
      const fits = parentLevel === expected || (level === 'county' && parentLevel === undefined);
      if (!fits) {
        return [
          issue(
            'error',
            'business-rule',
            `A ${level} institution must be part of a ${expected}-level institution; ${ref} is ${parentLevel ? `${parentLevel}-level` : 'without an institution level'}`,
            at,
          ),
        ];
      }
    }
    ref = (parent as Organization).partOf?.reference;
  }
  return [];
}

/** key → child element, from constraints carrying the constraint-focus extension. */
function focusMap(profiles: readonly StructureDefinition[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const sd of profiles) {
    for (const el of sd.snapshot?.element ?? []) {
      for (const c of el.constraint ?? []) {
        const focus = c.extension?.find((e) => e.url === CONSTRAINT_FOCUS_EXTENSION)?.valueString;
        if (focus && c.key) map.set(c.key, focus);
      }
    }
  }
  return map;
}

function refine(i: OperationOutcomeIssue, focus: Map<string, string>, resource: Resource): OperationOutcomeIssue {
  if (i.code !== 'invariant') return i;
  const key = /^Constraint (\S+) not met/.exec(i.diagnostics ?? '')?.[1];
  const child = key ? focus.get(key) : undefined;
  const expression = child ? (i.expression ?? []).map((e) => `${e}.${child}`) : i.expression;
  const m = /^\w+\.identifier\[(\d+)\]\.value$/.exec(expression?.[0] ?? '');
  const identifier = m ? ((resource as { identifier?: Identifier[] }).identifier?.[Number(m[1])] as Identifier | undefined) : undefined;
  let diagnostics = i.diagnostics;
  if (identifier?.system === ID_CARD_SYSTEM && typeof identifier.value === 'string') {
    const r = checkIdCard(identifier.value);
    if (!r.ok) diagnostics = `${diagnostics} (${r.message})`;
  }
  return { ...i, diagnostics, expression };
}

class ProfileValidator implements Validator {
  private readonly byUrl: Map<string, StructureDefinition>;
  private readonly focus: Map<string, string>;

  constructor(
    readonly profiles: readonly StructureDefinition[],
    readonly extensions: readonly StructureDefinition[],
    readonly searchParameters: readonly SearchParameter[],
    readonly codeSystems: readonly CodeSystem[],
  ) {
    this.byUrl = new Map(profiles.map((p) => [p.url, p]));
    this.focus = focusMap(profiles);
  }

  private async check(input: unknown, resolver?: ReferenceResolver, options: ValidateOptions = {}): Promise<Tagged[]> {
    const structure = (i: OperationOutcomeIssue): Tagged => ({ origin: 'structure', issue: i });
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
      return [structure(issue('error', 'structure', 'A resource must be a JSON object', 'Resource'))];
    }
    const rt = (input as { resourceType?: unknown }).resourceType;
    if (typeof rt !== 'string' || rt === '') {
      return [structure(issue('error', 'structure', 'Missing resourceType', 'resourceType'))];
    }
    if (!isKnownResourceType(rt)) {
      return [structure(issue('error', 'structure', `Unknown resource type ${JSON.stringify(rt)}`, 'resourceType'))];
    }
    const pre = preflight(input as Record<string, unknown>, rt);
    if (pre.length > 0) return pre.map(structure);

    const resource = input as Resource;
    const values = valueIssues(input as Record<string, unknown>, rt, MAX_ISSUES);
    // More issues than one outcome lists: refused on these alone. Medplum's full walk of a hostile
    // body (300,000 numbers where Identifiers belong) takes seconds and would add nothing shown.
    if (values.length > MAX_ISSUES) return values.map(structure);
    const out: Tagged[] = runMedplum(resource).map(structure);
    // A value medplum already refused (a date out of its pattern) is not reported twice.
    const refused = new Set(out.filter((t) => isErrorIssue(t.issue)).map((t) => t.issue.expression?.[0]));
    for (const i of values) if (!refused.has(i.expression?.[0])) out.push(structure(i));
    const seen = new Set(out.map((t) => issueKey(t.issue)));
    const add = (origin: Origin, i: OperationOutcomeIssue): void => {
      const k = issueKey(i);
      if (seen.has(k)) return;
      seen.add(k);
      out.push({ origin, issue: i });
    };

    const claimed = resource.meta?.profile ?? [];
    const wanted = [...claimed.map((url, i) => ({ url, at: `${rt}.meta.profile[${i}]` })), ...(options.profiles ?? []).map((url) => ({ url, at: rt }))];
    const done = new Set<string>();
    for (const { url, at } of wanted) {
      if (done.has(url)) continue;
      done.add(url);
      const sd = this.byUrl.get(url);
      if (!sd) {
        add('profile', issue('error', 'processing', `Profile ${url} is not known to this server`, at));
      } else if (sd.type !== rt) {
        add('profile', issue('error', 'processing', `Profile ${url} constrains ${sd.type}, not ${rt}`, at));
      } else {
        for (const i of runMedplum(resource, sd)) add('profile', refine(i, this.focus, resource));
      }
    }

    if (resolver && rt === 'Organization') {
      for (const i of await organizationChainIssues(resource as Organization, resolver)) add('rule', i);
    }
    return out;
  }

  async validate(resource: unknown, resolver?: ReferenceResolver, options?: ValidateOptions): Promise<OperationOutcomeIssue[]> {
    return (await this.check(resource, resolver, options)).map((t) => t.issue);
  }

  async assertValid(resource: unknown, resolver?: ReferenceResolver, options?: ValidateOptions): Promise<void> {
    const errors = (await this.check(resource, resolver, options)).filter((t) => isErrorIssue(t.issue));
    if (errors.length === 0) return;
    const origins = new Set(errors.map((e) => e.origin));
    const code: GwErrorCode = origins.has('structure') ? 'GW_ERR_INVALID_RESOURCE' : origins.has('profile') ? 'GW_ERR_PROFILE_VIOLATION' : 'GW_ERR_BUSINESS_RULE';
    const first = errors[0].issue;
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
    const where = first.expression?.[0] ? ` at ${first.expression[0]}` : '';
    throw new GatewayError(code, `Invalid resource: ${first.diagnostics ?? 'error'}${where}${more}`, { issues: errors.map((e) => e.issue) });
  }
}

/** Loads the profiles of `profilesDir` (failing on a bad one) and returns the validator. */
export async function createValidator(profilesDir: string): Promise<Validator> {
  loadBaseDefinitions();
  const loaded = await loadProfiles(profilesDir);
  return new ProfileValidator(loaded.structureDefinitions, loaded.extensions, loaded.searchParameters, loaded.codeSystems);
}

