// The time-series chart: cost (left axis) and tokens (right axis) per day or hour, drawn by uPlot
// on a canvas (bundled at build time; it styles elements through the CSSOM only, which the
// page's CSP allows without 'unsafe-inline'). Axes and legend are in UTC, like the report.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { formatCost, formatCostTick, formatInt, formatTick } from './shape.js';

const HEIGHT = 280;
const COST = '#1d4ed8';
const TOKENS = '#b45309';

function utc(ts) {
  return uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC');
}

export class Chart {
  constructor(el) {
    this.el = el;
    this.plot = null;
    this.resize = new ResizeObserver(() => this.plot?.setSize(this.size()));
    this.resize.observe(el);
  }

  size() {
    return { width: Math.max(this.el.clientWidth, 280), height: HEIGHT };
  }

  /** Draws `s` (from shape.series); a new bucket size rebuilds the axes. */
  draw(s, bucket) {
    const data = [s.x, s.cost, s.tokens];
    if (this.plot && this.bucket === bucket) {
      this.plot.setData(data);
      return;
    }
    this.plot?.destroy();
    this.bucket = bucket;
    this.plot = new uPlot(
      {
        ...this.size(),
        tzDate: utc,
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, usd: { auto: true }, tok: { auto: true } },
        series: [
          { label: bucket === 'hour' ? 'Hour (UTC)' : 'Day (UTC)', value: bucket === 'hour' ? '{YYYY}-{MM}-{DD} {HH}:00' : '{YYYY}-{MM}-{DD}' },
          { label: 'Cost (USD)', scale: 'usd', stroke: COST, width: 2, fill: 'rgba(29, 78, 216, 0.08)', value: (u, v) => (v == null ? '—' : formatCost(v)), points: { show: true } },
          { label: 'Tokens', scale: 'tok', stroke: TOKENS, width: 2, dash: [6, 4], value: (u, v) => (v == null ? '—' : formatInt(v)), points: { show: true } },
        ],
        axes: [
          { stroke: '#374151', grid: { stroke: '#e5e7eb' }, values: (u, splits) => splits.map((s) => formatTick(s, bucket)) },
          { scale: 'usd', stroke: COST, grid: { stroke: '#e5e7eb' }, values: (u, vals) => vals.map(formatCostTick), size: 80 },
          { scale: 'tok', side: 1, stroke: TOKENS, grid: { show: false }, values: (u, vals) => vals.map(formatInt), size: 70 },
        ],
      },
      data,
      this.el,
    );
  }
}
