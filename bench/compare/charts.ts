/**
 * SVG charts of the compare benchmarks, drawn by vega (headless: renderer 'none', `toSVG`) from plain vega
 * specs, written to docs/charts/ for docs/benchmarks.md to embed.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as vega from 'vega';
import { DOCS_DIR } from '../report.js';

export const CHARTS_DIR = path.join(DOCS_DIR, 'charts');

const WIDTH = 560;
const ROW_HEIGHT = 26;
const FONT = 'Helvetica, Arial, sans-serif';
const CONFIG = {
  background: 'white',
  axis: { labelFont: FONT, titleFont: FONT, labelFontSize: 11, titleFontSize: 11, grid: false },
  legend: { labelFont: FONT, titleFont: FONT, labelFontSize: 11, titleFontSize: 11 },
  title: { font: FONT, fontSize: 13, anchor: 'start' as const, offset: 10 },
  text: { font: FONT, fontSize: 10 },
};

/** Renders `spec` and writes docs/charts/<name>.svg; returns the path relative to docs/. */
export async function writeChart(name: string, spec: vega.Spec): Promise<string> {
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    fs.mkdirSync(CHARTS_DIR, { recursive: true });
    fs.writeFileSync(path.join(CHARTS_DIR, `${name}.svg`), `${svg}\n`);
    return `charts/${name}.svg`;
  } finally {
    view.finalize();
  }
}

/**
 * Horizontal bars, one per row, coloured by `group`, the value printed at the end of each bar, and dashed
 * reference lines (`rules`) with their labels.
 */
export function barChart(opts: {
  title: string;
  xTitle: string;
  rows: Array<{ label: string; value: number; group: string }>;
  rules?: Array<{ value: number; label: string }>;
}): vega.Spec {
  const height = Math.max(60, opts.rows.length * ROW_HEIGHT);
  return {
    $schema: 'https://vega.github.io/schema/vega/v6.json',
    width: WIDTH,
    height,
    padding: 8,
    title: { text: opts.title, offset: 10 + 12 * (opts.rules?.length ?? 0) },
    config: CONFIG,
    data: [
      { name: 'rows', values: opts.rows },
      { name: 'rules', values: (opts.rules ?? []).map((r, i) => ({ ...r, row: i })) },
    ],
    scales: [
      { name: 'y', type: 'band', domain: { data: 'rows', field: 'label' }, range: 'height', padding: 0.25 },
      {
        name: 'x', type: 'linear', range: 'width', nice: true, zero: true,
        domain: { fields: [{ data: 'rows', field: 'value' }, { data: 'rules', field: 'value' }] },
      },
      { name: 'color', type: 'ordinal', domain: { data: 'rows', field: 'group' }, range: { scheme: 'tableau10' } },
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: opts.xTitle, grid: true, gridOpacity: 0.3, tickCount: 6 },
      { orient: 'left', scale: 'y', labelLimit: 260 },
    ],
    legends: [{ fill: 'color', orient: 'bottom', direction: 'horizontal' }],
    marks: [
      {
        type: 'rect', from: { data: 'rows' },
        encode: {
          enter: {
            y: { scale: 'y', field: 'label' }, height: { scale: 'y', band: 1 },
            x: { scale: 'x', value: 0 }, x2: { scale: 'x', field: 'value' },
            fill: { scale: 'color', field: 'group' },
          },
        },
      },
      {
        type: 'text', from: { data: 'rows' },
        encode: {
          enter: {
            y: { scale: 'y', field: 'label', band: 0.5 }, x: { scale: 'x', field: 'value', offset: 4 },
            baseline: { value: 'middle' }, text: { signal: 'format(datum.value, ",")' }, fill: { value: '#333' },
          },
        },
      },
      {
        type: 'rule', from: { data: 'rules' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'value' }, y: { value: 0 }, y2: { signal: 'height' },
            stroke: { value: '#555' }, strokeDash: { value: [4, 3] },
          },
        },
      },
      {
        type: 'text', from: { data: 'rules' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'value', offset: 3 }, y: { signal: '-3 - 12 * datum.row' }, text: { field: 'label' },
            fill: { value: '#555' }, baseline: { value: 'bottom' }, align: { value: 'left' },
          },
        },
      },
    ],
  };
}

