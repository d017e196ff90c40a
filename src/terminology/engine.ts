/**
 * The in-memory terminology index: every loaded ConceptMap element indexed by (source system,
 * code), so a lookup is one Map access whatever the number of maps. Built once at start and
 * read-only afterwards, apart from the unmapped-code counters.
 */
import type { CodeableConcept, Coding, ConceptMap } from '@medplum/fhirtypes';
import type { Equivalence, LoadedConceptMap } from './load.js';
import { LOCAL_DOMAINS, STANDARD_SYSTEMS, localCodeSystem, type LocalDomain } from './systems.js';

export interface TranslationMatch {
  readonly equivalence: Equivalence;
  /** The target concept (system, code, display; version when the group names one). */
  readonly concept: Coding;
  /** Canonical URL of the ConceptMap the match comes from. */
  readonly source: string;
  readonly comment?: string;
}

export interface TranslateOptions {
  /** Only targets in this code system. */
  readonly targetSystem?: string;
  /** Only this ConceptMap (canonical URL). */
  readonly conceptMapUrl?: string;
  /** Only maps whose source value set is this one (`source` of $translate). */
  readonly sourceScope?: string;
  /** Only maps whose target value set is this one (`target` of $translate). */
  readonly targetScope?: string;
}

export interface TranslateResult {
  readonly matches: readonly TranslationMatch[];
}

export interface StandardizeOptions {
  /** USCC of the sending institution: codings without a system are read as its local codes. */
  readonly institution?: string;
  /** With `institution`: the local domain to try (default: every domain). */
  readonly domain?: LocalDomain;
  /** Equivalences whose targets are added (default equal, equivalent, wider, subsumes). */
  readonly accept?: readonly Equivalence[];
}

interface Entry extends TranslationMatch {
  readonly sourceVersion?: string;
  readonly map: ConceptMap;
}

/** Targets that say the same or something broader, so adding them never over-states the source. */
export const SAFE_EQUIVALENCES: readonly Equivalence[] = ['equal', 'equivalent', 'wider', 'subsumes'];
/** Equivalences that mean "this is no translation". */
const NEGATIVE: ReadonlySet<Equivalence> = new Set(['unmatched', 'disjoint']);

/** Most distinct (system, code) pairs counted one by one; the rest are counted together. */
export const MAX_UNMAPPED_KEYS = 1000;
export const OTHER_CODE = '_other';

export type UnmappedListener = (system: string, code: string) => void;

const key = (system: string, code: string): string => `${system}\u0000${code}`;

export function isPositive(m: TranslationMatch): boolean {
  return !NEGATIVE.has(m.equivalence);
}

export class Terminology {
  private readonly index = new Map<string, Entry[]>();
  private readonly maps: readonly LoadedConceptMap[];
  private readonly byId = new Map<string, ConceptMap>();
  private readonly byUrl = new Map<string, ConceptMap>();
  private readonly localSystems = new Set<string>();
  private readonly unmapped = new Map<string, number>();
  private readonly listeners: UnmappedListener[] = [];

  constructor(maps: readonly LoadedConceptMap[]) {
    this.maps = maps;
    for (const { map } of maps) {
      if (map.id) this.byId.set(map.id, map);
      this.byUrl.set(map.url as string, map);
      for (const g of map.group ?? []) {
        const system = g.source as string;
        this.localSystems.add(system);
        for (const el of g.element ?? []) {
          const k = key(system, el.code as string);
          let list = this.index.get(k);
          if (!list) this.index.set(k, (list = []));
          for (const t of el.target ?? []) {
            const concept: Coding = { system: g.target };
            if (g.targetVersion) concept.version = g.targetVersion;
            if (t.code) concept.code = t.code;
            if (t.display) concept.display = t.display;
            list.push({
              equivalence: t.equivalence as Equivalence,
              concept,
              source: map.url as string,
              map,
              ...(t.comment ? { comment: t.comment } : {}),
              ...(g.sourceVersion ? { sourceVersion: g.sourceVersion } : {}),
            });
          }
        }
      }
    }
  }

  /** The loaded ConceptMaps, in load order. */
  conceptMaps(): readonly ConceptMap[] {
    return this.maps.map((m) => m.map);
  }

  conceptMapById(id: string): ConceptMap | undefined {
    return this.byId.get(id);
  }

