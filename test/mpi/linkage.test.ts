/**
 * Acceptance: 200 residents registered at the county hospital, a township centre and a village
 * clinic, with realistic registration errors, are linked through the write path at the default
 * thresholds with pairwise precision ≥ 0.99 and recall ≥ 0.95.
 */
import t from 'tap';
import { BACKENDS, openTestDb } from '../helpers/db.js';
import { loadConfig } from '../../src/config.js';
import { createFhirServices } from '../../src/fhir/index.js';
import { linkageQuality, population, registerPopulation } from '../helpers/mpi-population.js';

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const tdb = await openTestDb(backend);
    t.teardown(() => tdb.close());
    const fhir = await createFhirServices(loadConfig({ LOG_LEVEL: 'silent' }), tdb.db);
    const regs = population(200);
    t.equal(regs.length, 600);
    const { clusterOf } = await registerPopulation(fhir.repository, regs);
    const q = linkageQuality(regs, clusterOf);
    t.comment(`precision ${q.precision.toFixed(4)} recall ${q.recall.toFixed(4)} (${q.correctPairs}/${q.linkedPairs} linked pairs right, ${q.truePairs} true pairs)`);
    t.ok(q.precision >= 0.99, `precision ${q.precision} ≥ 0.99`);
    t.ok(q.recall >= 0.95, `recall ${q.recall} ≥ 0.95`);
    // Every record belongs to exactly one person.
    for (let i = 0; i < regs.length; i++) if (!clusterOf(i)) t.fail(`record ${i} has no person`);
  });
}
