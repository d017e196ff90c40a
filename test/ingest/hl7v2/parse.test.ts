import { readdirSync, readFileSync } from 'node:fs';
import t from 'tap';
import { Hl7ParseError, isHl7Batch, parseHl7, parseHl7Text, splitHl7Batch, valueAt, type Hl7Message } from '../../../src/ingest/hl7v2/index.js';

const dir = '/work/shared/fixtures/hl7v2/';

type Expect = { segments: number } | { batch: number[] } | { error: string; at: string };

/**
 * What each fixture gives: its segment count, a batch's messages (segment counts), or the
 * parse error (code, and segment-field@position it names). Decisions on malformed ones:
 * - hapi__BAR_P01_three_encoding_chars: MSH-2 "^~}" lacks a character; which one (escape or
 *   subcomponent) is ambiguous, so it is refused rather than misread.
 * - lfh__* with MSH-2 "^~\\&": the doubled escape character is read as "^~\&" (HAPI does so).
 * - nhc__MALFORMED_mdm: a line break inside MSH-10 leaves "4563-8EBD…" as segment 2's id.
 * - nhc__MALFORMED_adt single line and hapi__ORU_R01_v22 (OBX run into the OBR line) are
 *   structurally valid: extra text in fields, so they parse, as odd messages do.
 */