  conceptMapByUrl(url: string): ConceptMap | undefined {
    return this.byUrl.get(url.split('|')[0]);
  }

  /** True when some loaded map has `system` as its source. */
  hasSource(system: string): boolean {
    return this.localSystems.has(system);
  }

  /** Every target of (coding.system, coding.code), filtered by the options; [] when unknown. */
  translate(coding: Coding, opts: TranslateOptions = {}): TranslateResult {
    if (!coding.system || !coding.code) return { matches: [] };
    const entries = this.index.get(key(coding.system, coding.code));
    if (!entries) return { matches: [] };
    const url = opts.conceptMapUrl?.split('|')[0];
    const matches: TranslationMatch[] = [];
    for (const e of entries) {
      if (opts.targetSystem && e.concept.system !== opts.targetSystem) continue;
      if (url && e.source !== url) continue;
      if (coding.version && e.sourceVersion && coding.version !== e.sourceVersion) continue;
      if (opts.sourceScope && (e.map.sourceUri ?? e.map.sourceCanonical) !== opts.sourceScope) continue;
      if (opts.targetScope && (e.map.targetUri ?? e.map.targetCanonical) !== opts.targetScope) continue;
      matches.push({ equivalence: e.equivalence, concept: { ...e.concept }, source: e.source, ...(e.comment ? { comment: e.comment } : {}) });
    }
    return { matches };
  }

  /**
   * Keeps every coding of `codeable` and adds the standard codings (LOINC, ICD-10) its local
   * codings map to with an accepted equivalence, once each. A local coding that maps to nothing
   * is counted (see unmappedCount). The input is not modified.
   */
  standardize(codeable: CodeableConcept, opts: StandardizeOptions = {}): CodeableConcept {
    const accept = new Set(opts.accept ?? SAFE_EQUIVALENCES);
    const codings = (codeable.coding ?? []).map((c) => this.resolveSystem(c, opts));
    const present = new Set(codings.map((c) => key(c.system ?? '', c.code ?? '')));
    const added: Coding[] = [];
    for (const c of codings) {
      if (!c.system || !c.code || STANDARD_SYSTEMS.has(c.system)) continue;
      const found = this.translate(c).matches.filter((m) => accept.has(m.equivalence) && m.concept.code);
      if (found.length === 0) {
        this.countUnmapped(c.system, c.code);
        continue;
      }
      for (const m of found) {
        const k = key(m.concept.system ?? '', m.concept.code ?? '');
        if (present.has(k)) continue;
        present.add(k);
        added.push(m.concept);
      }
    }
    if (!codeable.coding) return { ...codeable };
    return { ...codeable, coding: [...codings, ...added] };
  }

  /** A coding without a system from a known institution gets the local system whose map knows the code. */
  private resolveSystem(c: Coding, opts: StandardizeOptions): Coding {
    if (c.system || !c.code || !opts.institution) return c;
    for (const domain of opts.domain ? [opts.domain] : LOCAL_DOMAINS) {
      const system = localCodeSystem(opts.institution, domain);
      if (this.index.has(key(system, c.code))) return { ...c, system };
    }
    return c;
  }

  /** Counts a local (system, code) met without a mapping (see unmappedCount). */
  countUnmapped(system: string, code: string): void {
    let k = key(system, code);
    if (!this.unmapped.has(k) && this.unmapped.size >= MAX_UNMAPPED_KEYS) {
      code = OTHER_CODE;
      k = key(system, code);
    }
    this.unmapped.set(k, (this.unmapped.get(k) ?? 0) + 1);
    for (const l of this.listeners) l(system, code);
  }

  /** Times standardize met (system, code) without a mapping since start. */
  unmappedCount(system: string, code: string): number {
    return this.unmapped.get(key(system, code)) ?? 0;
  }

  /** Every unmapped (system, code) counted so far, most frequent first. */
  unmappedCodes(): { system: string; code: string; count: number }[] {
    return [...this.unmapped.entries()]
      .map(([k, count]) => {
        const [system, code] = k.split('\u0000');
        return { system, code, count };
      })
      .sort((a, b) => b.count - a.count);
  }

  /** Called on every unmapped code counted (after the cap, `code` may be OTHER_CODE). */
  onUnmapped(listener: UnmappedListener): void {
    this.listeners.push(listener);
  }

  /** Number of (source system, code) entries indexed. */
  get size(): number {
    return this.index.size;
  }
}
