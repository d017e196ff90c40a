/**
 * SubscriptionTopics of the community (R5 / Backport IG shape), loaded from profiles/ at start:
 * resource triggers (resource type, interactions, FHIRPath and query criteria) and the filters a
 * subscriber may use. A topic this gateway cannot evaluate faithfully fails start-up.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseFhirPath, type FhirPathAtom } from '@medplum/core';
import { isKnownResourceType } from '../fhir/definitions.js';
import { parseCriteria, queryFromString, type ParsedSearch } from '../store/search/index.js';

export type Interaction = 'create' | 'update' | 'delete';

export interface TopicTrigger {
  readonly resource: string;
  readonly interactions: ReadonlySet<Interaction>;
  /** queryCriteria.current, parsed: the new version must match it. */
  readonly current?: ParsedSearch;
  /** On create/delete, whether the missing side of the query test counts as passed. */
  readonly resultForCreate: 'test-passes' | 'test-fails';
  readonly resultForDelete: 'test-passes' | 'test-fails';
  /** fhirPathCriteria, with %previous and %current bound to the two versions. */
  readonly fhirPath?: FhirPathAtom;
}

export interface Topic {
  readonly url: string;
  readonly title?: string;
  readonly triggers: readonly TopicTrigger[];
  /** Allowed filter parameters by resource type. */
  readonly canFilterBy: ReadonlyMap<string, ReadonlySet<string>>;
}

export class TopicError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'TopicError';
  }
}

interface RawTopic {
  resourceType: 'SubscriptionTopic';
  url?: string;
  title?: string;
  status?: string;
  resourceTrigger?: {
    resource?: string;
    supportedInteraction?: string[];
    queryCriteria?: { previous?: string; current?: string; resultForCreate?: string; resultForDelete?: string; requireBoth?: boolean };
    fhirPathCriteria?: string;
  }[];
  canFilterBy?: { resource?: string; filterParameter?: string }[];
}

/** Resource type part of a canonical or relative type reference (`http://hl7.org/fhir/StructureDefinition/Encounter` → Encounter). */
function typeName(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  const t = raw.slice(raw.lastIndexOf('/') + 1);
  return isKnownResourceType(t) ? t : undefined;
}

export function parseTopic(raw: RawTopic, file: string): Topic {
  if (!raw.url) throw new TopicError(file, 'SubscriptionTopic has no url');
  if (!raw.resourceTrigger?.length) throw new TopicError(file, 'SubscriptionTopic has no resourceTrigger');
  const triggers: TopicTrigger[] = raw.resourceTrigger.map((tr, i) => {
    const where = `resourceTrigger[${i}]`;
    const resource = typeName(tr.resource);
    if (!resource) throw new TopicError(file, `${where}.resource "${tr.resource}" is not a resource type`);
    const interactions = new Set<Interaction>();
    for (const x of tr.supportedInteraction ?? ['create', 'update', 'delete']) {
      if (x !== 'create' && x !== 'update' && x !== 'delete') throw new TopicError(file, `${where}.supportedInteraction "${x}" is not create, update or delete`);
      interactions.add(x);
    }
    const qc = tr.queryCriteria;
    if (qc?.previous) throw new TopicError(file, `${where}.queryCriteria.previous is not supported; express the change with fhirPathCriteria and %previous`);
    let current: ParsedSearch | undefined;
    if (qc?.current) {
      try {
        current = parseCriteria(resource, queryFromString(qc.current.replace(/^[A-Za-z]+\?/, '')));
      } catch (e) {
        throw new TopicError(file, `${where}.queryCriteria.current "${qc.current}": ${(e as Error).message}`);
      }
    }
    let fhirPath: FhirPathAtom | undefined;
    if (tr.fhirPathCriteria) {
      try {
        fhirPath = parseFhirPath(tr.fhirPathCriteria);
      } catch (e) {
        throw new TopicError(file, `${where}.fhirPathCriteria does not parse: ${(e as Error).message}`);
      }
    }
    const result = (v: string | undefined, name: string) => {
      if (v === undefined || v === 'test-passes' || v === 'test-fails') return v ?? 'test-fails';
      throw new TopicError(file, `${where}.queryCriteria.${name} "${v}" is not test-passes or test-fails`);
    };
    return { resource, interactions, current, fhirPath, resultForCreate: result(qc?.resultForCreate, 'resultForCreate'), resultForDelete: result(qc?.resultForDelete, 'resultForDelete') };
  });
  const canFilterBy = new Map<string, Set<string>>();
  for (const f of raw.canFilterBy ?? []) {
    const resource = typeName(f.resource) ?? (triggers.length === 1 ? triggers[0].resource : undefined);
    if (!resource || !f.filterParameter) throw new TopicError(file, 'canFilterBy needs a resource and a filterParameter');
    const set = canFilterBy.get(resource) ?? new Set<string>();
    set.add(f.filterParameter);
    canFilterBy.set(resource, set);
  }
  return { url: raw.url, title: raw.title, triggers, canFilterBy };
}

/** Every SubscriptionTopic (`*.json` with that resourceType) of a folder, by canonical url. */
export async function loadTopics(dir: string): Promise<ReadonlyMap<string, Topic>> {
  const topics = new Map<string, Topic>();
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
  } catch {
    return topics;
  }
  for (const name of names) {
    const file = join(dir, name);
    const parsed = JSON.parse(await readFile(file, 'utf8')) as { resourceType?: string };
    if (parsed.resourceType !== 'SubscriptionTopic') continue;
    const topic = parseTopic(parsed as RawTopic, file);
    if (topics.has(topic.url)) throw new TopicError(file, `topic ${topic.url} is defined twice`);
    topics.set(topic.url, topic);
  }
  return topics;
}
