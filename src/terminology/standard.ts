/**
 * Standard codings (LOINC, ICD-10) for a local one, from the community's ConceptMaps. A sender's
 * code may name its institution's local system without a domain (`…/local/<USCC>`, as the HL7 v2
 * mapping does when it cannot know the domain); the maps are kept per institution and domain
 * (`…/local/<USCC>/lab`, `/exam`, `/diagnosis`), so such a code is looked up in each domain.
 */
import type { Coding } from '@medplum/fhirtypes';
import { SAFE_EQUIVALENCES, type Terminology } from './engine.js';
import { LOCAL_DOMAINS, LOCAL_SYSTEM_PREFIX, STANDARD_SYSTEMS, localCodeSystem } from './systems.js';

const USABLE: ReadonlySet<string> = new Set(SAFE_EQUIVALENCES);

export interface StandardCodingsOptions {
  /**
   * Count each local coding that maps to nothing (the terminology's unmapped counters and metric):
   * for the feeds that store what they are sent, not for lookups such as mutual recognition.
   */
  readonly countUnmapped?: boolean;
}

/** A function giving the standard codings the maps know for a coding (none when unmapped). */
export function standardCodings(terminology: Terminology, opts: StandardCodingsOptions = {}): (coding: Coding) => Coding[] {
  const lookup = (c: Coding) => terminology.translate(c).matches.filter((m) => USABLE.has(m.equivalence)).map((m) => m.concept);
  const find = (coding: Coding): Coding[] => {
    const direct = lookup(coding);
    const institution = coding.system?.startsWith(LOCAL_SYSTEM_PREFIX) ? coding.system.slice(LOCAL_SYSTEM_PREFIX.length) : undefined;
    if (direct.length > 0 || !institution || institution.includes('/')) return direct;
    for (const domain of LOCAL_DOMAINS) {
      const found = lookup({ ...coding, system: localCodeSystem(institution, domain) });
      if (found.length > 0) return found;
    }
    return [];
  };
  return (coding) => {
    const found = find(coding);
    if (found.length === 0 && opts.countUnmapped && coding.system && coding.code && !STANDARD_SYSTEMS.has(coding.system)) terminology.countUnmapped(coding.system, coding.code);
    return found;
  };
}
