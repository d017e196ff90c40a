/**
 * The rules of recognition one by one, with a catalogue of the test's own: scope (same level,
 * community, independent labs), comparability (unit, specimen type), final status, and imaging
 * studies by modality and body site.
 */
import t from 'tap';
import type { Resource } from '@medplum/fhirtypes';
import { createTestApp } from '../helpers/app.js';
import { BACKENDS } from '../helpers/db.js';
import { loadDemoCommunity } from '../../src/demo/index.js';
import { processBundle, SYSTEM_CONTEXT, type RequestContext } from '../../src/fhir/index.js';
import { INSTITUTION_TAG_SYSTEM, USCC_SYSTEM } from '../../src/fhir/systems.js';
import { Catalogue, RecognitionService } from '../../src/recognition/index.js';
import { standardCodings } from '../../src/terminology/index.js';

const COUNTY = '1233042447101234XX';
const TOWNSHIP1 = '1233042447102341XF';
const TOWNSHIP2 = '12330424471034522H';
const LAB = '91330400MA2B000000';
const ORDER_DAY = '2026-05-10';
const L = (code: string) => ({ system: 'http://loinc.org', code });
const lab = (id: string, code: string, extra: Record<string, unknown>) => ({ id, category: 'lab', name: { zh: id, en: id }, codes: [L(code)], validityDays: 10, scope: 'community', ...extra });

