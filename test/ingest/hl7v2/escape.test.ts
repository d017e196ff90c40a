import { readFileSync } from 'node:fs';
import t from 'tap';
import { escapeHl7, unescapeHl7, type Delimiters } from '../../../src/ingest/hl7v2/index.js';

const dir = '/work/shared/fixtures/hl7v2/escape/';
const d: Delimiters = { field: '|', component: '^', repetition: '~', escape: '\\', subcomponent: '&' };

/**
 * Rows of escape_cases.tsv whose expected value is another library's rendering choice, not the
 * HL7 meaning; what this gateway decodes them to instead, and why.
 */
const OURS: Record<string, string> = {
  // \H\ and \N\ (highlight on/off) are dropped: FHIR strings carry no highlighting.
  'H \\H\\ N \\N\\ ': 'H  N  ',
  '\\H\\text\\N\\': 'text',
  // LinuxForHealth renders to XHTML and \R\ as <br/>; the HL7 meaning of \R\ is the repetition separator.
  '<This field> should be found "Encounter.text" \\T\\ formatted as xhtml with correct escaped characters.\\R\\HL7 newline should be processed as well':
    '<This field> should be found "Encounter.text" & formatted as xhtml with correct escaped characters.~HL7 newline should be processed as well',
};

t.test('escape_cases.tsv: every case decodes to its value (or to ours, where the source made a rendering choice)', async (t) => {
  const rows = readFileSync(dir + 'escape_cases.tsv', 'utf8').split('\n').slice(1).filter(Boolean);
  t.equal(rows.length, 21);
  for (const row of rows) {
    const [escapedJson, unescapedJson] = row.split('\t');
    const escaped = JSON.parse(escapedJson) as string;
    const unescaped = JSON.parse(unescapedJson) as string;
    if (escaped.startsWith('(file)')) continue;
    t.equal(unescapeHl7(escaped, d), OURS[escaped] ?? unescaped, escaped);
  }
});

t.test('the uuencoded pair: 85 KB with 1112 \\X0D\\\\X0A\\ and \\E\\ \\S\\ \\T\\', async (t) => {
  const escaped = readFileSync(dir + 'nhapi__uuencoded_escaped.txt', 'latin1');
  const unescaped = readFileSync(dir + 'nhapi__uuencoded_unescaped.txt', 'latin1');
  // The escaped file ends with an escaped CRLF, the unescaped one with none: compare trimmed.
  t.equal(unescapeHl7(escaped, d).trimEnd(), unescaped.trimEnd());
});

t.test('unknown and lone escapes are kept verbatim', async (t) => {
  t.equal(unescapeHl7('a \\Zfoo\\ b', d), 'a \\Zfoo\\ b');
  t.equal(unescapeHl7('C:\\path', d), 'C:\\path');
  t.equal(unescapeHl7('\\XZZ\\', d), '\\XZZ\\');
  t.equal(unescapeHl7('a\\.br\\b\\.sp\\', d), 'a\nb\\.sp\\');
  t.equal(unescapeHl7('x\\P\\y', { ...d, truncation: '#' }), 'x#y');
});

t.test('\\X..\\ in a GBK message is decoded as GBK', async (t) => {
  t.equal(unescapeHl7('\\XD6D0CEC4\\', d, (b) => new TextDecoder('gbk').decode(b)), '中文');
});

t.test('escapeHl7 round-trips every delimiter and line breaks', async (t) => {
  const text = 'a|b^c~d\\e&f\r\ng';
  const esc = escapeHl7(text, d);
  t.equal(esc, 'a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f\\X0D\\\\.br\\g');
  t.equal(unescapeHl7(esc, d), text);
  t.equal(escapeHl7('plain', d), 'plain');
});
