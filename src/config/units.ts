/**
 * Units of weights.yaml (docs/design.md "weights.yaml"): durations are strings with
 * a unit (`500ms`, `30s`, `15m`, `48h`, `2d`), percentages are numbers (`5`
 * means 5 %) or strings with a percent sign (`"0.5%"`). Pure functions; the
 * validator turns a `null` answer into a config problem.
 */

/** Source of the duration pattern, shared with the TypeBox schema. */
export const DURATION_PATTERN = '^\\d+(\\.\\d+)?(ms|s|m|h|d)$';

/** Source of the percent-string pattern (`"0.5%"`), shared with the TypeBox schema. */
export const PERCENT_PATTERN = '^\\d+(\\.\\d+)?%$';

const DURATION_RE = new RegExp(DURATION_PATTERN);
const PERCENT_RE = new RegExp(PERCENT_PATTERN);

/** Milliseconds per duration unit. */
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
type Unit = keyof typeof UNIT_MS;

/**
 * Parses a duration such as `500ms`, `1.5s`, `15m`, `48h` or `2d` into
 * milliseconds. Returns null for anything else (no unit, spaces, signs,
 * exponents, `10 minutes`) and for an amount too large to be finite. The
 * result may be fractional (`0.5ms` → 0.5); callers that need whole
 * milliseconds or seconds check it. Never throws.
 */
export function parseDuration(text: string): number | null {
  if (!DURATION_RE.test(text)) return null;
  // The pattern guarantees one of the units; `ms` must be tested before `s`.
  const unit = (text.endsWith('ms') ? 'ms' : text.slice(-1)) as Unit;
  const ms = Number(text.slice(0, text.length - unit.length)) * UNIT_MS[unit];
  // 400 digits of amount overflow to Infinity.
  return Number.isFinite(ms) ? ms : null;
}

/**
 * Formats a duration in ms as the largest unit of d, h, m, s that divides it
 * exactly (`172800000` → `48h`, `1500` → `1500ms`, `0` → `0ms`): the inverse
 * of {@link parseDuration}, for messages that quote weights.yaml syntax.
 * Never throws.
 */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const size = UNIT_MS[unit];
    if (ms !== 0 && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/**
 * Parses a percentage: a finite number is already percent (`5` → 5, `-1` →
 * -1; range checks are the caller's), a string must be digits with a `%`
 * (`"0.5%"` → 0.5). Returns null for anything else.
 */
export function parsePercent(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value !== 'string' || !PERCENT_RE.test(value)) return null;
  const n = Number(value.slice(0, -1));
  return Number.isFinite(n) ? n : null;
}

/**
 * Parses a percentage like {@link parsePercent} and returns it as a ratio
 * 0–1 (`"0.5%"` → 0.005, `5` → 0.05), for Config fields that are ratios
 * (gates.error_ratio, gates.probe_failure_ratio). Null when not a percentage.
 */
export function parseRatio(value: unknown): number | null {
  const p = parsePercent(value);
  return p === null ? null : percentToRatio(p);
}

/** Percent 0–100 → ratio 0–1, rounded to 12 significant digits so `0.5` gives exactly `0.005`. */
export function percentToRatio(percent: number): number {
  return Number((percent / 100).toPrecision(12));
}

/**
 * A weight in percent with at most one decimal (docs/design.md "Rendering": weights
 * are scaled so 0.1 % is representable). Returns the value rounded to one decimal
 * (`33.3` → 33.3, float noise removed) or null when it has finer resolution
 * (`33.33`) or is not finite.
 */
export function toTenthPercent(percent: number): number | null {
  if (!Number.isFinite(percent)) return null;
  const tenths = Math.round(percent * 10);
  return Math.abs(percent * 10 - tenths) < 1e-6 ? tenths / 10 : null;
}
