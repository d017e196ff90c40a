import t from 'tap';
import { Catalogue, CatalogueError } from '../../src/recognition/index.js';

const item = (id: string, code: string, extra: Record<string, unknown> = {}) => ({
  id,
  category: 'lab',
  name: { zh: id, en: id },
  codes: [{ system: 'http://loinc.org', code }],
  validityDays: 7,
  scope: 'community',
  ...extra,
});

t.test('the shipped catalogue loads', async (t) => {
  const c = Catalogue.load('mappings/recognition/catalogue.json');
  const v = c.inForce('2026-03-01');
  t.equal(v?.version, '2024.1');
  t.equal(c.itemFor(v!, [{ system: 'http://loinc.org', code: '4548-4' }])?.id, 'hba1c');
});

t.test('the version in force is the latest that started on or before the day', async (t) => {
  const c = new Catalogue({
    versions: [
      { version: 'b', effectiveFrom: '2026-07-01', items: [item('glu', '1558-6', { validityDays: 7 })] },
      { version: 'a', effectiveFrom: '2025-01-01', items: [item('glu', '1558-6', { validityDays: 3 })] },
    ],
  });
  t.equal(c.inForce('2024-12-31'), undefined, 'none before the first');
  t.equal(c.inForce('2025-01-01')?.version, 'a');
  t.equal(c.inForce('2026-06-30')?.version, 'a');
  t.equal(c.inForce('2026-07-01')?.version, 'b');
  t.equal(c.item(c.version('a')!, 'glu')?.validityDays, 3, 'an old decision keeps its version');
  t.equal(c.itemFor(c.inForce('2026-07-02')!, [{ system: 'http://loinc.org', code: 'nope' }]), undefined);
});

t.test('bad catalogues are refused with the reason', async (t) => {
  t.throws(() => new Catalogue({ versions: [] }), CatalogueError);
  t.throws(() => new Catalogue({ versions: [{ version: 'a', effectiveFrom: '2025-1-1', items: [item('x', '1')] }] }), /effectiveFrom/);
  t.throws(() => new Catalogue({ versions: [{ version: 'a', effectiveFrom: '2025-01-01', items: [item('x', '1', { scope: 'everyone' })] }] }), /scope/);
  t.throws(() => new Catalogue({ versions: [{ version: 'a', effectiveFrom: '2025-01-01', items: [item('x', '1'), item('x', '2')] }] }), /item x appears twice/);
  t.throws(() => new Catalogue({ versions: [{ version: 'a', effectiveFrom: '2025-01-01', items: [item('x', '1'), item('y', '1')] }] }), /names both x and y/);
  t.throws(
    () =>
      new Catalogue({
        versions: [
          { version: 'a', effectiveFrom: '2025-01-01', items: [item('x', '1')] },
          { version: 'a', effectiveFrom: '2026-01-01', items: [item('x', '1')] },
        ],
      }),
    /not unique/,
  );
  t.throws(() => Catalogue.load('/nonexistent/catalogue.json'), CatalogueError);
});