const EXPECT: Record<string, Expect> = {
  'hapi__BAR_P01_encchars_caret_tilde_bslash_brace.hl7': { segments: 8 },
  'hapi__BAR_P01_three_encoding_chars.hl7': { error: 'HL7_BAD_ENCODING_CHARS', at: 'MSH-2@1' },
  'hapi__ORM_O01_v22_radiology_order.hl7': { segments: 5 },
  'hapi__ORU_R01_FT_formatting_escapes.hl7': { segments: 5 },
  'hapi__ORU_R01_v22_radiology.hl7': { segments: 7 },
  'hapi__adt_a03.hl7': { segments: 5 },
  'hapi__cv.04_001_chem.hl7': { segments: 7 },
  'hapi__example_oml_o21_1.hl7': { segments: 10 },
  'hl7v2tofhir__Message.hl7_MDM_T02.hl7': { segments: 12 },
  'lfh__ADT_A01_PV2_escapes.hl7': { segments: 5 },
  'lfh__ADT_A01_with_NK1_OBX.hl7': { segments: 7 },
  'lfh__ADT_A34_EVN_A40_with_MRG.hl7': { segments: 4 },
  'lfh__ADT_A40_two_MRGs.hl7': { segments: 6 },
  'lfh__ADT_A40_with_MRG.hl7': { segments: 4 },
  'lfh__OML_O21_two_orders_DG1.hl7': { segments: 8 },
  'lfh__OML_O21_with_specimen.hl7': { segments: 5 },
  'lfh__ORM_O01_imaging_order.hl7': { segments: 8 },
  'lfh__ORU-multiline-short-mixed.hl7': { segments: 9 },
  'lfh__ORU-multiline-short.hl7': { segments: 8 },
  'lfh__ORU_NIST_LOI_hepatitis.hl7': { segments: 7 },
  'lfh__ORU_multiple_reports.hl7': { segments: 8 },
  'lfh__ORU_unusual_ranges.hl7': { segments: 7 },
  'lfh__ORU_with_encounter.hl7': { segments: 5 },
  'lfh__sample_unix.hl7': { segments: 8 },
  'lfh__sample_win.hl7': { segments: 8 },
  'medplum__ACK_nonstandard_field_separator.hl7': { segments: 2 },
  'medplum__ADT_A04_epic_LF.hl7': { segments: 4 },
  'medplum__OUL_R22_subfields.hl7': { segments: 23 },
  'medplum__QBP_Q11_utf8.hl7': { segments: 3 },
  'msft__ADT-A01-01.hl7': { segments: 24 },
  'msft__ADT-A01-02.hl7': { segments: 4 },
  'msft__ADT-A04-01.hl7': { segments: 24 },
  'msft__ADT-A04-02.hl7': { segments: 5 },
  'msft__ADT-A08-01.hl7': { segments: 24 },
  'msft__ADT-A08-02.hl7': { segments: 4 },
  'msft__ADT-A40-01.hl7': { segments: 4 },
  'msft__ADT-A40-02.hl7': { segments: 6 },
  'msft__ADT01-23.hl7': { segments: 12 },
  'msft__ADT01-28.hl7': { segments: 5 },
  'msft__ADT04-23.hl7': { segments: 8 },
  'msft__ADT04-251.hl7': { segments: 4 },
  'msft__ADT04-28.hl7': { segments: 8 },
  'msft__LAB-ORM-1.hl7': { segments: 5 },
  'msft__LAB-ORU-1.hl7': { segments: 16 },
  'msft__LAB-ORU-2.hl7': { segments: 16 },
  'msft__LRI_2.0-NG_CBC_Typ_Message.hl7': { segments: 33 },
  'msft__MDHHS-OML-O21-1.hl7': { segments: 15 },
  'msft__MDHHS-OML-O21-2.hl7': { segments: 16 },
  'msft__MDM-T01-01.hl7': { segments: 11 },
  'msft__MDM-T02-01.hl7': { segments: 13 },
  'msft__MDM-T02-02.hl7': { segments: 14 },
  'msft__MDM-T02-03.hl7': { segments: 36 },
  'msft__OML-O21-01.hl7': { segments: 23 },
  'msft__OML-O21-03.hl7': { segments: 63 },
  'msft__ORM-O01-01.hl7': { segments: 12 },
  'msft__ORM-O01-02.hl7': { segments: 15 },
  'msft__ORM-O01-03.hl7': { segments: 14 },
  'msft__ORU-R01-01.hl7': { segments: 29 },
  'msft__ORU-R01-RMGEAD.hl7': { segments: 4 },
  'msft__REF-I12-01.hl7': { segments: 24 },
  'msft__REF-I12-02.hl7': { segments: 28 },
  'nhapi__ORU_R01_OLIS_NTE_escapes.hl7': { segments: 8 },
  'nhc__MALFORMED_adt-example_single_line.hl7': { segments: 1 },
  'nhc__MALFORMED_mdm-example_radiology_transcript.hl7': { error: 'HL7_BAD_SEGMENT_NAME', at: '456@2' },
  'nhc__ORU_R01_2.5.1_NIST_SampleTestCase1.hl7': { segments: 7 },
  'nhc__cerner_en.hl7': { segments: 7 },
  'nhc__realm-hepatitis-c-virus.hl7': { segments: 11 },
  'pyhl7__BATCH_BHS_two_ADT_A04.hl7': { batch: [6, 6] },
  'pyhl7__BATCH_MALFORMED_no_MSH.hl7': { error: 'HL7_NO_MSH', at: 'EVN@2' },
  'pyhl7__rep_sample_repetition_subcomponents.hl7': { segments: 2 },
  'pyhl7__sample_hl7_ORU_SN_FN.hl7': { segments: 5 },
  'pyhl7__sample_msh_ADT_A01_v23_insurance.hl7': { segments: 9 },
  'rs__MSH-to-MessageHeader-everything-valued.hl7': { segments: 1 },
  'rs__NTE-to-annotation.hl7': { segments: 7 },
  'rs__OBX-to-Observation-ce-value.hl7': { segments: 4 },
  'rs__OBX-to-Observation-cwe-value.hl7': { segments: 4 },
  'rs__OBX-to-Observation-data-absent-n-value.hl7': { segments: 4 },
  'rs__OBX-to-Observation-data-absent-st-but-empty-value.hl7': { segments: 4 },
  'rs__OBX-to-Observation-data-absent-x-value.hl7': { segments: 4 },
  'rs__OBX-to-Observation-dr-value.hl7': { segments: 4 },
  'rs__OBX-to-Observation-dt-value.hl7': { segments: 4 },
  'rs__OBX-to-Observation-dtm-value.hl7': { segments: 4 },
  'rs__OBX-to-Observation-ed-value.hl7': { segments: 4 },
  'rs__OBX-to-Observation-ft-value.hl7': { segments: 4 },
  'rs__OBX-to-Observation-is-value.hl7': { segments: 4 },
  'rs__OBX-to-Observation-nm-value.hl7': { segments: 4 },
  'rs__OBX-to-Observation-nr-value.hl7': { segments: 4 },
  'rs__OBX-to-Observation-obx-18-extra-device-identifier.hl7': { segments: 4 },
  'rs__OBX-to-Observation-obx-33-no-extension.hl7': { segments: 5 },
  'rs__OBX-to-Observation-obx-33.hl7': { segments: 5 },
  'rs__OBX-to-Observation-obx25-not-valued.hl7': { segments: 4 },
  'rs__OBX-to-Observation-obx25-obx24-not-valued.hl7': { segments: 4 },
  'rs__OBX-to-Observation-obx25-valued.hl7': { segments: 4 },
  'rs__OBX-to-Observation-sn-as-quantity-value.hl7': { segments: 4 },
  'rs__OBX-to-Observation-sn-as-range-value.hl7': { segments: 4 },
  'rs__OBX-to-Observation-sn-as-ratio-value-colon.hl7': { segments: 4 },
  'rs__OBX-to-Observation-sn-as-ratio-value-division.hl7': { segments: 4 },
  'rs__OBX-to-Observation-sn-as-string-value.hl7': { segments: 4 },
  'rs__OBX-to-Observation-st-value.hl7': { segments: 4 },
  'rs__OBX-to-Observation-tm-value.hl7': { segments: 4 },
  'rs__OBX-to-Observation-tx-value.hl7': { segments: 4 },
  'rs__OBX-to-Observation-vr-value.hl7': { segments: 4 },
  'rs__PV1-PV2-to-Encounter.hl7': { segments: 4 },
  'rs__hci.hl7': { segments: 15 },
  'rs__oml_o21-full.hl7': { segments: 23 },
  'rs__orm_o01-full.hl7': { segments: 14 },
  'rs__oru_r01-full.hl7': { segments: 24 },
  'rs__pid-to-patient-pid-fully-populated.hl7': { segments: 3 },
  'rs__sample_oml_20240319-001.hl7': { segments: 18 },
  'rs__sample_orm_20230809-001.hl7': { segments: 17 },
  'rs__sample_oru_20241015-001.hl7': { segments: 173 },
  'rs__sample_oru_CDPH_NBS_20241021-001.hl7': { segments: 25 },
};

