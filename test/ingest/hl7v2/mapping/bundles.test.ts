/**
 * One golden Bundle per supported message structure: our whole output for one fixture, compared
 * exactly, to pin behaviour. Regenerate after an intended change with UPDATE_SNAPSHOTS=1.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseHl7 } from '../../../../src/ingest/hl7v2/index.js';
import { loadMappings, mapMessage } from '../../../../src/ingest/hl7v2/mapping/index.js';

const FIXTURES = '/work/shared/fixtures/hl7v2/';
const registry = loadMappings(fileURLToPath(new URL('../../../../mappings/hl7v2/', import.meta.url)));

const CASES: Record<string, string> = {
  ADT_A01: 'msft__ADT-A01-01',
  ADT_A03: 'hapi__adt_a03',
  ADT_A40: 'lfh__ADT_A40_with_MRG',
  ORU_R01: 'msft__LRI_2.0-NG_CBC_Typ_Message',
  ORM_O01: 'msft__ORM-O01-02',
  OML_O21: 'lfh__OML_O21_two_orders_DG1',
  MDM_T02: 'msft__MDM-T02-03',
  REF_I12: 'msft__REF-I12-02',
};

for (const [structure, fixture] of Object.entries(CASES)) {
  t.test(`${structure} Bundle of ${fixture}`, async (t) => {
    const msg = parseHl7(readFileSync(`${FIXTURES}${fixture}.hl7`));
    const { bundle, warnings, mapping } = mapMessage(msg, { sender: { institution: '12330000MB0000000X' }, mappings: registry });
    t.equal(mapping, structure);
    const snapshot = new URL(`./snapshots/${structure}.json`, import.meta.url);
    const actual = JSON.stringify({ warnings, bundle }, null, 1) + '\n';
    if (process.env.UPDATE_SNAPSHOTS === '1' || !existsSync(snapshot)) writeFileSync(snapshot, actual);
    t.equal(actual, readFileSync(snapshot, 'utf8'));
    const again = mapMessage(msg, { sender: { institution: '12330000MB0000000X' }, mappings: registry });
    t.same(again.bundle, bundle, 'a replay gives the same Bundle');
  });
}
