/**
 * Loads the ConceptMaps in the terminology directory and checks them at start: a bad file stops
 * the gateway with the file and the element named (`ConceptMap.group[0].element[3].target[0].equivalence`),
 * never a mapping that fails later on one message.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import type { ConceptMap } from '@medplum/fhirtypes';

/** R4 ConceptMap.group.element.target.equivalence. */
export const EQUIVALENCES = ['relatedto', 'equivalent', 'equal', 'wider', 'subsumes', 'narrower', 'specializes', 'inexact', 'unmatched', 'disjoint'] as const;
export type Equivalence = (typeof EQUIVALENCES)[number];

const nonEmpty = { type: 'string', minLength: 1, pattern: '\\S' };

/**
 * The part of R4 ConceptMap the engine relies on. Elements it ignores (unmapped, dependsOn,
 * product) may be present but are not used for lookup.
 */
export const CONCEPT_MAP_SCHEMA = {
  type: 'object',
  required: ['resourceType', 'url', 'status', 'group'],
  properties: {
    resourceType: { const: 'ConceptMap' },
    id: { type: 'string', pattern: '^[A-Za-z0-9\\-.]{1,64}$' },
    url: { ...nonEmpty, pattern: '^[a-zA-Z][a-zA-Z0-9+.-]*:\\S+$' },
    version: nonEmpty,
    status: { enum: ['draft', 'active', 'retired', 'unknown'] },
    sourceUri: nonEmpty,
    sourceCanonical: nonEmpty,
    targetUri: nonEmpty,
    targetCanonical: nonEmpty,
    group: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['source', 'target', 'element'],
        properties: {
          source: nonEmpty,
          sourceVersion: nonEmpty,
          target: nonEmpty,
          targetVersion: nonEmpty,
          element: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'object',
              required: ['code'],
              properties: {
                code: nonEmpty,
                display: { type: 'string' },
                target: {
                  type: 'array',
                  items: {
                    type: 'object',
                    required: ['equivalence'],
                    properties: {
                      code: nonEmpty,
                      display: { type: 'string' },
                      equivalence: { enum: EQUIVALENCES },
                      comment: { type: 'string' },
                    },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: false });
const validateSchema = ajv.compile(CONCEPT_MAP_SCHEMA);

/** A ConceptMap file (or inline ConceptMap) that cannot be used; `problems` name file and element. */
export class TerminologyLoadError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid terminology mappings:\n  - ${problems.join('\n  - ')}`);
    this.name = 'TerminologyLoadError';
  }
}

export interface LoadedConceptMap {
  readonly map: ConceptMap;
  /** File it came from, or `inline` for a map passed in a request. */
  readonly file: string;
}

/** `/group/0/element/3` → `ConceptMap.group[0].element[3]`. */
function pathOf(instancePath: string, extra?: string): string {
  const parts = instancePath.split('/').filter((p) => p !== '');
  let out = 'ConceptMap';
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : `.${p}`;
  return extra ? `${out}.${extra}` : out;
}

function describe(e: ErrorObject): string {
  if (e.keyword === 'required') return `${pathOf(e.instancePath, String(e.params.missingProperty))} is required`;
  if (e.keyword === 'enum') return `${pathOf(e.instancePath)} must be one of ${(e.params.allowedValues as string[]).join(', ')}`;
  if (e.keyword === 'const') return `${pathOf(e.instancePath)} must be ${JSON.stringify(e.params.allowedValue)}`;
  if (e.keyword === 'pattern' || e.keyword === 'minLength') return `${pathOf(e.instancePath)} must be a non-empty value`;
  return `${pathOf(e.instancePath)} ${e.message ?? 'is invalid'}`;
}

/** Problems with one ConceptMap (schema, and the rules a schema cannot say), each naming the element. */
export function checkConceptMap(input: unknown): string[] {
  if (!validateSchema(input)) {
    // One line per element: ajv may report the same spot under several keywords.
    return [...new Set((validateSchema.errors ?? []).map(describe))];
  }
  const map = input as ConceptMap;
  const problems: string[] = [];
  (map.group ?? []).forEach((g, gi) => {
    const seen = new Set<string>();
    (g.element ?? []).forEach((el, ei) => {
      const at = `ConceptMap.group[${gi}].element[${ei}]`;
      if (seen.has(el.code as string)) problems.push(`${at}.code "${el.code}" appears twice in the group`);
      seen.add(el.code as string);
      (el.target ?? []).forEach((t, ti) => {
        // R4 cmd-1: a target needs a code unless the equivalence says there is none.
        if (!t.code && t.equivalence !== 'unmatched') problems.push(`${at}.target[${ti}].code is required unless equivalence is unmatched`);
        if ((t.equivalence === 'narrower' || t.equivalence === 'inexact') && !t.comment) {
          problems.push(`${at}.target[${ti}].comment is required when equivalence is ${t.equivalence}`);
        }
      });
    });
  });
  return problems;
}

/** Checks one map and throws TerminologyLoadError naming `file` and the elements at fault. */
export function parseConceptMap(input: unknown, file: string): LoadedConceptMap {
  const problems = checkConceptMap(input);
  if (problems.length > 0) throw new TerminologyLoadError(problems.map((p) => `${file}: ${p}`));
  return { map: input as ConceptMap, file };
}

/**
 * Reads every `*.json` file of `dir` (sorted, so the order is stable) and checks each. All the
 * problems of all files are reported together; two files with the same canonical URL are an error.
 */
export async function loadConceptMaps(dir: string): Promise<LoadedConceptMap[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
  } catch (e) {
    throw new TerminologyLoadError([`${dir}: cannot read the terminology directory (${(e as Error).message})`]);
  }
  const problems: string[] = [];
  const loaded: LoadedConceptMap[] = [];
  const byUrl = new Map<string, string>();
  for (const name of names) {
    const file = join(dir, name);
    let json: unknown;
    try {
      json = JSON.parse(await readFile(file, 'utf8')) as unknown;
    } catch (e) {
      problems.push(`${file}: not valid JSON (${(e as Error).message})`);
      continue;
    }
    try {
      const one = parseConceptMap(json, file);
      const url = one.map.url as string;
      const other = byUrl.get(url);
      if (other) problems.push(`${file}: ConceptMap.url ${url} is already used by ${other}`);
      else byUrl.set(url, file);
      loaded.push(one);
    } catch (e) {
      if (e instanceof TerminologyLoadError) problems.push(...e.problems);
      else throw e;
    }
  }
  if (problems.length > 0) throw new TerminologyLoadError(problems);
  return loaded;
}
