// followJob shows one job's live progress: its bar moves with the
// WebSocket's progress messages and it ends on the job's job_complete.
// The progress endpoint is asked once at the start (the job may have
// ended before the socket saw it) and again every few seconds while the
// socket is down, so a dropped connection never leaves the page waiting.
import { get, live, h, clear, bar, setBar, badge, temporalLink, errorBox } from './core.js';

export function followJob(jobId, kind, onDone) {
  const progressPath = (kind === 'restore' ? '/backup/restore/progress' : '/backup/progress') + '?job_id=' + encodeURIComponent(jobId);
  const b = bar(0, { label: 'queued' });
  const state = h('span', { class: 'job-state' }, badge('queued', 'run'));
  const figures = h('div', { class: 'meta live-figures' });
  const result = h('div', { class: 'job-result' });
  const link = h('span', {});
  const el = h('div', { class: 'job', id: 'job-' + jobId, dataset: { jobId } }, h('strong', {}, jobId), ' ', state, ' ', link, b, figures, result);
  let done = false;

  function show(pct, label, figs) {
    setBar(b, pct, label);
    figures.textContent = figs.filter(Boolean).join(' · ');
  }
  const onProgress = (m) => {
    if (m.job_id !== jobId || done) return;
    const d = m.details || {};
    state.replaceChildren(badge(m.status || 'running', 'run'));
    const amount = kind === 'restore' ? `${d.files_restored} of ${d.files_total} files` : `${d.bytes_processed} of ${d.bytes_total}`;
    show(m.progress, `${m.progress.toFixed(1)}%`, [m.current_component, m.current_operation, amount, d.speed, m.eta ? 'ETA ' + m.eta : '', m.waiting ? 'waiting: ' + m.waiting : '']);
  };
  const onComplete = (m) => {
    if (m.job_id !== jobId || done) return;
    finish(m.status, m.message, m.details || {}, m.error);
  };
  function finish(status, message, details, error) {
    done = true;
    stop();
    const ok = status === 'success' || status === 'completed';
    setBar(b, ok || status === 'partial' ? 100 : Number(b.getAttribute('aria-valuenow')), ok ? '100% · done' : status);
    b.classList.add(ok ? 'ok' : status === 'partial' ? 'warn' : 'bad');
    state.replaceChildren(badge(status));
    clear(result, h('p', { class: ok ? 'notice' : '' }, message || status, details.duration ? ` (${details.duration})` : '',
      details.size ? ` · ${details.size} of content, ${details.added_size || details.compressed_size} added` : ''),
    error ? errorBox({ code: error.code, message: error.message, actions: error.suggested_actions }) : null);
    el.dataset.outcome = status;
    if (onDone) onDone(status, details);
  }
  async function poll() {
    if (done) return;
    try {
      const p = await get(progressPath);
      if (p.temporal_ui_url && !link.firstChild) link.append(temporalLink(p.temporal_ui_url));
      const out = p.outcome || p.status;
      if (['completed', 'partial', 'failed', 'cancelled'].includes(out)) {
        const e = p.error ? { code: p.error.code, message: p.error.message, suggested_actions: p.error.suggested_actions } : null;
        finish(out === 'completed' ? 'success' : out, `The ${kind} ended: ${out}`, {}, e);
        return;
      }
      const f = p.progress;
      show(f.percentage, `${f.percentage.toFixed(1)}%`, [f.current_component, f.current_operation, f.processed && f.estimated_total ? `${f.processed} of ${f.estimated_total}` : '', f.speed, f.eta ? 'ETA ' + f.eta : '', p.waiting ? 'waiting: ' + p.waiting : '']);
    } catch (e) { /* the next poll, or the socket, tells */ }
  }
  const offs = [live.on(kind + '_progress', onProgress), live.on('job_complete', onComplete), live.on('live_connected', poll)];
  const timer = setInterval(() => { if (!live.connected) poll(); }, 4000);
  function stop() { offs.forEach((f) => f()); clearInterval(timer); }
  poll();
  return { el, stop };
}
