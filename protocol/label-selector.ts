import { InvalidRequestError, SelectorSyntaxError } from '../lib/errors';

/**
 * Labels and label selectors in the Kubernetes syntax (`labels.Parse` of k8s.io/apimachinery), shared by the
 * API (which endpoints a task targets), the manager (its own labels) and the CLI. Pure: no I/O, no state.
 *
 * A selector is comma-separated requirements, all of which must hold (AND):
 *
 *   key=value  key==value   the key is present with that value (`==` is the same operator as `=`)
 *   key!=value              the key is absent, or present with another value
 *   key in (v1,v2)          the key is present with one of the values
 *   key notin (v1,v2)       the key is absent, or present with none of the values
 *   key                     the key is present, whatever its value
 *   !key                    the key is absent
 *
 * As in Kubernetes: whitespace (space, tab, CR, LF) may surround any token; `key=` and `key==` with nothing
 * after them mean the empty value; a value list may hold empty values (`(a,)`); `!=` and `notin` match
 * objects that lack the key, so `tier!=db` also picks servers with no `tier` label at all (write
 * `tier,tier!=db` to require one); a key may be given in several requirements, all of which must hold.
 * Deliberately unlike Kubernetes: the numeric `key>3` and `key<3` are not accepted, and an empty selector is
 * an error unless the caller asks for Kubernetes' reading ("everything", `allowEmpty`), since a task sent to
 * every server because a selector was left blank is a mistake worth refusing.
 */

export type Operator = '=' | '!=' | 'in' | 'notin' | 'exists' | 'does_not_exist';

export interface Requirement {
  readonly key: string;
  readonly operator: Operator;
  /** One value for `=` and `!=`, at least one (distinct, in the order written) for `in` and `notin`, none otherwise. */
  readonly values: readonly string[];
}

/** The requirements in the order written; frozen, so that a parsed selector can be cached and shared. */
export type Selector = readonly Requirement[];

export { SelectorSyntaxError };

export const MAX_LABEL_NAME_LENGTH = 63;
export const MAX_LABEL_PREFIX_LENGTH = 253;
export const MAX_LABEL_VALUE_LENGTH = 63;

const NAME_PATTERN = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
// RFC 1123 subdomain, as Kubernetes checks a key's prefix: lowercase only.
const DNS_SUBDOMAIN_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const NAME_RULE = "letters, digits, '-', '_' and '.', beginning and ending with a letter or digit";

/** `'text'`, cut short so that a pasted megabyte does not end up in an error message or a log line. */
function quote(text: string): string {
  return `'${text.length > 70 ? `${text.slice(0, 70)}…` : text}'`;
}

/** Why `key` is not a label key (Kubernetes' qualified name: `[prefix/]name`), or null when it is one. */
export function validateLabelKey(key: string): string | null {
  const parts = key.split('/');
  if (parts.length > 2) return `label key ${quote(key)} has more than one '/' (a key is a name, optionally after a DNS subdomain prefix and '/')`;
  const name = parts[parts.length - 1];
  if (parts.length === 2) {
    const prefix = parts[0];
    if (prefix === '') return `label key ${quote(key)}: the prefix before '/' is empty`;
    if (prefix.length > MAX_LABEL_PREFIX_LENGTH) return `label key ${quote(key)}: the prefix is longer than ${MAX_LABEL_PREFIX_LENGTH} characters`;
    if (!DNS_SUBDOMAIN_PATTERN.test(prefix)) {
      return `label key ${quote(key)}: the prefix must be a DNS subdomain (lowercase letters, digits, '-' and '.', each part between dots beginning and ending with a letter or digit)`;
    }
  }
  if (name === '') return key === '' ? 'a label key must not be empty' : `label key ${quote(key)}: the name after '/' is empty`;
  if (name.length > MAX_LABEL_NAME_LENGTH) return `label key ${quote(key)}: the name is longer than ${MAX_LABEL_NAME_LENGTH} characters`;
  if (!NAME_PATTERN.test(name)) return `label key ${quote(key)}: the name must be ${NAME_RULE}`;
  return null;
}

/** Why `value` is not a label value (empty, or a name of at most 63 characters), or null when it is one. */
export function validateLabelValue(value: string): string | null {
  if (value.length > MAX_LABEL_VALUE_LENGTH) return `label value ${quote(value)} is longer than ${MAX_LABEL_VALUE_LENGTH} characters`;
  if (value !== '' && !NAME_PATTERN.test(value)) return `label value ${quote(value)} must be empty or ${NAME_RULE}`;
  return null;
}

/** Why a set of labels (a configuration's `labels` mapping) is not valid, naming the first bad key or value; null when valid. */
export function validateLabels(labels: Readonly<Record<string, unknown>>): string | null {
  for (const [key, value] of Object.entries(labels)) {
    const bad = validateLabelKey(key)
      ?? (typeof value === 'string' ? validateLabelValue(value) : `label ${quote(key)}: the value must be a string`);
    if (bad) return bad;
  }
  return null;
}