function parseFixture(name: string): Hl7Message {
  return parseHl7(readFileSync(dir + name));
}

t.test('every .hl7 fixture parses or gives its precise Hl7ParseError', async (t) => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.hl7')).sort();
  t.equal(files.length, 112);
  t.same(files, Object.keys(EXPECT).sort(), 'the table names every fixture');
  for (const f of files) {
    const want = EXPECT[f];
    const bytes = readFileSync(dir + f);
    try {
      if ('batch' in want) {
        t.ok(isHl7Batch(bytes), `${f} is a batch`);
        t.same(splitHl7Batch(bytes).messages.map((m) => parseHl7(m).segments.length), want.batch, f);
      } else if ('segments' in want) {
        const m = parseHl7(bytes);
        t.equal(m.segments.length, want.segments, f);
        t.equal(m.segments[0].name, 'MSH');
        t.equal(m.text.split('\r').length, want.segments);
      } else {
        if (isHl7Batch(bytes)) splitHl7Batch(bytes);
        else parseHl7(bytes);
        t.fail(`${f} should not parse`);
      }
    } catch (e) {
      if (!(e instanceof Hl7ParseError)) throw e;
      if (!('error' in want)) {
        t.fail(`${f}: ${e.message}`);
        continue;
      }
      const l = e.location;
      t.equal(e.code, want.error, f);
      t.equal(`${l.segment}${l.field ? `-${l.field}` : ''}@${l.position ?? ''}`, want.at, f);
    }
  }
});

t.test('MSH numbering: MSH-1 is the field separator, MSH-2 the encoding characters', async (t) => {
  const m = parseFixture('medplum__ACK_nonstandard_field_separator.hl7');
  const msh = m.segments[0];
  t.equal(m.delimiters.field, '_');
  t.equal(valueAt(msh, 1), '_');
  t.equal(valueAt(msh, 2), '^~\\&');
  t.equal(valueAt(msh, 3), 'Main');
  t.equal(valueAt(msh, 9), 'ACK');
  t.equal(valueAt(msh, 10), '9B38584D');
  t.equal(valueAt(msh, 12), '2.6.1');
  const msa = m.segments[1];
  t.equal(valueAt(msa, 1), 'AA');
  t.equal(valueAt(msa, 2), '9B38584D');
  t.equal(valueAt(msa, 3), 'Everything was okay dokay!');
});

t.test('repetitions, components and subcomponents (python-hl7 structure sample)', async (t) => {
  const pid = parseFixture('pyhl7__rep_sample_repetition_subcomponents.hl7').segments[1];
  t.equal(pid.name, 'PID');
  t.same(pid.fields[1], [[['Field1']]]);
  t.same(pid.fields[2], [[['Component1'], ['Component2']]]);
  t.same(pid.fields[3], [[['Component1'], ['Sub-Component1', 'Sub-Component2'], ['Component3']]]);
  t.same(pid.fields[4], [[['Repeat1']], [['Repeat2']]]);
});

