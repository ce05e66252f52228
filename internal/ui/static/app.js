// fronttier's dashboard. It reads and changes everything through the
// management API (/api/v1) with the user's bearer token, polling every 2 s
// while the tab is visible. Hand-written, no framework, no build step: this
// file is served as it is. Everything shown is escaped (domains are user
// data); tables are rendered as one string each, and one delegated
// listener serves every row's buttons.
'use strict';
(() => {
  const POLL_MS = 2000;
  const TOKEN_KEY = 'fronttier.token';
  const $ = (id) => document.getElementById(id);

  const S = {
    // The shell says whether the API asks for a token (data-auth).
    needToken: document.documentElement.dataset.auth !== 'none',
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    domains: [], backends: [], certs: [], rollouts: {},
    prev: null, // the stats the rates are taken against: {at, totals}
    figures: new Map(), // domain -> {rps, errPct, p99, p99Title}
    running: false, polling: false, again: false, timer: 0,
    marked: false, // the first full render is marked for the benchmark
    html: {}, // each table's last markup: unchanged tables are not touched
    action: null, // the action the dialog is confirming
  };

  const ESC = {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'};
  const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => ESC[c]);
  const fmt = (n, digits) => (n == null || !isFinite(n) ? '–' : n.toFixed(digits));
  const path = (domain) => '/domains/' + encodeURIComponent(domain);

  // APIError is an answer other than 2xx (status 0: no answer at all),
  // with the API's own error message.
  class APIError extends Error {
    constructor(status, msg) {
      super(msg);
      this.status = status;
    }
  }

  async function api(method, p, body) {
    const headers = {Accept: 'application/json'};
    if (S.token) headers.Authorization = 'Bearer ' + S.token;
    const init = {method, headers, cache: 'no-store'};
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch('/api/v1' + p, init);
    } catch (e) {
      throw new APIError(0, 'cannot reach the management API: ' + e.message);
    }
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (e) {
      data = null;
    }
    if (!res.ok) {
      throw new APIError(res.status, (data && data.error) || res.status + ' ' + res.statusText);
    }
    return data;
  }

  // ---- sign-in -----------------------------------------------------------

  function showSignIn(msg) {
    stop();
    $('main').hidden = true;
    $('signout').hidden = true;
    $('signin').hidden = false;
    $('status').textContent = 'signed out';
    const e = $('signin-error');
    e.textContent = msg || '';
    e.hidden = !msg;
    $('token').value = '';
    $('token').focus();
  }

  function signOut(msg) {
    S.token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    S.domains = [];
    S.backends = [];
    S.certs = [];
    S.html = {};
    S.prev = null;
    showSignIn(msg);
  }

  $('signin').addEventListener('submit', (e) => {
    e.preventDefault();
    S.token = $('token').value.trim();
    sessionStorage.setItem(TOKEN_KEY, S.token);
    $('signin').hidden = true;
    $('status').textContent = 'signing in…';
    start();
  });
  $('signout').addEventListener('click', () => signOut(''));

  // ---- polling -----------------------------------------------------------

  function start() {
    S.running = true;
    poll();
  }

  function stop() {
    S.running = false;
    clearTimeout(S.timer);
    S.timer = 0;
  }

  // schedule sets the next read, or, while the tab is hidden, says that
  // reading is paused (once no read is in flight: visibilitychange reads
  // again when the tab shows).
  function schedule() {
    if (!S.running || S.timer) return;
    if (document.hidden) {
      $('status').className = '';
      $('status').textContent = 'paused while the tab is hidden';
      return;
    }
    S.timer = setTimeout(poll, POLL_MS);
  }

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) {
      clearTimeout(S.timer);
      S.timer = 0;
      if (!S.polling) schedule();
    } else if (S.running) {
      poll();
    }
  });

  // poll reads the four endpoints at once and renders what came back. A
  // 401 brings the sign-in form back with the API's message; other
  // failures show in the status line and the next poll tries again.
  async function poll() {
    clearTimeout(S.timer);
    S.timer = 0;
    if (!S.running) return;
    if (S.polling) {
      S.again = true;
      return;
    }
    S.polling = true;
    try {
      const got = await Promise.allSettled(
        ['/domains', '/backends', '/certificates', '/stats'].map((p) => api('GET', p)));
      if (!S.running) return;
      const failed = got.filter((r) => r.status === 'rejected').map((r) => r.reason);
      const denied = failed.find((e) => e.status === 401);
      if (denied) {
        signOut(denied.message);
        return;
      }
      const [d, b, c, st] = got.map((r) => (r.status === 'fulfilled' ? r.value : null));
      if (d) S.domains = d;
      if (b) S.backends = b;
      if (c) S.certs = c;
      if (st) takeStats(st);
      $('main').hidden = false;
      $('signout').hidden = !S.token;
      render();
      const s = $('status');
      s.className = failed.length ? 'error' : '';
      s.textContent = failed.length ? failed[0].message : 'updated ' + new Date().toLocaleTimeString();
    } finally {
      S.polling = false;
      if (S.again) {
        S.again = false;
        poll();
      } else {
        schedule();
      }
    }
  }

  // takeStats turns GET /stats's cumulative counts into each domain's
  // request rate and error share since the previous answer (at least a
  // second before), and its worst tag's p99 since the proxy started.
  function takeStats(st) {
    const now = performance.now();
    const totals = new Map();
    for (const [domain, tags] of Object.entries(st.domains || {})) {
      let req = 0, err = 0, p99 = null;
      const parts = [];
      for (const [tag, t] of Object.entries(tags)) {
        req += t.requests;
        err += t.errors;
        if (t.requests > 0) {
          p99 = Math.max(p99 ?? 0, t.p99_ms);
          parts.push((tag || '(none)') + ': p99 ' + t.p99_ms + ' ms, ' + t.requests + ' requests, ' + t.errors + ' errors');
        }
      }
      totals.set(domain, {req, err, p99, p99Title: parts.join('\n')});
    }
    const prev = S.prev;
    const dt = prev ? (now - prev.at) / 1000 : 0;
    S.figures = new Map();
    for (const [domain, t] of totals) {
      const f = {rps: null, errPct: null, p99: t.p99, p99Title: t.p99Title};
      const p = prev && prev.totals.get(domain);
      if (p && dt > 0 && t.req >= p.req) {
        const n = t.req - p.req;
        f.rps = n / dt;
        f.errPct = n > 0 ? (100 * (t.err - p.err)) / n : null;
      }
      S.figures.set(domain, f);
    }
    if (!prev || dt >= 1) S.prev = {at: now, totals};
    S.rollouts = st.rollouts || {};
  }

  // ---- rendering ---------------------------------------------------------

  function setBody(id, html) {
    if (S.html[id] === html) return;
    S.html[id] = html;
    $(id).tBodies[0].innerHTML = html;
  }

  // tagHealth counts, per tag, the backends carrying it and the healthy ones.
  function tagHealth() {
    const m = new Map();
    for (const b of S.backends) {
      for (const t of b.tags) {
        const h = m.get(t) || {up: 0, total: 0};
        h.total++;
        if (b.healthy) h.up++;
        m.set(t, h);
      }
    }
    return new Map([...m].sort((x, y) => (x[0] < y[0] ? -1 : 1)));
  }

  function tagLabel(tag, tags) {
    const h = tags.get(tag) || {up: 0, total: 0};
    const cls = h.up === 0 ? 'bad' : h.up < h.total ? 'warn' : 'ok';
    return '<b class="t">' + esc(tag) + '</b> <small class="' + cls + '" title="healthy backends of ' +
      h.total + '">' + h.up + '/' + h.total + '</small>';
  }

  function rolloutCell(r) {
    if (!r) return '';
    const active = r.state === 'running' || r.state === 'paused';
    let html = '<span class="state ' + esc(r.state) + '" title="' + esc(r.reason) + '">' + esc(r.state.replace('_', ' ')) +
      '</span> <small>to ' + esc(r.to_tag) + '</small>';
    if (active) {
      html += '<br><progress max="100" value="' + esc(r.percent) + '"></progress> <small>step ' + (r.step + 1) +
        ' of ' + r.steps.length + ', ' + esc(r.percent) + '%</small>';
    }
    return html;
  }

  function certDays() {
    const m = new Map();
    for (const c of S.certs) {
      const d = c.days_until_expiration;
      if (d == null) continue;
      if (!m.has(c.domain) || d < m.get(c.domain)) m.set(c.domain, d);
    }
    return m;
  }

  const daysClass = (d) => (d == null ? '' : d < 7 ? 'bad' : d < 21 ? 'warn' : '');

  function renderDomains() {
    const tags = tagHealth();
    const days = certDays();
    const q = $('filter').value.trim().toLowerCase();
    const rows = [];
    for (const d of S.domains) {
      const canary = d.canary ? d.canary.tag : '';
      if (q && !(d.domain + ' ' + d.enabled_backends_tag + ' ' + canary).toLowerCase().includes(q)) continue;
      const f = S.figures.get(d.domain) || {};
      const others = [...tags.keys()].filter((t) => t !== d.enabled_backends_tag).map((t) => tagLabel(t, tags));
      const cd = days.get(d.domain);
      rows.push('<tr data-domain="' + esc(d.domain) + '">' +
        '<td class="c-domain">' + esc(d.domain) + '</td>' +
        '<td class="c-tag">' + tagLabel(d.enabled_backends_tag, tags) + '</td>' +
        '<td class="c-tags">' + others.join(' ') + '</td>' +
        '<td class="c-canary">' + (d.canary ? '<b class="t">' + esc(canary) + '</b> <span class="pct">' + esc(d.canary.percent) + '%</span>' : '') + '</td>' +
        '<td class="c-rollout">' + rolloutCell(S.rollouts[d.domain]) + '</td>' +
        '<td class="num c-rps">' + fmt(f.rps, f.rps >= 10 ? 0 : 1) + '</td>' +
        '<td class="num c-err' + (f.errPct > 1 ? ' bad' : '') + '">' + fmt(f.errPct, 2) + '</td>' +
        '<td class="num c-p99" title="' + esc(f.p99Title) + '">' + fmt(f.p99, 1) + '</td>' +
        '<td class="num c-days ' + daysClass(cd) + '">' + (cd ?? '') + '</td>' +
        '<td class="c-act"><button type="button" data-act="switch">Switch</button>' +
        '<button type="button" data-act="canary">Canary</button>' +
        '<button type="button" data-act="rollout">Rollout</button></td></tr>');
    }
    setBody('domains', rows.join(''));
    $('domain-count').textContent = q ? rows.length + ' of ' + S.domains.length : String(S.domains.length);
  }

  function renderBackends() {
    const rows = S.backends.map((b) => '<tr data-id="' + esc(b.id) + '">' +
      '<td class="c-id">' + esc(b.id) + '</td><td class="c-addr">' + esc(b.address) + '</td>' +
      '<td class="c-tags">' + b.tags.map((t) => '<b class="t">' + esc(t) + '</b>').join(' ') + '</td>' +
      '<td class="c-health ' + (b.health === 'healthy' ? 'ok' : b.health === 'unhealthy' ? 'bad' : 'warn') + '">' + esc(b.health) + '</td>' +
      '<td class="num">' + esc(b.active_requests) + '</td>' +
      '<td class="c-error">' + esc(b.last_error) + '</td></tr>');
    setBody('backends', rows.join(''));
    $('backend-count').textContent = String(S.backends.length);
  }

  function renderCerts() {
    const rows = S.certs.map((c) => '<tr><td class="c-domain">' + esc(c.domain) + '</td>' +
      '<td class="num c-days ' + daysClass(c.days_until_expiration) + '">' + esc(c.days_until_expiration) + '</td>' +
      '<td class="c-status">' + esc(c.status) + '</td><td>' + esc(c.source) + '</td>' +
      '<td class="c-error">' + esc(c.last_error) + '</td></tr>');
    setBody('certs', rows.join(''));
    $('cert-count').textContent = String(S.certs.length);
  }

  function render() {
    renderDomains();
    renderBackends();
    renderCerts();
    if (!S.marked && S.domains.length > 0) {
      S.marked = true;
      performance.mark('fronttier:domains-rendered', {detail: S.domains.length});
    }
  }

  $('filter').addEventListener('input', renderDomains);

  // ---- messages ----------------------------------------------------------

  function say(kind, text) {
    $('message').className = kind;
    $('message-text').textContent = text;
    $('message').hidden = false;
  }
  $('message-close').addEventListener('click', () => {
    $('message').hidden = true;
  });

  // ---- actions -----------------------------------------------------------

  const dialog = $('dialog');
  const form = $('action');

  const options = (list, selected) =>
    list.map((t) => '<option' + (t === selected ? ' selected' : '') + ' value="' + esc(t) + '">' + esc(t) + '</option>').join('');
  const field = (label, input) => '<label>' + label + ' ' + input + '</label>';
  const radio = (name, value, label, checked) =>
    '<label class="radio"><input type="radio" name="' + name + '" value="' + value + '"' + (checked ? ' checked' : '') + '> ' + label + '</label>';

  // Each action builds its form and turns the form's values into a summary
  // and the API request; request returns null while the form is incomplete.
  const ACTIONS = {
    switch: {
      title: (d) => 'Switch ' + d.domain,
      body(d, tags) {
        const other = tags.filter((t) => t !== d.enabled_backends_tag);
        return field('New tag', '<select name="tag" required>' + options(tags, other[0] || d.enabled_backends_tag) + '</select>') +
          '<label class="check"><input type="checkbox" name="force"> force, even when no backend of the tag is healthy</label>';
      },
      request(d, v) {
        return {
          summary: 'All traffic of ' + d.domain + ' goes from ' + d.enabled_backends_tag + ' to ' + v.get('tag') + '.',
          method: 'POST', path: path(d.domain) + '/switch',
          body: {new_tag: v.get('tag'), force: v.has('force')},
          done: d.domain + ' switched to ' + v.get('tag'),
        };
      },
    },
    canary: {
      title: (d) => 'Canary of ' + d.domain,
      body(d, tags) {
        const c = d.canary || {};
        const other = tags.filter((t) => t !== d.enabled_backends_tag);
        return (d.canary ? radio('op', 'set', 'set the share', true) + radio('op', 'clear', 'clear the canary', false) : '<input type="hidden" name="op" value="set">') +
          field('Tag', '<select name="tag" required>' + options(tags, c.tag || other[0]) + '</select>') +
          field('Percent', '<input name="percent" type="number" min="0" max="100" step="any" required value="' + esc(c.percent ?? 5) + '">');
      },
      request(d, v) {
        if (v.get('op') === 'clear') {
          return {summary: 'All traffic of ' + d.domain + ' goes back to ' + d.enabled_backends_tag + '.',
            method: 'DELETE', path: path(d.domain) + '/canary', done: 'canary of ' + d.domain + ' cleared'};
        }
        const pct = Number(v.get('percent'));
        if (v.get('percent') === '' || !(pct >= 0 && pct <= 100)) return null;
        return {
          summary: pct + '% of ' + d.domain + "'s traffic goes to " + v.get('tag') + ', the rest to ' + d.enabled_backends_tag + '.',
          method: 'PUT', path: path(d.domain) + '/canary', body: {tag: v.get('tag'), percent: pct},
          done: 'canary of ' + d.domain + ': ' + pct + '% to ' + v.get('tag'),
        };
      },
    },
    rollout: {
      title: (d) => 'Rollout of ' + d.domain,
      body(d, tags) {
        const r = S.rollouts[d.domain];
        if (r && (r.state === 'running' || r.state === 'paused')) {
          return '<p>' + rolloutCell(r) + '</p>' +
            (r.state === 'running' ? radio('op', 'pause', 'pause at this step', true) : radio('op', 'resume', 'resume', true)) +
            radio('op', 'promote', 'promote: all traffic to ' + esc(r.to_tag) + ' now', false) +
            radio('op', 'abort', 'abort: all traffic back to ' + esc(r.from_tag), false);
        }
        const other = tags.filter((t) => t !== d.enabled_backends_tag);
        return '<input type="hidden" name="op" value="start">' +
          field('To tag', '<select name="to_tag" required>' + options(other, other[0]) + '</select>') +
          field('Steps, %', '<input name="steps" required value="5, 25, 50, 100" pattern="\\s*\\d+(\\.\\d+)?(\\s*,\\s*\\d+(\\.\\d+)?)*\\s*">') +
          field('Seconds per step', '<input name="step_secs" type="number" min="1" step="1" required value="300">') +
          field('Max error rate (0 to 1)', '<input name="max_error_rate" type="number" min="0" max="1" step="any" required value="0.01">') +
          field('Min requests per gate', '<input name="min_requests" type="number" min="0" step="1" value="100">') +
          field('Max p99 ms (0: none)', '<input name="max_p99_ms" type="number" min="0" step="any" value="0">');
      },
      request(d, v) {
        const op = v.get('op');
        const p = path(d.domain) + '/rollout';
        if (op !== 'start') {
          const what = {pause: 'The rollout holds at its step.', resume: 'The rollout goes on from its step.',
            promote: 'All traffic goes to the new tag now; the rollout completes.',
            abort: 'All traffic goes back to the old tag; the rollout ends.'}[op];
          const done = {pause: 'paused', resume: 'resumed', promote: 'promoted', abort: 'aborted'}[op];
          return {summary: what, method: 'POST', path: p + '/' + op, done: 'rollout of ' + d.domain + ' ' + done};
        }
        const steps = String(v.get('steps')).split(',').map((s) => Number(s.trim()));
        if (!v.get('to_tag') || steps.some((n) => !isFinite(n))) return null;
        const body = {to_tag: v.get('to_tag'), steps, step_secs: Number(v.get('step_secs')),
          max_error_rate: Number(v.get('max_error_rate')), min_requests: Number(v.get('min_requests') || 0),
          max_p99_ms: Number(v.get('max_p99_ms') || 0)};
        return {
          summary: d.domain + ' moves from ' + d.enabled_backends_tag + ' to ' + body.to_tag + ' in ' + steps.length +
            ' steps (' + steps.join(', ') + '%) of ' + body.step_secs + ' s, rolled back when the error rate passes ' +
            body.max_error_rate + '.',
          method: 'POST', path: p, body, done: 'rollout of ' + d.domain + ' to ' + body.to_tag + ' started',
        };
      },
    },
  };

  function current() {
    const a = S.action;
    return a && ACTIONS[a.act].request(a.domain, new FormData(form));
  }

  function summarize() {
    const r = current();
    $('dialog-summary').textContent = r ? r.summary : '';
  }

  function openDialog(act, d) {
    S.action = {act, domain: d};
    $('dialog-title').textContent = ACTIONS[act].title(d);
    $('dialog-body').innerHTML = ACTIONS[act].body(d, [...tagHealth().keys()]);
    summarize();
    dialog.showModal();
  }

  $('domains').addEventListener('click', (e) => {
    const btn = e.target.closest('button[data-act]');
    if (!btn) return;
    const name = btn.closest('tr').dataset.domain;
    const d = S.domains.find((x) => x.domain === name);
    if (d) openDialog(btn.dataset.act, d);
  });
  form.addEventListener('input', summarize);
  form.addEventListener('change', summarize);
  $('dialog-cancel').addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => {
    S.action = null;
  });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const r = current();
    if (!r) return;
    dialog.close();
    $('message').hidden = true;
    try {
      await api(r.method, r.path, r.body);
      say('ok', r.done);
    } catch (err) {
      if (err.status === 401) {
        signOut(err.message);
        return;
      }
      say('error', err.message);
    }
    poll();
  });

  // ---- start -------------------------------------------------------------

  if (S.needToken && !S.token) showSignIn('');
  else start();
})();
