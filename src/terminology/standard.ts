/**
 * Standard codings (LOINC, ICD-10) for a local one, from the community's ConceptMaps. A sender's
 * code may name its institution's local system without a domain (`…/local/<USCC>`, as the HL7 v2
 * mapping does when it cannot know the domain); the maps are kept per institution and domain
 * (`…/local/<USCC>/lab`, `/exam`, `/diagnosis`), so such a code is looked up in each domain.
 */
import type { Coding } from '@medplum/fhirtypes';
import type { Terminology } from './engine.js';
import { LOCAL_DOMAINS, LOCAL_SYSTEM_PREFIX, localCodeSystem } from './systems.js';

const USABLE = new Set(['equal', 'equivalent', 'wider', 'subsumes']);

/** A function giving the standard codings the maps know for a coding (none when unmapped). */
export function standardCodings(terminology: Terminology): (coding: Coding) => Coding[] {
  const lookup = (c: Coding) => terminology.translate(c).matches.filter((m) => USABLE.has(m.equivalence)).map((m) => m.concept);
  return (coding) => {
    const direct = lookup(coding);
    const institution = coding.system?.startsWith(LOCAL_SYSTEM_PREFIX) ? coding.system.slice(LOCAL_SYSTEM_PREFIX.length) : undefined;
    if (direct.length > 0 || !institution || institution.includes('/')) return direct;
    for (const domain of LOCAL_DOMAINS) {
      const found = lookup({ ...coding, system: localCodeSystem(institution, domain) });
      if (found.length > 0) return found;
    }
    return [];
  };
}