const catalogue = new Catalogue({
  versions: [
    {
      version: 't1',
      effectiveFrom: '2026-01-01',
      items: [
        lab('potassium', '2823-3', { scope: 'same-level', comparable: { units: ['mmol/L'] } }),
        lab('sodium', '2951-2', { comparable: { specimenTypes: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0487', code: 'SER' }] } }),
        lab('tsh', '3016-3', { scope: 'community-and-independent' }),
        lab('alt', '1742-6', {}),
        { id: 'chest', category: 'imaging', name: { zh: '胸片', en: 'Chest X-ray' }, codes: [L('36643-5')], modality: ['DX', 'CR'], bodySite: { system: 'http://snomed.info/sct', code: '51185008' }, validityDays: 30, scope: 'community' },
      ],
    },
  ],
});

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const repo = ta.fhir.repository;
    await loadDemoCommunity((bundle) => processBundle(repo, bundle, { ...SYSTEM_CONTEXT, channel: 'demo' }, { minimal: true }));
    // An independent lab: known to the gateway, not a member of the community.
    await repo.create({ resourceType: 'Organization', identifier: [{ system: USCC_SYSTEM, value: LAB }], name: '第三方医学检验所' }, SYSTEM_CONTEXT);
    const service = new RecognitionService({ db: ta.tdb.db, repository: repo, catalogue, standardCodings: standardCodings(ta.fhir.terminology) });
    for (const institution of [COUNTY, TOWNSHIP1, TOWNSHIP2, LAB]) {
      for (const category of ['lab', 'imaging']) await service.qualify({ institution, category, status: 'qualified', effectiveFrom: '2026-01-01' }, SYSTEM_CONTEXT);
    }
    const patient = (await repo.create({ resourceType: 'Patient', name: [{ family: '李' }] }, SYSTEM_CONTEXT)).id;
    const put = async (institution: string, r: Record<string, unknown>): Promise<string> => {
      const created = await repo.create({ ...r, meta: { tag: [{ system: INSTITUTION_TAG_SYSTEM, code: institution }] }, subject: { reference: `Patient/${patient}` } } as Resource, SYSTEM_CONTEXT);
      return `${String(r.resourceType)}/${created.id}`;
    };
    const obs = (code: string, day: string, extra: Record<string, unknown> = {}) => ({ resourceType: 'Observation', status: 'final', code: { coding: [L(code)] }, effectiveDateTime: `${day}T08:00:00+08:00`, ...extra });
    const township1: RequestContext = { channel: 'rest', clientId: 'township1-his', institution: TOWNSHIP1, scopes: ['system/*.rs'] };
    const judge = async (code: string) => {
      const a = await service.recognize({ patient: { reference: `Patient/${patient}` }, orders: [{ codings: [L(code)] }], orderDate: ORDER_DAY }, township1);
      return a.items[0];
    };
    const reasons = (item: Awaited<ReturnType<typeof judge>>) => Object.fromEntries(item.results.map((r) => [r.reference, r.reason]));

    t.test('same-level items: from a township for a township, not from the county; unit must match', async (t) => {
      const county = await put(COUNTY, obs('2823-3', '2026-05-08', { valueQuantity: { value: 4.1, code: 'mmol/L', unit: 'mmol/L' } }));
      const township2 = await put(TOWNSHIP2, obs('2823-3', '2026-05-07', { valueQuantity: { value: 4.0, code: 'mmol/L', unit: 'mmol/L' } }));
      const otherUnit = await put(TOWNSHIP2, obs('2823-3', '2026-05-09', { valueQuantity: { value: 16, code: 'mg/dL', unit: 'mg/dL' } }));
      const item = await judge('2823-3');
      t.same(reasons(item), { [county]: 'out-of-scope', [township2]: 'recognised', [otherUnit]: 'not-comparable' });
      t.equal(item.recognised, true);
      t.equal(item.results[0].reference, township2, 'the recognisable result first');
    });

    t.test('specimen type from the Specimen resource', async (t) => {
      const serum = (await repo.create({ resourceType: 'Specimen', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0487', code: 'SER' }] } }, SYSTEM_CONTEXT)).id;
      const blood = (await repo.create({ resourceType: 'Specimen', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0487', code: 'BLD' }] } }, SYSTEM_CONTEXT)).id;
      const onSerum = await put(COUNTY, obs('2951-2', '2026-05-08', { specimen: { reference: `Specimen/${serum}` } }));
      const onBlood = await put(COUNTY, obs('2951-2', '2026-05-09', { specimen: { reference: `Specimen/${blood}` } }));
      const none = await put(COUNTY, obs('2951-2', '2026-05-09'));
      t.same(reasons(await judge('2951-2')), { [onSerum]: 'recognised', [onBlood]: 'not-comparable', [none]: 'not-comparable' });
    });

    t.test('independent labs only where the item allows them', async (t) => {
      const tsh = await put(LAB, obs('3016-3', '2026-05-08'));
      const alt = await put(LAB, obs('1742-6', '2026-05-08'));
      t.same(reasons(await judge('3016-3')), { [tsh]: 'recognised' });
      const item = await judge('1742-6');
      t.same(reasons(item), { [alt]: 'out-of-scope' });
      t.equal(item.reason, 'out-of-scope');
    });

    t.test('not final, after the order, no institution', async (t) => {
      const prelim = await put(COUNTY, obs('1742-6', '2026-05-08', { status: 'preliminary' }));
      const later = await put(COUNTY, obs('1742-6', '2026-05-11'));
      const untagged = `Observation/${(await repo.create({ resourceType: 'Observation', status: 'final', code: { coding: [L('1742-6')] }, subject: { reference: `Patient/${patient}` }, effectiveDateTime: '2026-05-09' } as Resource, SYSTEM_CONTEXT)).id}`;
      const r = reasons(await judge('1742-6'));
      t.equal(r[prelim], 'not-final');
      t.equal(r[later], 'after-order');
      t.equal(r[untagged], 'institution-unknown');
    });

    t.test('imaging: an ImagingStudy of the modality and body site, or its DiagnosticReport', async (t) => {
      const study = await put(TOWNSHIP1, {
        resourceType: 'ImagingStudy',
        status: 'available',
        started: '2026-04-20T10:00:00+08:00',
        series: [{ uid: '1.2.3.4', modality: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: 'DX' }, bodySite: { system: 'http://snomed.info/sct', code: '51185008' } }],
      });
      const ct = await put(TOWNSHIP1, {
        resourceType: 'ImagingStudy',
        status: 'available',
        started: '2026-04-21T10:00:00+08:00',
        series: [{ uid: '1.2.3.5', modality: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: 'CT' }, bodySite: { system: 'http://snomed.info/sct', code: '51185008' } }],
      });
      const report = await put(COUNTY, { resourceType: 'DiagnosticReport', status: 'final', code: { coding: [L('36643-5')] }, effectiveDateTime: '2026-04-22T10:00:00+08:00' });
      const item = await judge('36643-5');
      const r = reasons(item);
      t.equal(r[study], 'recognised');
      t.equal(r[report], 'recognised');
      t.notOk(ct in r, 'another modality is not a candidate');
    });
  });
}