/**
 * Labels written `role=web,region=eu` (TASKER_LABELS, `--label`; a list for a repeated flag, each entry itself
 * such a list). Whitespace around entries, keys and values is ignored, and an empty text is no labels; an
 * entry without '=', an empty entry, a bad key or value, and a key given twice are refused, naming it.
 */
export function parseLabelList(text: string | readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const list of typeof text === 'string' ? [text] : text) {
    if (list.trim() === '') continue;
    for (const entry of list.split(',')) {
      const [key, value] = splitLabel(entry, list);
      const bad = validateLabelKey(key) ?? validateLabelValue(value);
      if (bad) throw new InvalidRequestError(bad);
      if (Object.hasOwn(labels, key)) throw new InvalidRequestError(`label key ${quote(key)} is given twice`);
      labels[key] = value;
    }
  }
  return labels;
}

function splitLabel(entry: string, list: string): [string, string] {
  if (entry.trim() === '') throw new InvalidRequestError(`labels ${quote(list)}: an entry is empty (two commas in a row, or a comma at either end)`);
  const eq = entry.indexOf('=');
  if (eq < 0) throw new InvalidRequestError(`label ${quote(entry.trim())} has no '=' (labels are written key=value)`);
  return [entry.slice(0, eq).trim(), entry.slice(eq + 1).trim()];
}

// ---- Selector syntax ----

type TokenKind = 'word' | '(' | ')' | ',' | '!' | '=' | '==' | '!=' | 'end' | 'other';

interface Token {
  readonly kind: TokenKind;
  readonly text: string;
  /** Offset of the token's first character in the selector. */
  readonly at: number;
}

// Every character a key or value may hold; anything else outside the operators is an error at that character
// (Kubernetes reads it into the word and then refuses the whole key, which points less precisely).
const WORD_CHAR = /[A-Za-z0-9._/-]/;
const WHITESPACE = new Set([' ', '\t', '\r', '\n']);

function lex(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (WHITESPACE.has(c)) { i++; continue; }
    const start = i;
    if (WORD_CHAR.test(c)) {
      while (i < text.length && WORD_CHAR.test(text[i])) i++;
      tokens.push({ kind: 'word', text: text.slice(start, i), at: start });
    } else if ((c === '=' || c === '!') && text[i + 1] === '=') {
      i += 2;
      tokens.push({ kind: c === '=' ? '==' : '!=', text: text.slice(start, i), at: start });
    } else if ('()!=,'.includes(c)) {
      i++;
      tokens.push({ kind: c as TokenKind, text: c, at: start });
    } else {
      // A whole code point, so that an emoji is named as itself rather than as half a surrogate pair.
      const ch = String.fromCodePoint(text.codePointAt(i) ?? 0);
      i += ch.length;
      tokens.push({ kind: 'other', text: ch, at: start });
    }
  }
  tokens.push({ kind: 'end', text: '', at: text.length });
  return tokens;
}

/** The selector around `at`, whole when short, so that a message can show where it went wrong. */
function excerpt(text: string, at: number): string {
  if (text.length <= 100) return text;
  const from = Math.max(0, at - 40);
  const to = Math.min(text.length, at + 40);
  return `${from > 0 ? '…' : ''}${text.slice(from, to)}${to < text.length ? '…' : ''}`;
}

function describe(token: Token): string {
  if (token.kind === 'end') return 'end of selector';
  // Control characters would otherwise vanish from the message, or break a log line.
  // eslint-disable-next-line no-control-regex
  return `'${token.text.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}'`;
}

class Parser {
  private next = 0;
  private readonly tokens: Token[];

  constructor(private readonly text: string) {
    this.tokens = lex(text);
  }

  parse(allowEmpty: boolean): Requirement[] {
    if (this.peek().kind === 'end') {
      if (allowEmpty) return [];
      this.fail(0, 'the selector is empty (write at least one requirement, such as role=web)');
    }
    const requirements: Requirement[] = [];
    for (;;) {
      requirements.push(this.requirement());
      const t = this.take();
      if (t.kind === 'end') return requirements;
      if (t.kind !== ',') this.unexpected(t, "',' or end of selector");
      if (this.peek().kind === 'end') this.fail(t.at, "trailing ','");
    }
  }

  private requirement(): Requirement {
    let t = this.take();
    const negated = t.kind === '!';
    if (negated) t = this.take();
    if (t.kind !== 'word') this.unexpected(t, negated ? 'a label key' : "a label key or '!'");
    const key = t.text;
    const bad = validateLabelKey(key);
    if (bad) this.fail(t.at, bad);
    const after = this.peek();
    if (after.kind === 'end' || after.kind === ',') return { key, operator: negated ? 'does_not_exist' : 'exists', values: [] };
    if (negated) this.unexpected(after, `',' or end of selector ('!${key}' means the key is absent and takes no operator)`);
    return this.comparison(key, this.take());
  }