t.test('subfields of a Roche OUL^R22 and unusual subcomponent separator', async (t) => {
  const m = parseFixture('medplum__OUL_R22_subfields.hl7');
  const spm = m.segments.find((s) => s.name === 'SPM');
  t.equal(valueAt(spm, 2, 1, 1), '140799');
  t.equal(valueAt(spm, 2, 1, 2), 'BARCODE');
  const brace = parseFixture('hapi__BAR_P01_encchars_caret_tilde_bslash_brace.hl7');
  t.equal(brace.delimiters.subcomponent, '}');
  t.equal(parseFixture('rs__hci.hl7').delimiters.truncation, '#');
});

t.test('escapes are decoded per value, after splitting', async (t) => {
  const nte = parseFixture('rs__hci.hl7').segments.find((s) => s.name === 'NTE');
  t.equal(valueAt(nte, 3), 'Interpretation: \r\nNormal <5.7\r\nPrediabetes: 5.7-6.4\r\nDiabetic: &#8805;6.5');
  const m = parseHl7Text('MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rZPI|a\\S\\b^c\\T\\d~e\\F\\f|x\\.br\\y');
  t.same(m.segments[1].fields[1], [[['a^b'], ['c&d']], [['e|f']]]);
  t.equal(valueAt(m.segments[1], 2), 'x\ny');
});

t.test('line ends \\r, \\n, \\r\\n, blank lines and a BOM are all accepted', async (t) => {
  const body = ['MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5', 'EVN|A01', 'PID|1||123^^^H^MR'];
  for (const sep of ['\r', '\n', '\r\n', '\r\r\n\n']) {
    for (const bom of ['', '\uFEFF']) {
      const m = parseHl7(Buffer.from(bom + body.join(sep) + sep));
      t.same(m.segments.map((s) => s.name), ['MSH', 'EVN', 'PID'], JSON.stringify(sep + bom));
      t.same(m.segments.map((s) => s.position), [1, 2, 3]);
      t.equal(m.text, body.join('\r'));
    }
  }
});

t.test('Z-segments, empty fields and extra fields parse', async (t) => {
  const m = parseHl7Text('MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rZXY|||a|||||||||||||||||||||||z|\rPID');
  t.equal(m.segments[1].name, 'ZXY');
  t.same(m.segments[1].fields[1], []);
  t.equal(valueAt(m.segments[1], 3), 'a');
  t.equal(m.segments[1].fields.length, 28);
  t.equal(valueAt(m.segments[1], 26), 'z');
  t.same(m.segments[2].fields, [[[['PID']]]]);
});

t.test('errors name a reason code and a location', async (t) => {
  const cases: [string, string, string][] = [
    ['', 'HL7_EMPTY', 'MSH'],
    ['\r\n  ', 'HL7_EMPTY', 'MSH'],
    ['PID|1\rMSH|^~\\&|A', 'HL7_NO_MSH', 'PID'],
    ['MSH|^~|A|B', 'HL7_BAD_ENCODING_CHARS', 'MSH-2'],
    ['MSH|^~^&|A|B', 'HL7_BAD_ENCODING_CHARS', 'MSH-2'],
    ['MSHA^~\\&|A|B', 'HL7_BAD_ENCODING_CHARS', 'MSH-1'],
    ['MSH|^~\\&|A\rpid|1', 'HL7_BAD_SEGMENT_NAME', 'pid'],
    ['MSH|^~\\&|A\rPID1|1', 'HL7_BAD_SEGMENT_NAME', 'PID'],
  ];
  for (const [text, code, where] of cases) {
    const e = t.throws(() => parseHl7(Buffer.from(text))) as unknown as Hl7ParseError;
    t.ok(e instanceof Hl7ParseError, JSON.stringify(text));
    t.equal(e.code, code, JSON.stringify(text));
    t.equal(`${e.location.segment}${e.location.field ? `-${e.location.field}` : ''}`, where, JSON.stringify(text));
  }
});

t.test('random bytes never crash the parser: a message or an Hl7ParseError', async (t) => {
  const base = readFileSync(dir + 'msft__ORU-R01-01.hl7');
  let seed = 42;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.from(base);
    for (let k = 0; k < 5; k++) b[Math.floor(rnd() * Math.min(b.length, 300))] = Math.floor(rnd() * 256);
    try {
      parseHl7(b.subarray(0, Math.floor(rnd() * b.length)));
    } catch (e) {
      if (!(e instanceof Hl7ParseError)) t.fail(`crash: ${String(e)}`);
    }
  }
  t.pass('no crash');
});
