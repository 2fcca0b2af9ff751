import t from 'tap';
import {
  formatDuration,
  parseDuration,
  parsePercent,
  parseRatio,
  percentToRatio,
  toTenthPercent,
} from '../../src/config/units.js';

t.test('parseDuration: units to milliseconds', async (t) => {
  const table: [string, number | null][] = [
    ['0ms', 0],
    ['500ms', 500],
    ['1s', 1000],
    ['1.5s', 1500],
    ['30s', 30_000],
    ['15m', 900_000],
    ['48h', 172_800_000],
    ['2d', 172_800_000],
    ['0.5ms', 0.5],
    ['10', null],
    ['10 minutes', null],
    ['10 s', null],
    [' 10s', null],
    ['-1s', null],
    ['+1s', null],
    ['1e3ms', null],
    ['1.s', null],
    ['.5s', null],
    ['10S', null],
    ['10sec', null],
    ['10w', null],
    ['', null],
    ['s', null],
    ['1s\n', null],
    [`${'9'.repeat(400)}d`, null],
  ];
  for (const [text, want] of table) t.equal(parseDuration(text), want, JSON.stringify(text));
});

t.test('formatDuration picks the largest exact unit', async (t) => {
  const table: [number, string][] = [
    [0, '0ms'],
    [1, '1ms'],
    [1500, '1500ms'],
    [2000, '2s'],
    [90_000, '90s'],
    [900_000, '15m'],
    [172_800_000, '2d'],
    [7_200_000, '2h'],
  ];
  for (const [ms, want] of table) t.equal(formatDuration(ms), want, String(ms));
  for (const [, text] of table) t.equal(formatDuration(parseDuration(text) ?? -1), text, `round trip ${text}`);
});

t.test('parsePercent: numbers are percent, strings need %', async (t) => {
  const table: [unknown, number | null][] = [
    [5, 5],
    [0, 0],
    [-1, -1],
    [100, 100],
    [33.3, 33.3],
    ['0.5%', 0.5],
    ['5%', 5],
    ['100%', 100],
    ['150%', 150],
    ['5', null],
    ['5 %', null],
    ['-1%', null],
    ['1e2%', null],
    ['%', null],
    ['', null],
    [`${'9'.repeat(400)}%`, null],
    [Number.NaN, null],
    [Infinity, null],
    [null, null],
    [undefined, null],
    [true, null],
    [{}, null],
  ];
  for (const [value, want] of table) t.equal(parsePercent(value), want, String(value));
});

t.test('parseRatio and percentToRatio give ratios 0–1 without float noise', async (t) => {
  t.equal(parseRatio('0.5%'), 0.005);
  t.equal(parseRatio(5), 0.05);
  t.equal(parseRatio('100%'), 1);
  t.equal(parseRatio('0.07%'), 0.0007);
  t.equal(parseRatio('x'), null);
  t.equal(percentToRatio(0.1), 0.001);
  t.equal(percentToRatio(7), 0.07, '7 / 100 is 0.07000000000000001 in plain floats');
});

t.test('toTenthPercent: at most one decimal', async (t) => {
  const table: [number, number | null][] = [
    [0, 0],
    [5, 5],
    [33.3, 33.3],
    [0.1 + 0.2, 0.3],
    [12.5, 12.5],
    [100, 100],
    [33.33, null],
    [0.05, null],
    [Number.NaN, null],
    [Infinity, null],
  ];
  for (const [value, want] of table) t.equal(toTenthPercent(value), want, String(value));
});