  private comparison(key: string, op: Token): Requirement {
    switch (op.kind) {
      case '=':
      case '==':
        return { key, operator: '=', values: [this.exactValue()] };
      case '!=':
        return { key, operator: '!=', values: [this.exactValue()] };
      case 'word':
        if (op.text === 'in' || op.text === 'notin') return { key, operator: op.text, values: this.valueList(op.text) };
    }
    return this.unexpected(op, "an operator (=, ==, !=, in, notin), ',' or end of selector");
  }

  /** After `=`, `==` or `!=`: a value, or nothing at all (the empty value, as Kubernetes reads `role=`). */
  private exactValue(): string {
    const t = this.peek();
    if (t.kind === 'end' || t.kind === ',') return '';
    this.take();
    // Words include `in` and `notin`: after an operator they are values, as in Kubernetes.
    if (t.kind !== 'word') this.unexpected(t, 'a value');
    return this.value(t);
  }

  /** `(v1,v2,…)` after `in`/`notin`; an empty entry between commas is the empty value, as in Kubernetes. */
  private valueList(operator: string): string[] {
    const open = this.take();
    if (open.kind !== '(') this.unexpected(open, `'(' after '${operator}'`);
    if (this.peek().kind === ')') this.fail(this.peek().at, `'${operator}' needs at least one value between the parentheses`);
    const values = new Set<string>();
    for (;;) {
      const t = this.peek();
      if (t.kind === 'word') values.add(this.value(this.take()));
      else if (t.kind === ',' || t.kind === ')') values.add('');
      else this.unexpected(t, "a value, ',' or ')'");
      const sep = this.take();
      if (sep.kind === ')') return [...values];
      if (sep.kind !== ',') this.unexpected(sep, "',' or ')'");
    }
  }

  private value(t: Token): string {
    const bad = validateLabelValue(t.text);
    if (bad) this.fail(t.at, bad);
    return t.text;
  }

  private peek(): Token { return this.tokens[this.next]; }

  private take(): Token {
    const t = this.tokens[this.next];
    // The end token stays the last one however often it is taken.
    if (t.kind !== 'end') this.next++;
    return t;
  }

  private unexpected(t: Token, expected: string): never {
    return this.fail(t.at, `unexpected ${describe(t)} (expected ${expected})`);
  }

  private fail(at: number, reason: string): never {
    throw new SelectorSyntaxError(at, `${reason} at position ${at}: ${excerpt(this.text, at)}`);
  }
}

function freeze(requirements: Requirement[]): Selector {
  return Object.freeze(requirements.map((r) => Object.freeze({ ...r, values: Object.freeze([...r.values]) })));
}

/**
 * The requirements of a selector; a SelectorSyntaxError (400 `bad_selector`) pointing at the offending
 * character when it does not parse. An empty (or blank) selector is an error unless `allowEmpty`, when it is
 * the selector with no requirements, which matches everything (Kubernetes' reading).
 */
export function parseSelector(text: string, options: { allowEmpty?: boolean } = {}): Selector {
  return freeze(new Parser(text).parse(options.allowEmpty ?? false));
}

function holds(r: Requirement, labels: Readonly<Record<string, string>>): boolean {
  // Own properties only: `constructor` is a valid label key and must not be found on Object.prototype.
  const present = Object.hasOwn(labels, r.key);
  switch (r.operator) {
    case 'exists': return present;
    case 'does_not_exist': return !present;
    case '=':
    case 'in': return present && r.values.includes(labels[r.key]);
    case '!=':
    case 'notin': return !present || !r.values.includes(labels[r.key]);
  }
}

/** Whether labels satisfy every requirement of the selector (the empty selector: always). */
export function matches(selector: Selector, labels: Readonly<Record<string, string>>): boolean {
  return selector.every((r) => holds(r, labels));
}

function formatRequirement(r: Requirement): string {
  switch (r.operator) {
    case 'exists': return r.key;
    case 'does_not_exist': return `!${r.key}`;
    case '=':
    case '!=': return `${r.key}${r.operator}${r.values[0]}`;
    case 'in':
    case 'notin':
      // `(,)` is how the list holding only the empty value is written; `()` would not parse back.
      return `${r.key} ${r.operator} (${r.values.length === 1 && r.values[0] === '' ? ',' : r.values.join(',')})`;
  }
}

/**
 * The canonical text of a selector: requirements in the order written, `==` written `=`, no whitespace but the
 * single spaces around `in`/`notin`, each value once. It parses back to the same selector.
 */
export function formatSelector(selector: Selector): string {
  return selector.map(formatRequirement).join(',');
}
