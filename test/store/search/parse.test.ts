/**
 * Validation of whole queries without a database: unknown parameters and modifiers, bad result
 * parameters, lenient handling.
 */
import t from 'tap';
import { GatewayError } from '../../../src/errors.js';
import { loadBaseDefinitions } from '../../../src/fhir/definitions.js';
import { parseSearch, type SearchQuery } from '../../../src/store/search/index.js';
import { OPTS } from './fixtures.js';

loadBaseDefinitions();

function fails(type: string | undefined, query: SearchQuery): GatewayError {
  try {
    parseSearch(type, query, OPTS);
  } catch (e) {
    if (e instanceof GatewayError) return e;
    throw e;
  }
  throw new Error(`${JSON.stringify(query)} was accepted`);
}

t.test('unknown parameters and modifiers are 400 not-supported, naming the parameter', async (t) => {
  const cases: [string | undefined, SearchQuery, string][] = [
    ['Patient', { foo: 'x' }, 'foo'],
    ['Patient', { 'name:above': 'x' }, 'name:above'],
    ['Observation', { 'code:in': 'http://vs' }, 'code:in'],
    ['Observation', { 'date:exact': '2024' }, 'date:exact'],
    ['Observation', { 'combo-code-value-quantity': 'x' }, 'combo-code-value-quantity'],
    ['Patient', { _text: 'x' }, '_text'],
    ['Patient', { _type: 'Patient' }, '_type'],
    [undefined, { birthdate: '2024' }, 'birthdate'],
    ['Observation', { _sort: 'nope' }, '_sort'],
  ];
  for (const [type, query, name] of cases) {
    const e = fails(type, query);
    t.equal(e.code, 'GW_ERR_UNSUPPORTED_SEARCH', name);
    t.equal(e.statusCode, 400);
    t.equal(e.outcome.issue[0].code, 'not-supported');
    t.same(e.outcome.issue[0].expression, [name]);
    t.match(e.message, name);
  }
  t.equal(fails('Nope', {}).code, 'GW_ERR_UNSUPPORTED_SEARCH', 'unknown type');
});

t.test('bad values are 400 invalid, naming the parameter', async (t) => {
  const cases: [string, SearchQuery, string][] = [
    ['Patient', { birthdate: '2024-13-45' }, 'birthdate'],
    ['RiskAssessment', { probability: 'abc' }, 'probability'],
    ['Observation', { date: 'xx2024' }, 'date'],
    ['Patient', { _count: '-1' }, '_count'],
    ['Patient', { _count: 'ten' }, '_count'],
    ['Patient', { _count: ['1', '2'] }, '_count'],
    ['Patient', { _total: 'exact' }, '_total'],
    ['Patient', { _summary: 'some' }, '_summary'],
    ['Patient', { _elements: 'name,1bad' }, '_elements'],
    ['Patient', { 'birthdate:missing': 'maybe' }, 'birthdate:missing'],
    ['Patient', { _cursor: 'garbage!' }, '_cursor'],
    ['Patient', { _include: 'Observation:subject' }, '_include'],
    ['Patient', { _include: 'Patient:name' }, '_include'],
    ['Patient', { _include: 'Patient' }, '_include'],
    ['Observation', { 'subject:Organization': 'x' }, 'subject:Organization'],
  ];
  for (const [type, query, name] of cases) {
    const e = fails(type, query);
    t.equal(e.code, 'GW_ERR_INVALID_SEARCH', `${JSON.stringify(query)}`);
    t.same(e.outcome.issue[0].expression, [name]);
  }
});

t.test('result parameters', async (t) => {
  const ps = parseSearch('Observation', { _count: '500', _sort: '-date,_id', _total: 'accurate', _summary: 'true', _elements: 'Observation.subject,value' }, OPTS);
  t.equal(ps.count, OPTS.maxCount, '_count is capped at the maximum');
  t.same(
    ps.sort.map((k) => [k.code, k.descending, k.type]),
    [
      ['date', true, 'date'],
      ['_id', false, 'id'],
    ],
  );
  t.equal(ps.total, 'accurate');
  t.same(ps.elements, ['subject', 'value']);
  t.equal(parseSearch('Observation', { _count: '0' }, OPTS).count, 0);
  t.equal(parseSearch('Observation', {}, OPTS).count, OPTS.defaultCount);
  const inc = parseSearch('Observation', { _include: ['Observation:subject:Patient', '*'], '_revinclude:iterate': 'Provenance:target' }, OPTS);
  t.same(inc.includes, [
    { reverse: false, iterate: false, sourceType: 'Observation', code: 'subject', targetType: 'Patient' },
    { reverse: false, iterate: false, sourceType: 'Observation', code: '*' },
    { reverse: true, iterate: true, sourceType: 'Provenance', code: 'target' },
  ]);
  t.same(parseSearch('Patient', { name: '', _format: 'json' }, OPTS).filters, [], 'empty values and _format are ignored');
});

t.test('lenient handling ignores and lists unknown parameters, still refuses bad values', async (t) => {
  const ps = parseSearch('Patient', { foo: 'x', 'name:above': 'y', name: 'zhang' }, { ...OPTS, lenient: true });
  t.same(ps.ignored, ['foo', 'name:above']);
  t.equal(ps.filters.length, 1);
  t.same(
    ps.canonical.map(([k]) => k),
    ['name'],
    'ignored parameters are not in the links',
  );
  t.throws(() => parseSearch('Patient', { birthdate: 'bad' }, { ...OPTS, lenient: true }), { code: 'GW_ERR_INVALID_SEARCH' });
});