/** Horizontal stacked bars: per row label, one segment per part, in `parts` order and colours. */
export function stackedBarChart(opts: {
  title: string;
  xTitle: string;
  rows: Array<{ label: string; part: string; value: number }>;
  parts: Array<{ name: string; color: string }>;
}): vega.Spec {
  const labels = [...new Set(opts.rows.map((r) => r.label))];
  const order = Object.fromEntries(opts.parts.map((p, i) => [p.name, i]));
  return {
    $schema: 'https://vega.github.io/schema/vega/v6.json',
    width: WIDTH,
    height: Math.max(60, labels.length * ROW_HEIGHT),
    padding: 8,
    title: { text: opts.title },
    config: CONFIG,
    data: [{
      name: 'rows',
      values: opts.rows.map((r) => ({ ...r, order: order[r.part] ?? 99 })),
      transform: [
        { type: 'stack', groupby: ['label'], field: 'value', sort: { field: 'order' } },
        { type: 'formula', as: 'mid', expr: '(datum.y0 + datum.y1) / 2' },
      ],
    }],
    scales: [
      { name: 'y', type: 'band', domain: labels, range: 'height', padding: 0.25 },
      { name: 'x', type: 'linear', range: 'width', nice: true, zero: true, domain: { data: 'rows', field: 'y1' } },
      { name: 'color', type: 'ordinal', domain: opts.parts.map((p) => p.name), range: opts.parts.map((p) => p.color) },
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: opts.xTitle, grid: true, gridOpacity: 0.3, tickCount: 6 },
      { orient: 'left', scale: 'y', labelLimit: 260 },
    ],
    legends: [{ fill: 'color', orient: 'bottom', direction: 'horizontal' }],
    marks: [
      {
        type: 'rect', from: { data: 'rows' },
        encode: {
          enter: {
            y: { scale: 'y', field: 'label' }, height: { scale: 'y', band: 1 },
            x: { scale: 'x', field: 'y0' }, x2: { scale: 'x', field: 'y1' }, fill: { scale: 'color', field: 'part' },
          },
        },
      },
      {
        type: 'text', from: { data: 'rows' },
        encode: {
          enter: {
            y: { scale: 'y', field: 'label', band: 0.5 }, x: { scale: 'x', field: 'mid' },
            align: { value: 'center' }, baseline: { value: 'middle' }, fill: { value: 'white' },
            text: { signal: 'datum.value > 0 ? format(datum.value, ",") : ""' },
          },
        },
      },
    ],
  };
}

/**
 * A dot plot on a log axis: per row one dot per series (e.g. p50 and p99) joined by a line, so values that
 * differ by orders of magnitude stay readable without bars that start at an arbitrary floor.
 */
