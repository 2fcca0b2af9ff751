/**
 * Just enough of nginx's configuration syntax to find the directives that
 * name files (`include`, `load_module`, logs, temp paths) and to rewrite their
 * path arguments in place, keeping every other byte. Pure: no file system.
 *
 * Syntax (nginx docs, "Configuration file's structure"; the tokenizer is
 * `ngx_conf_read_token` in src/core/ngx_conf_file.c): tokens are separated by
 * whitespace; a directive is a name and arguments ending in `;` or `{`; `}`
 * closes a block; `#` starts a comment to the end of the line outside quotes;
 * `'…'` and `"…"` quote (a backslash escapes the next character).
 */

/** One argument of a directive, with its place in the text. */
export interface ConfArg {
  /** The value with quotes removed and backslash escapes resolved. */
  value: string;
  /** Offset of the token's first character (its opening quote, if quoted) in the text. */
  start: number;
  /** Offset just past the token's last character (its closing quote, if quoted). */
  end: number;
}

/** A simple or block directive: its name and arguments, in text order. */
export interface ConfDirective {
  name: string;
  args: ConfArg[];
  /** 1-based line of the directive's name. */
  line: number;
}

/** The text could not be read as nginx syntax (an unclosed quote); `line` is 1-based. */
export class ConfSyntaxError extends Error {
  readonly line: number;
  /** @param line 1-based line where the bad token starts. */
  constructor(message: string, line: number) {
    super(`${message} (line ${line})`);
    this.name = 'ConfSyntaxError';
    this.line = line;
  }
}

const SPACE = new Set([' ', '\t', '\r', '\n']);

/**
 * Splits nginx configuration text into directives. Block bodies are walked
 * too (their directives come in text order); `*_by_lua_block`-style raw
 * blocks are not understood and read as ordinary tokens.
 *
 * @returns every directive of the text, outermost and nested, in order.
 * @throws ConfSyntaxError on a quote that is never closed.
 */
export function parseDirectives(text: string): ConfDirective[] {
  const out: ConfDirective[] = [];
  let words: ConfArg[] = [];
  let firstLine = 1;
  let line = 1;
  let i = 0;
  const flush = (): void => {
    const [name, ...args] = words;
    if (name !== undefined) out.push({ name: name.value, args, line: firstLine });
    words = [];
  };
  while (i < text.length) {
    const c = text.charAt(i);
    if (c === '\n') line++;
    if (SPACE.has(c)) {
      i++;
      continue;
    }
    if (c === '#') {
      while (i < text.length && text.charAt(i) !== '\n') i++;
      continue;
    }
    if (c === ';' || c === '{' || c === '}') {
      flush();
      i++;
      continue;
    }
    if (words.length === 0) firstLine = line;
    const start = i;
    let value = '';
    if (c === '"' || c === "'") {
      const startLine = line;
      i++;
      for (;;) {
        if (i >= text.length) throw new ConfSyntaxError(`unclosed ${c} quote`, startLine);
        const d = text.charAt(i);
        if (d === '\\' && i + 1 < text.length) {
          value += text.charAt(i + 1);
          i += 2;
          continue;
        }
        if (d === '\n') line++;
        i++;
        if (d === c) break;
        value += d;
      }
    } else {
      while (i < text.length) {
        const d = text.charAt(i);
        if (SPACE.has(d) || d === ';' || d === '{' || d === '}') break;
        if (d === '\\' && i + 1 < text.length) {
          value += text.charAt(i + 1);
          i += 2;
          continue;
        }
        value += d;
        i++;
      }
    }
    words.push({ value, start, end: i });
  }
  flush();
  return out;
}

/** A replacement of one argument's text span. */
export interface ConfEdit {
  arg: ConfArg;
  /** The new value, unquoted; it is quoted as needed when written. */
  value: string;
}

/** Writes `value` as one nginx token: bare when it holds only safe characters, else double-quoted with `"` and `\` escaped. */
export function quoteToken(value: string): string {
  return /^[A-Za-z0-9_./:@%+=,*-]+$/.test(value) ? value : `"${value.replace(/[\\"]/g, (m) => `\\${m}`)}"`;
}

/**
 * Applies `edits` to `text`, replacing each argument's span with its new
 * value and keeping every other byte.
 *
 * @throws RangeError when two edits overlap.
 */
export function applyEdits(text: string, edits: readonly ConfEdit[]): string {
  const sorted = [...edits].sort((a, b) => a.arg.start - b.arg.start);
  let out = '';
  let at = 0;
  for (const e of sorted) {
    if (e.arg.start < at) throw new RangeError('applyEdits: overlapping edits');
    out += text.slice(at, e.arg.start) + quoteToken(e.value);
    at = e.arg.end;
  }
  return out + text.slice(at);
}

/** True when `pattern` holds a glob character nginx expands (`*`, `?`, `[`), as `ngx_conf_include` decides. */
export function isGlob(pattern: string): boolean {
  return /[*?[]/.test(pattern);
}

/**
 * One path segment's glob (`*`, `?`, `[…]`, as glob(3) without flags: a
 * leading `.` is matched only by a literal `.`) as a RegExp.
 */
export function segmentMatcher(segment: string): RegExp {
  let re = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment.charAt(i);
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const close = segment.indexOf(']', i + 2);
      if (close < 0) {
        re += '\\[';
        continue;
      }
      let body = segment.slice(i + 1, close);
      if (body.startsWith('!')) body = `^${body.slice(1)}`;
      re += `[${body.replace(/\\/g, '\\\\')}]`;
      i = close;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  const hiddenGuard = segment.startsWith('.') ? '' : '(?!\\.)';
  return new RegExp(`^${hiddenGuard}${re}$`);
}
