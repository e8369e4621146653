// Statistics over a period (7d, 30d, 90d; also 24h and 1y): the totals,
// ratios and trends of GET /backup/statistics, and charts drawn as inline
// SVG of success rate, durations, sizes, compression and deduplication
// ratios and storage growth. GET /backup/statistics answers totals only,
// so the charts bucket the period's backups from GET /backup/list.
import { get, live, h, clear, fmtBytes, fmtSeconds, fmtTime, header, section, loading, table } from '../core.js';
import { errorSlot, select, svg, fmtPct, debounce } from '../widgets.js';

const PERIODS = [['24h', 'hour', 24], ['7d', 'day', 7], ['30d', 'day', 30], ['90d', 'day', 90], ['1y', 'week', 53]];
const GROUPS = [['', 'every grouping'], ['type', 'by type'], ['component', 'by component'], ['schedule', 'by schedule']];
const MAX_PAGES = 10; // 10 000 backups drawn at most
const HOUR = 3600e3;
const DAY = 24 * HOUR;

export async function render(main, params) {
  const period = PERIODS.find((p) => p[0] === params[0]) || PERIODS[2];
  const [name, unit, n] = period;
  let groupBy = params[1] || '';

  const errs = errorSlot('statistics-error');
  const cards = h('div', { class: 'cards compact', id: 'stats-summary' }, loading('statistics'));
  const charts = h('div', { class: 'charts', id: 'stats-charts' });
  const note = h('p', { class: 'muted small', id: 'stats-note' });
  const groups = h('div', { id: 'stats-groups' });
  const periodSel = h('div', { class: 'segmented', id: 'stats-period', role: 'group', 'aria-label': 'period' },
    PERIODS.map(([p]) => h('button', { type: 'button', 'data-period': p, 'aria-pressed': p === name ? 'true' : 'false',
      onclick: () => { location.hash = '#/statistics/' + p + (groupBy ? '/' + groupBy : ''); } }, p)));
  const groupSel = select('stats-group-by', GROUPS, groupBy);
  groupSel.addEventListener('change', () => { location.hash = '#/statistics/' + name + (groupSel.value ? '/' + groupSel.value : ''); });

  clear(main, header('Statistics', periodSel, h('label', { class: 'inline', for: 'stats-group-by' }, 'Breakdown', groupSel)),
    errs, cards, charts, note, groups);

  async function load() {
    const [st, bk] = await Promise.allSettled([
      get('/backup/statistics' + (groupBy ? `?period=${name}&group_by=${groupBy}` : `?period=${name}`)),
      backups(),
    ]);
    errs.show(st.status === 'rejected' ? st.reason : bk.status === 'rejected' ? bk.reason : null);
    if (st.status === 'fulfilled') drawSummary(st.value);
    else clear(cards);
    if (bk.status === 'fulfilled') drawCharts(bk.value, st.status === 'fulfilled' ? st.value : null);
  }

  // the period's backups, page by page
  async function backups() {
    const to = bucketEnd(new Date());
    const from = new Date(to - n * size());
    const all = [];
    let truncated = false;
    for (let page = 1; page <= MAX_PAGES; page++) {
      const r = await get(`/backup/list?since=${encodeURIComponent(from.toISOString())}&limit=1000&page=${page}`);
      all.push(...(r.backups || []));
      if (page >= (r.pagination ? r.pagination.total_pages : 1)) break;
      if (page === MAX_PAGES) truncated = true;
    }
    return { from, to, list: all, truncated };
  }

  function size() { return unit === 'hour' ? HOUR : unit === 'day' ? DAY : 7 * DAY; }
  // buckets end at the next local hour or midnight, so a day bucket is a calendar day
  function bucketEnd(now) {
    const d = new Date(now);
    if (unit === 'hour') { d.setMinutes(0, 0, 0); d.setHours(d.getHours() + 1); } else { d.setHours(0, 0, 0, 0); d.setDate(d.getDate() + 1); }
    return d.getTime();
  }

  function drawSummary(s) {
    const sm = s.summary || {};
    const tr = s.trends || {};
    const trend = (t) => t ? h('div', { class: 'trend muted', title: tr.rule || '' }, trendWord(t)) : null;
    clear(cards,
      card('Backups', sm.total_backups, `${sm.successful} ok · ${sm.failed} failed`, 'stats-total'),
      card('Success rate', sm.success_rate, trend(tr.success_rate), 'stats-success-rate', sm.failed ? 'warn' : 'ok'),
      card('Content backed up', sm.total_size, trend(tr.backup_size)),
      card('Stored (compressed)', sm.compressed_size),
      card('Added to storage', sm.added_size, trend(tr.storage_usage)),
      card('Compression ratio', sm.average_compression_ratio, 'content ÷ compressed', 'stats-compression'),
      card('Deduplication ratio', sm.deduplication_ratio, 'compressed ÷ added', 'stats-dedup'),
      card('Average duration', sm.average_duration, trend(tr.duration)),
      card('Total duration', sm.total_duration));
    const bt = s.by_type ? table([
      { title: 'Type', cell: (r) => r[0] }, { title: 'Backups', class: 'num', cell: (r) => r[1].count },
      { title: 'Success rate', class: 'num', cell: (r) => r[1].success_rate }, { title: 'Average size', class: 'num', cell: (r) => r[1].average_size },
      { title: 'Average duration', class: 'num', cell: (r) => r[1].average_duration }], Object.entries(s.by_type).sort(), { id: 'stats-by-type', empty: 'no backups in the period' }) : null;
    const bc = s.by_component ? table([
      { title: 'Component', cell: (r) => r[0] }, { title: 'Backups including it', class: 'num', cell: (r) => r[1].backups_included },
      { title: 'Average size', class: 'num', cell: (r) => r[1].average_size }], Object.entries(s.by_component).sort(), { id: 'stats-by-component', empty: 'no backups in the period' }) : null;
    const bs = s.by_schedule ? table([
      { title: 'Schedule', cell: (r) => h('a', { href: '#/schedules' }, r[0]) }, { title: 'Runs', class: 'num', cell: (r) => r[1].executions },
      { title: 'Success rate', class: 'num', cell: (r) => r[1].success_rate }, { title: 'Average size', class: 'num', cell: (r) => r[1].average_size }],
    Object.entries(s.by_schedule).sort(), { id: 'stats-by-schedule', empty: 'no scheduled backups in the period' }) : null;
    clear(groups, h('div', { class: 'cols' }, bt ? section('By type', bt) : null, bc ? section('By component', bc) : null),
      bs ? section('By schedule', bs) : null,
      h('p', { class: 'muted small' }, `Period ${fmtTime(s.time_range.from)} – ${fmtTime(s.time_range.to)}. Trends: ${tr.rule || ''}`));
  }

  function card(label, value, sub, id, kind) {
    return h('div', { class: 'card stat ' + (kind || ''), id }, h('div', { class: 'label' }, label),
      h('div', { class: 'big' }, value === undefined || value === '' ? '—' : value), typeof sub === 'string' ? h('div', { class: 'muted small' }, sub) : sub);
  }

  function drawCharts({ from, to, list, truncated }) {
    const step = size();
    const B = Array.from({ length: n }, (_, i) => ({ start: new Date(from.getTime() + i * step), n: 0, ok: 0, failed: 0, size: 0, comp: 0, added: 0, dur: 0 }));
    for (const b of list) {
      const t = Date.parse(b.timestamp_rfc3339 || b.timestamp);
      const i = Math.floor((t - from.getTime()) / step);
      if (i < 0 || i >= n) continue;
      const x = B[i];
      x.n++;
      // as the server counts: completed and partial succeed, failed fails,
      // running and cancelled backups are in neither
      if (b.status === 'completed' || b.status === 'partial') {
        x.ok++;
        x.size += b.size_bytes || 0;
        x.comp += b.compressed_size_bytes || 0;
        x.added += b.added_size_bytes || 0;
        x.dur += b.duration_seconds || 0;
      } else if (b.status === 'failed') x.failed++;
    }
    const labels = B.map((x) => x.start);
    const rate = B.map((x) => (x.ok + x.failed ? 100 * x.ok / (x.ok + x.failed) : null));
    let cum = 0;
    const growth = B.map((x) => (cum += x.added));
    const dateFmt = unit === 'hour' ? (d) => d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
      : (d) => d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
    const xTitle = unit === 'hour' ? 'hour (your time)' : unit === 'day' ? 'day (your time)' : 'week starting (your time)';
    const tip = (i) => `${dateFmt(labels[i])}: ${B[i].n} backup${B[i].n === 1 ? '' : 's'}, ${B[i].ok} ok, ${B[i].failed} failed`;
    clear(charts,
      chartCard('stats-chart-success', 'Success rate', chart({ labels, dateFmt, xTitle, yTitle: 'success %', yMax: 100, yFmt: (v) => v + '%', kind: 'bar',
        series: [{ values: rate, cls: (v) => (v >= 100 ? 'ok' : v >= 80 ? 'warn' : 'bad'), tip: (i, v) => tip(i) + ` (${fmtPct(v)})` }] }),
      [['ok', '100%'], ['warn', '80–99%'], ['bad', 'below 80%']]),
      chartCard('stats-chart-duration', 'Average duration', chart({ labels, dateFmt, xTitle, yTitle: 'duration', yFmt: secs, kind: 'bar',
        series: [{ values: B.map((x) => (x.ok ? x.dur / x.ok : null)), tip: (i, v) => tip(i) + `, average ${secs(v)}` }] })),
      chartCard('stats-chart-size', 'Sizes', chart({ labels, dateFmt, xTitle, yTitle: 'bytes', yFmt: fmtBytes, kind: 'bar',
        series: [{ values: B.map((x) => (x.ok ? x.size : null)), cls: () => 's1', tip: (i, v) => `${dateFmt(labels[i])}: ${fmtBytes(v)} content` },
          { values: B.map((x) => (x.ok ? x.added : null)), tip: (i, v) => `${dateFmt(labels[i])}: ${fmtBytes(v)} added to storage` }] }),
      [['s1b', 'content backed up'], ['', 'added to storage (after deduplication and compression)']]),
      chartCard('stats-chart-ratios', 'Compression and deduplication ratios', chart({ labels, dateFmt, xTitle, yTitle: 'ratio', yFmt: (v) => Number(v.toFixed(2)) + '×', kind: 'line',
        series: [{ values: B.map((x) => (x.comp ? x.size / x.comp : null)), cls: () => 's1', tip: (i, v) => `${dateFmt(labels[i])}: compression ${v.toFixed(2)}×` },
          { values: B.map((x) => (x.added ? x.comp / x.added : null)), cls: () => 's2', tip: (i, v) => `${dateFmt(labels[i])}: deduplication ${v.toFixed(2)}×` }] }),
      [['s1', 'compression (content ÷ compressed)'], ['s2', 'deduplication (compressed ÷ added)']]),
      chartCard('stats-chart-growth', 'Storage growth', chart({ labels, dateFmt, xTitle, yTitle: 'bytes added', yFmt: fmtBytes, kind: 'line', area: true,
        series: [{ values: growth, tip: (i, v) => `${dateFmt(labels[i])}: ${fmtBytes(v)} added since ${dateFmt(labels[0])}` }] }),
      [['', `bytes the backups added to storage since ${from.toLocaleDateString()} (each copy location stores them once more)`]]));
    note.textContent = `${list.length} backups in the period, from GET /backup/list; buckets of one ${unit}.` +
      (truncated ? ` Only the newest ${MAX_PAGES * 1000} are drawn.` : '') + ' Days without a successful backup have no bar or point.';
  }

  function chartCard(id, title, svgNode, legend) {
    return h('section', { class: 'card', id }, h('h2', {}, title), svgNode,
      legend ? h('div', { class: 'legend' }, legend.map(([cls, text]) => h('span', {}, h('span', { class: 'sw ' + cls }), text))) : null);
  }

  // chart draws bars (grouped when several series) or lines over the
  // buckets, with y ticks, x labels and both axes' titles.
  function chart({ labels, dateFmt, xTitle, yTitle, yFmt, yMax, kind, series, area }) {
    const W = 640, H = 230, L = 74, R = 12, T = 12, Bm = 40;
    const pw = W - L - R, ph = H - T - Bm;
    const vals = series.flatMap((s) => s.values.filter((v) => v !== null && isFinite(v)));
    let max = yMax || Math.max(0, ...vals);
    if (!yMax) max = niceMax(max);
    const y = (v) => T + ph - (max ? (v / max) * ph : 0);
    const cw = pw / labels.length;
    const x = (i) => L + i * cw + cw / 2;
    const nodes = [];
    // grid and y ticks
    for (let k = 0; k <= 4; k++) {
      const v = (max * k) / 4;
      nodes.push(svg('line', { class: k ? 'grid-line' : 'axis', x1: L, x2: W - R, y1: y(v), y2: y(v) }),
        svg('text', { x: L - 6, y: y(v) + 3, 'text-anchor': 'end' }, max ? yFmt(v) : k ? '' : yFmt(0)));
    }
    nodes.push(svg('line', { class: 'axis', x1: L, x2: L, y1: T, y2: T + ph }));
    // x labels: at most 8
    const every = Math.max(1, Math.ceil(labels.length / 8));
    labels.forEach((d, i) => {
      if (i % every === 0 || i === labels.length - 1 && labels.length <= 8) {
        nodes.push(svg('text', { x: x(i), y: T + ph + 14, 'text-anchor': 'middle' }, dateFmt(d)));
      }
    });
    nodes.push(svg('text', { class: 'axis-label', x: L + pw / 2, y: H - 4, 'text-anchor': 'middle' }, xTitle),
      svg('text', { class: 'axis-label', x: 12, y: T + ph / 2, 'text-anchor': 'middle', transform: `rotate(-90 12 ${T + ph / 2})` }, yTitle));
    if (kind === 'bar') {
      const gw = Math.max(1, cw * 0.8);
      const bw = gw / series.length;
      series.forEach((s, si) => s.values.forEach((v, i) => {
        if (v === null || !isFinite(v)) return;
        const x0 = L + i * cw + (cw - gw) / 2 + si * bw;
        const top = y(v);
        nodes.push(svg('rect', { class: 'barrect ' + (s.cls ? s.cls(v) : ''), x: x0, y: Math.min(top, T + ph - 1), width: Math.max(1, bw - (series.length > 1 ? 1 : 0.5)),
          height: Math.max(1, T + ph - top) }, svg('title', {}, s.tip(i, v))));
      }));
    } else {
      series.forEach((s) => {
        const pts = s.values.map((v, i) => (v === null || !isFinite(v) ? null : [x(i), y(v), i, v]));
        // a line through the points that have values (gaps are bridged)
        const have = pts.filter(Boolean);
        if (!have.length) return;
        if (area && have.length > 1) {
          nodes.push(svg('path', { class: 'area', d: `M${have[0][0]},${T + ph} ` + have.map((p) => `L${p[0].toFixed(1)},${p[1].toFixed(1)}`).join(' ') + ` L${have[have.length - 1][0]},${T + ph} Z` }));
        }
        nodes.push(svg('path', { class: 'line ' + (s.cls ? s.cls() : ''), d: have.map((p, k) => `${k ? 'L' : 'M'}${p[0].toFixed(1)},${p[1].toFixed(1)}`).join(' ') }));
        if (have.length <= 60) {
          for (const p of have) nodes.push(svg('circle', { class: 'dot ' + (s.cls ? s.cls() : ''), cx: p[0], cy: p[1], r: 3 }, svg('title', {}, s.tip(p[2], p[3]))));
        }
      });
    }
    if (!vals.length) nodes.push(svg('text', { class: 'axis-label', x: L + pw / 2, y: T + ph / 2, 'text-anchor': 'middle' }, 'no data in this period'));
    return svg('svg', { class: 'chart stats-chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': yTitle + ' by ' + xTitle }, nodes);
  }

  // a live backup completion changes the figures
  const refresh = debounce(load, 2000);
  const off = live.on('job_complete', (m) => { if (m.operation === 'backup') refresh(); });
  await load();
  return () => { off(); refresh.cancel(); };
}

// secs: a duration for an axis, with a decimal below ten seconds
function secs(v) {
  if (v === 0) return '0s';
  return v < 1 ? Number(v.toFixed(2)) + 's' : v < 10 ? Number(v.toFixed(1)) + 's' : fmtSeconds(v);
}

function trendWord(t) {
  return { increasing: '↗ increasing', decreasing: '↘ decreasing', stable: '→ stable', insufficient_data: 'trend: not enough data' }[t] || t;
}

// niceMax rounds a maximum up to 1, 2, 4, 5 or 8 times a power of ten (or of 1000
// for bytes, which fmtBytes prints in decimal units anyway).
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 4, 5, 8, 10]) if (v <= m * p) return m * p; // a quarter of each is a round tick
  return 10 * p;
}
