/**
 * Label and field selectors as the apiserver parses them: the label grammar used in practice
 * (=, ==, !=, in, notin, exists, !exists) and exactly the fields each resource supports, a bad
 * one refused with the apiserver's 400.
 */
import { badRequest, RESOURCES, type Labels, type ResourceType, type StoredObject } from './resources.js';

/** Whether an object is selected. */
export type Matcher = (o: StoredObject) => boolean;

// Label selector grammar subset used in practice: k=v, k==v, k!=v, k in (a,b), k notin (a,b), k, !k.
const KEY = String.raw`[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?`;
const VAL = String.raw`(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?`;
const RE_EQ = new RegExp(`^(${KEY})\\s*(==|=|!=)\\s*(${VAL})$`);
const RE_SET = new RegExp(`^(${KEY})\\s+(in|notin)\\s*\\(([^)]*)\\)$`);
const RE_EXISTS = new RegExp(`^(${KEY})$`);
const RE_NOT_EXISTS = new RegExp(`^!\\s*(${KEY})$`);

function splitTopLevel(s: string): string[] {
  // Commas inside `in (...)` value lists do not separate requirements.
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts.map((p) => p.trim());
}

/** A labelSelector as a predicate (undefined: matches everything); a bad one throws a 400 ApiError. */
export function parseLabelSelector(selector: string): Matcher | undefined {
  if (selector.trim() === '') return undefined;
  const reqs: Array<(labels: Labels) => boolean> = [];
  for (const part of splitTopLevel(selector)) {
    let m: RegExpExecArray | null;
    if ((m = RE_EQ.exec(part))) {
      const [, key = '', op, value = ''] = m;
      reqs.push(op === '!=' ? (l) => l[key] !== value : (l) => l[key] === value);
    } else if ((m = RE_SET.exec(part))) {
      const [, key = '', op, list = ''] = m;
      const values = new Set(list.split(',').map((v) => v.trim()));
      reqs.push(op === 'in' ? (l) => l[key] !== undefined && values.has(l[key]) : (l) => l[key] === undefined || !values.has(l[key]));
    } else if ((m = RE_NOT_EXISTS.exec(part))) {
      const key = m[1] ?? '';
      reqs.push((l) => !(key in l));
    } else if ((m = RE_EXISTS.exec(part))) {
      const key = m[1] ?? '';
      reqs.push((l) => key in l);
    } else {
      throw badRequest(`unable to parse requirement: ${JSON.stringify(part)}`);
    }
  }
  return (o) => {
    const labels = o.metadata.labels ?? {};
    return reqs.every((r) => r(labels));
  };
}

/** A fieldSelector as a predicate, with exactly the fields the apiserver supports for `type` (default nodes). */
export function parseFieldSelector(selector: string, type: ResourceType = RESOURCES.nodes): Matcher | undefined {
  if (selector.trim() === '') return undefined;
  const reqs: Matcher[] = [];
  for (const part of selector.split(',').map((p) => p.trim())) {
    const m = /^([^=!]+)(==|=|!=)(.*)$/.exec(part);
    if (!m) throw badRequest(`invalid selector: '${selector}'; can't understand '${part}'`);
    const [, field = '', op, value = ''] = m;
    let get: ((o: StoredObject) => string) | undefined = type.fields[field];
    if (field === 'metadata.name') get = (o) => o.metadata.name;
    else if (field === 'metadata.namespace' && type.namespaced) get = (o) => o.metadata.namespace ?? '';
    if (!get) throw badRequest(`field label not supported: ${field}`);
    const read = get;
    reqs.push(op === '!=' ? (o) => read(o) !== value : (o) => read(o) === value);
  }
  return (o) => reqs.every((r) => r(o));
}

/** The name a fieldSelector pins (metadata.name=x), which the apiserver authorizes like a named request. */
export function selectedName(fieldSelector: string): string | undefined {
  const names = fieldSelector
    .split(',')
    .map((p) => /^\s*metadata\.name\s*==?\s*(.+?)\s*$/.exec(p)?.[1])
    .filter((n) => n !== undefined);
  return names.length === 1 ? names[0] : undefined;
}

/** The labelSelector and fieldSelector of a list or watch, as one predicate (undefined: everything). */
export function selectorOf(type: ResourceType, params: URLSearchParams): Matcher | undefined {
  const a = parseLabelSelector(params.get('labelSelector') ?? '');
  const b = parseFieldSelector(params.get('fieldSelector') ?? '', type);
  if (a && b) return (o) => a(o) && b(o);
  return a ?? b;
}
