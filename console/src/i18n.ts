/**
 * The console's language (words.ts) and formats. The language is chosen in the page and kept in
 * memory only; dates and numbers follow the browser's locale.
 */
import { createContext, useContext } from 'react';
import { DICTIONARIES, type Key, type Lang } from './words';

export type { Key, Lang } from './words';

export type T = (key: Key, vars?: Record<string, string | number>) => string;

export function translator(lang: Lang): T {
  const dict = DICTIONARIES[lang];
  return (key, vars) => dict[key].replace(/\{(\w+)\}/g, (_, k: string) => String(vars?.[k] ?? ''));
}

export const LangContext = createContext<{ lang: Lang; t: T }>({ lang: 'zh', t: translator('zh') });

export function useT(): T {
  return useContext(LangContext).t;
}

/** Dates and numbers in the browser's locale, whatever the console's language. */
const locale = typeof navigator === 'undefined' ? undefined : navigator.language;
const dateTime = new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'medium' });
const dateOnly = new Intl.DateTimeFormat(locale, { dateStyle: 'medium' });
const monthFmt = new Intl.DateTimeFormat(locale, { year: 'numeric', month: 'short' });
const monthOnlyFmt = new Intl.DateTimeFormat(locale, { month: 'short' });
const hourFmt = new Intl.DateTimeFormat(locale, { hour: '2-digit', minute: '2-digit' });
const numberFmt = new Intl.NumberFormat(locale);

export const fmt = {
  dateTime: (iso: string | undefined) => (iso ? dateTime.format(new Date(iso)) : '—'),
  date: (iso: string | undefined) => (iso ? dateOnly.format(new Date(iso)) : '—'),
  month: (d: Date) => monthFmt.format(d),
  /** The month without its year (chart labels after the first of a year). */
  monthOnly: (d: Date) => monthOnlyFmt.format(d),
  hour: (d: Date) => hourFmt.format(d),
  number: (n: number | undefined) => (n === undefined ? '—' : numberFmt.format(n)),
};
