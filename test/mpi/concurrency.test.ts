/**
 * Identity linking under concurrency: transaction Bundles registering the same residents in
 * different orders, all at once, each get their answer (no deadlock between their linking), and
 * every registration ends up linked to a person.
 */
import t from 'tap';
import type { Bundle, BundleEntry, Patient } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp, FHIR_HEADERS } from '../helpers/app.js';
import { ID_CARD_SYSTEM, mrnSystem } from '../../src/fhir/systems.js';
import { idCardNumber } from '../../bench/seed.js';

const INSTITUTIONS = ['1233042447101234XX', '1233042447102341XF', '52330424681045633Y', '12330424MB0000001A', '12330424MB0000002B', '12330424MB0000003C'];
const RESIDENTS = 12;

function registration(resident: number, institution: string): Patient {
  return {
    resourceType: 'Patient',
    identifier: [
      { system: mrnSystem(institution), value: `R-${resident}` },
      { system: ID_CARD_SYSTEM, value: idCardNumber(900 + resident) },
    ],
    name: [{ family: '周', given: [`桂${'兰芳英华'[resident % 4]}${resident}`] }],
    gender: resident % 2 ? 'female' : 'male',
    birthDate: `19${50 + resident}-03-0${1 + (resident % 9)}`,
  };
}

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    // Bundle b registers every resident at institution b, starting from a different resident.
    const bundles: Bundle[] = INSTITUTIONS.map((inst, b) => ({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: Array.from({ length: RESIDENTS }, (_, i): BundleEntry => {
        const resident = (i * (b % 2 ? -1 : 1) + b * 5 + RESIDENTS * 2) % RESIDENTS;
        return { fullUrl: `urn:uuid:00000000-0000-4000-8000-${String(b * 100 + i).padStart(12, '0')}`, resource: registration(resident, inst), request: { method: 'POST', url: 'Patient' } };
      }),
    }));
    const answers = await Promise.all(bundles.map((payload) => ta.app.inject({ method: 'POST', url: '/fhir', headers: FHIR_HEADERS, payload })));
    t.same(
      answers.map((r) => r.statusCode),
      INSTITUTIONS.map(() => 200),
      answers.map((r) => (r.statusCode === 200 ? 'ok' : r.body.slice(0, 300))).join('\n'),
    );
    const persons = await ta.tdb.db.query<{ n: number }>(`SELECT count(DISTINCT target_id)::int AS n FROM sp_reference WHERE rtype = 'Person' AND code = 'patient'`);
    t.equal(persons.rows[0].n, RESIDENTS * INSTITUTIONS.length, 'every registration is linked to a person');
  });
}