export function dotPlot(opts: {
  title: string;
  xTitle: string;
  rows: Array<{ label: string; series: string; value: number }>;
  series: Array<{ name: string; color: string }>;
  rules?: Array<{ value: number; label: string }>;
}): vega.Spec {
  const labels = [...new Set(opts.rows.map((r) => r.label))];
  return {
    $schema: 'https://vega.github.io/schema/vega/v6.json',
    width: WIDTH,
    height: Math.max(60, labels.length * ROW_HEIGHT),
    padding: 8,
    title: { text: opts.title },
    config: CONFIG,
    data: [
      { name: 'rows', values: opts.rows },
      {
        name: 'spans', source: 'rows',
        transform: [{ type: 'aggregate', groupby: ['label'], fields: ['value', 'value'], ops: ['min', 'max'], as: ['lo', 'hi'] }],
      },
      { name: 'rules', values: opts.rules ?? [] },
    ],
    scales: [
      { name: 'y', type: 'point', domain: labels, range: 'height', padding: 0.8 },
      {
        name: 'x', type: 'log', range: 'width', nice: true,
        domain: { fields: [{ data: 'rows', field: 'value' }, { data: 'rules', field: 'value' }] },
      },
      { name: 'color', type: 'ordinal', domain: opts.series.map((s) => s.name), range: opts.series.map((s) => s.color) },
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: opts.xTitle, grid: true, gridOpacity: 0.3, format: ',~g', labelOverlap: true },
      { orient: 'left', scale: 'y', labelLimit: 260 },
    ],
    legends: [{ fill: 'color', orient: 'bottom', direction: 'horizontal', symbolType: 'circle' }],
    marks: [
      {
        type: 'rule', from: { data: 'spans' },
        encode: {
          enter: {
            y: { scale: 'y', field: 'label' }, x: { scale: 'x', field: 'lo' }, x2: { scale: 'x', field: 'hi' },
            stroke: { value: '#bbb' }, strokeWidth: { value: 2 },
          },
        },
      },
      {
        type: 'symbol', from: { data: 'rows' },
        encode: {
          enter: {
            y: { scale: 'y', field: 'label' }, x: { scale: 'x', field: 'value' }, size: { value: 70 },
            fill: { scale: 'color', field: 'series' }, shape: { value: 'circle' },
          },
        },
      },
      {
        type: 'text', from: { data: 'rows' },
        encode: {
          enter: {
            y: { scale: 'y', field: 'label', offset: -8 }, x: { scale: 'x', field: 'value' }, align: { value: 'center' },
            baseline: { value: 'bottom' }, fill: { value: '#333' }, fontSize: { value: 9 },
            text: { signal: 'datum.value >= 100 ? format(datum.value, ",.0f") : format(datum.value, ".3~r")' },
          },
        },
      },
      {
        type: 'rule', from: { data: 'rules' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'value' }, y: { value: 0 }, y2: { signal: 'height' },
            stroke: { value: '#c0392b' }, strokeDash: { value: [4, 3] },
          },
        },
      },
      {
        type: 'text', from: { data: 'rules' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'value', offset: 3 }, y: { value: -3 }, text: { field: 'label' },
            fill: { value: '#c0392b' }, baseline: { value: 'bottom' }, align: { value: 'left' },
          },
        },
      },
    ],
  };
}

/** Lines over time: x seconds, y value, one line per series, with shaded phases. */
export function lineChart(opts: {
  title: string;
  xTitle: string;
  yTitle: string;
  points: Array<{ t: number; value: number; series: string }>;
  phases?: Array<{ from: number; to: number; label: string }>;
}): vega.Spec {
  return {
    $schema: 'https://vega.github.io/schema/vega/v6.json',
    width: WIDTH,
    height: 220,
    padding: 8,
    title: { text: opts.title },
    config: CONFIG,
    data: [
      { name: 'points', values: opts.points },
      { name: 'phases', values: opts.phases ?? [] },
    ],
    scales: [
      { name: 'x', type: 'linear', range: 'width', zero: true, domain: { data: 'points', field: 't' } },
      { name: 'y', type: 'linear', range: 'height', nice: true, zero: true, domain: { data: 'points', field: 'value' } },
      { name: 'color', type: 'ordinal', domain: { data: 'points', field: 'series' }, range: { scheme: 'tableau10' } },
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: opts.xTitle },
      { orient: 'left', scale: 'y', title: opts.yTitle, grid: true, gridOpacity: 0.3 },
    ],
    legends: new Set(opts.points.map((p) => p.series)).size > 1 ? [{ stroke: 'color', orient: 'bottom', direction: 'horizontal', labelLimit: 300 }] : [],
    marks: [
      {
        type: 'rect', from: { data: 'phases' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'from' }, x2: { scale: 'x', field: 'to' }, y: { value: 0 }, y2: { signal: 'height' },
            fill: { value: '#f0f0f0' },
          },
        },
      },
      {
        type: 'text', from: { data: 'phases' },
        encode: {
          enter: {
            x: { scale: 'x', signal: '(datum.from + datum.to) / 2' }, y: { signal: 'height - 6' }, align: { value: 'center' },
            text: { field: 'label' }, fill: { value: '#777' },
          },
        },
      },
      {
        type: 'group',
        from: { facet: { name: 'series', data: 'points', groupby: 'series' } },
        marks: [{
          type: 'line', from: { data: 'series' },
          encode: {
            enter: {
              x: { scale: 'x', field: 't' }, y: { scale: 'y', field: 'value' },
              stroke: { scale: 'color', field: 'series' }, strokeWidth: { value: 2 },
            },
          },
        }],
      },
    ],
  };
}
