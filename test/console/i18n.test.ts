/**
 * Every word the console shows comes from its dictionaries, in Chinese and in English: no text is
 * written into the screens' markup (JSX text, or a title, placeholder, alt or aria-label given as
 * a literal), and both languages have every key, non-empty, with the same {placeholders}.
 */
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { DICTIONARIES } from '../../console/src/words.js';

const SRC = fileURLToPath(new URL('../../console/src/', import.meta.url));
const WORDS = /\p{L}/u;
const SHOWN_ATTRIBUTES = new Set(['title', 'placeholder', 'alt', 'aria-label']);

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.tsx') ? [join(dir, e.name)] : []));
}

/** Literal words in the markup of one file, as `line: text`. */
function literalWords(fileName: string, text: string): string[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TSX);
  const found: string[] = [];
  const at = (n: ts.Node) => source.getLineAndCharacterOfPosition(n.getStart()).line + 1;
  const visit = (n: ts.Node) => {
    if (ts.isJsxText(n) && WORDS.test(n.text)) found.push(`${at(n)}: ${n.text.trim()}`);
    // An attribute the browser shows, on an HTML or SVG element (a component's props are its own).
    const element = n.parent?.parent;
    const intrinsic = element !== undefined && (ts.isJsxOpeningElement(element) || ts.isJsxSelfClosingElement(element)) && /^[a-z]/.test(element.tagName.getText(source));
    if (ts.isJsxAttribute(n) && intrinsic && SHOWN_ATTRIBUTES.has(n.name.getText(source)) && n.initializer && ts.isStringLiteral(n.initializer) && WORDS.test(n.initializer.text)) {
      found.push(`${at(n)}: ${n.getText(source)}`);
    }
    ts.forEachChild(n, visit);
  };
  visit(source);
  return found;
}

t.test('the check finds literal words', async (t) => {
  t.same(literalWords('x.tsx', 'const a = <p title="Hello">Hi {t("x")} — 你好</p>;'), ['1: title="Hello"', '1: Hi', '1: — 你好']);
  t.same(literalWords('x.tsx', 'const a = <p className="bar" data-testid="x">{t("x")} — {n}</p>;'), []);
  t.same(literalWords('x.tsx', 'const a = <Card title="recognition" />;'), [], "a component's props are not shown as such");
});

t.test('no literal words in the screens', async (t) => {
  const all = files(SRC);
  t.ok(all.length >= 7, 'the console sources are read');
  for (const f of all) t.same(literalWords(f, readFileSync(f, 'utf8')), [], f.slice(SRC.length));
});

t.test('both languages have every key, with the same placeholders', async (t) => {
  const { zh, en } = DICTIONARIES;
  t.same(Object.keys(en).sort(), Object.keys(zh).sort());
  const vars = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
  for (const key of Object.keys(zh) as (keyof typeof zh)[]) {
    t.ok(zh[key].trim() && en[key].trim(), `${key} is not empty`);
    t.same(vars(en[key]), vars(zh[key]), `${key}: same placeholders`);
  }
});
