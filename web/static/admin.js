// ticketrush organiser dashboard: sign in with the admin token, create
// events, and watch each event's counts with a chart drawn here as inline
// SVG. The counts are polled once a second: one organiser polling is cheap,
// and each answer is a consistent snapshot of every count at once.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';

  const KEY_TOKEN = 'ticketrush.admin';
  const POLL_MS = 1000;
  const LIST_REFRESH_MS = 10000;
  const MAX_SHOWN = 12;
  // The chart keeps five minutes of samples.
  const HISTORY_MS = 5 * 60 * 1000;
  const MIN_WINDOW_MS = 1000;
  const FETCH_TIMEOUT_MS = 10000;

  const KINDS = [
    { k: 'available', label: 'Available' },
    { k: 'held', label: 'Held' },
    { k: 'purchased', label: 'Purchased' },
    { k: 'expired', label: 'Expired' },
    { k: 'cancelled', label: 'Cancelled' },
  ];

  const nf = new Intl.NumberFormat('en');
  const df = new Intl.DateTimeFormat('en', { dateStyle: 'medium', timeStyle: 'short' });

  const session = {
    get() { try { return sessionStorage.getItem(KEY_TOKEN); } catch { return session.mem || null; } },
    set(v) { try { sessionStorage.setItem(KEY_TOKEN, v); } catch { session.mem = v; } },
    del() { try { sessionStorage.removeItem(KEY_TOKEN); } catch { session.mem = null; } },
  };

  const state = {
    token: null,
    events: [],
    // Per event id: { samples: [{t, available, held, ...}], stats, stale }.
    series: new Map(),
    pollTimer: null,
    listTimer: null,
    generation: 0,
  };

  class ApiError extends Error {
    constructor(code, status, message, fields) {
      super(message);
      this.code = code;
      this.status = status;
      this.fields = fields || null;
    }
  }

  async function api(method, path, body) {
    const h = { Accept: 'application/json' };
    if (state.token) h.Authorization = 'Bearer ' + state.token;
    if (body !== undefined) h['Content-Type'] = 'application/json';
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), FETCH_TIMEOUT_MS);
    let res;
    try {
      res = await fetch(path, {
        method, headers: h, cache: 'no-store', signal: ctrl.signal,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError('network', 0, 'Could not reach the server.');
    } finally {
      clearTimeout(timer);
    }
    let doc = null;
    try { doc = await res.json(); } catch { /* judged by status */ }
    if (!res.ok) {
      const e = (doc && doc.error) || {};
      throw new ApiError(e.code || 'http_' + res.status, res.status, e.message || res.statusText, e.fields);
    }
    return doc ? doc.data : null;
  }

  function explain(err) {
    switch (err.code) {
      case 'unauthorized': return 'That admin token was refused. Check it and sign in again.';
      case 'admin_disabled': return ADMIN_DISABLED;
      case 'validation_failed': return 'Please correct the marked fields.';
      case 'network': return 'Could not reach the server. Retrying…';
      case 'unavailable':
      case 'overloaded': return 'The server is too busy or the database is unreachable — retry in a moment.';
      case 'rate_limited': return 'Too many requests — wait a moment and try again.';
      case 'invalid_json':
      case 'unsupported_media_type':
      case 'body_too_large': return 'The server did not understand the form. Reload the page and try again.';
      default: return err.message || 'Something went wrong. Please try again.';
    }
  }

  const ADMIN_DISABLED = 'Admin is switched off on this server: it was started without an admin token. ' +
    'Restart it with --admin-token (or the TICKETRUSH_ADMIN_TOKEN environment variable) to use the dashboard.';

  // adminDisabled shows that no token can work here, instead of a sign-in
  // form that would only ever say "refused".
  function adminDisabled() {
    state.generation++;
    clearTimeout(state.pollTimer);
    clearInterval(state.listTimer);
    state.token = null;
    session.del();
    $('dash').hidden = true;
    $('signout').hidden = true;
    $('login').hidden = false;
    $('token').disabled = true;
    $('login-btn').disabled = true;
    $('login').dataset.state = 'disabled';
    showError(ADMIN_DISABLED);
  }

  // probeAdmin asks an admin route without a token: a server with admin
  // switched off says so (403 admin_disabled) before it looks at a token.
  async function probeAdmin() {
    try {
      const res = await fetch('/api/admin/events/1/stats', { headers: { Accept: 'application/json' }, cache: 'no-store' });
      if (res.status !== 403) return true;
      const doc = await res.json();
      if (doc && doc.error && doc.error.code === 'admin_disabled') {
        adminDisabled();
        return false;
      }
    } catch { /* unreachable: the sign-in or the poll will say so */ }
    return true;
  }

  function showError(text) { $('notice').textContent = ''; $('error').textContent = text; }
  function showNotice(text) { $('error').textContent = ''; $('notice').textContent = text; }
  function clearMessages() { $('error').textContent = ''; $('notice').textContent = ''; }

  function setLive(st) {
    const el = $('live');
    el.dataset.state = st;
    el.textContent = st === 'open' ? 'Live' : st === 'offline' ? 'Reconnecting…' : 'Connecting…';
  }

  // ---- sign in --------------------------------------------------------------

  async function login(ev) {
    ev.preventDefault();
    const input = $('token');
    const token = input.value.trim();
    if (!token) {
      showError('Enter the admin token.');
      input.focus();
      return;
    }
    $('login-btn').disabled = true;
    state.token = token;
    try {
      // Only admin routes know the token. With an event to ask about, a
      // wrong token is caught here rather than at the first poll.
      const events = await api('GET', '/api/events');
      if (events && events.length > 0) await api('GET', `/api/admin/events/${events[0].id}/stats`);
      session.set(token);
      input.value = '';
      clearMessages();
      openDashboard(events || []);
      $('name').focus();
    } catch (err) {
      state.token = null;
      if (err.code === 'admin_disabled') { adminDisabled(); return; }
      showError(explain(err));
      input.focus();
    } finally {
      if ($('login').dataset.state !== 'disabled') $('login-btn').disabled = false;
    }
  }

  function signOut(message) {
    state.generation++;
    clearTimeout(state.pollTimer);
    clearInterval(state.listTimer);
    state.token = null;
    session.del();
    state.series.clear();
    $('dash-events').replaceChildren();
    $('dash').hidden = true;
    $('signout').hidden = true;
    $('login').hidden = false;
    if (message) showError(message); else clearMessages();
    $('token').focus();
  }

  function openDashboard(events) {
    $('login').hidden = true;
    $('dash').hidden = false;
    $('signout').hidden = false;
    setEvents(events);
    const gen = ++state.generation;
    poll(gen);
    clearInterval(state.listTimer);
    state.listTimer = setInterval(refreshList, LIST_REFRESH_MS);
  }

  // ---- events -------------------------------------------------------------

  async function refreshList() {
    try {
      setEvents(await api('GET', '/api/events') || []);
    } catch { /* the poll shows the outage */ }
  }

  function setEvents(list) {
    state.events = list.slice(0, MAX_SHOWN);
    $('events-empty').hidden = list.length > 0;
    const more = $('events-more');
    more.hidden = list.length <= MAX_SHOWN;
    more.textContent = `Showing the ${MAX_SHOWN} newest of ${nf.format(list.length)} events.`;
    const box = $('dash-events');
    const keep = new Set(state.events.map((e) => e.id));
    for (const id of state.series.keys()) if (!keep.has(id)) state.series.delete(id);
    const cards = state.events.map((e) => {
      let card = $('dash-event-' + e.id);
      if (!card) card = eventCard(e);
      card.querySelector('.dash-event-meta').textContent = eventMeta(e);
      if (!state.series.has(e.id)) state.series.set(e.id, { samples: [], stats: null, capacity: e.capacity });
      return card;
    });
    // Reordering only when needed keeps focus where the organiser left it.
    const same = cards.length === box.children.length && cards.every((c, i) => box.children[i] === c);
    if (!same) box.replaceChildren(...cards);
    for (const e of state.events) renderChart(e.id);
  }

  function eventMeta(e) {
    const parts = [`#${e.id}`, `${nf.format(e.capacity)} tickets`, `hold ${e.hold_seconds >= 60 && e.hold_seconds % 60 === 0 ? e.hold_seconds / 60 + ' min' : e.hold_seconds + ' s'}`];
    if (e.max_per_visitor > 0) parts.push(`max ${nf.format(e.max_per_visitor)} per visitor`);
    if (e.sale_starts_at) parts.push('sale opens ' + df.format(new Date(e.sale_starts_at)));
    return parts.join(' · ');
  }

  function el(tag, cls, text) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    return n;
  }

  function eventCard(e) {
    const card = el('article', 'card dash-event');
    card.id = 'dash-event-' + e.id;
    card.dataset.eventId = String(e.id);
    card.setAttribute('aria-labelledby', `dash-event-${e.id}-title`);
    const head = el('div', 'dash-event-head');
    const h = el('h3', '', e.name);
    h.id = `dash-event-${e.id}-title`;
    head.append(h, el('span', 'muted dash-event-meta'));
    const stats = el('dl', 'stats');
    for (const { k, label } of KINDS) {
      const box = el('div', 'stat stat-' + k);
      const dd = el('dd', '', '–');
      dd.dataset.k = k;
      box.append(el('dt', '', label), dd);
      stats.append(box);
    }
    const chart = document.createElementNS(SVG, 'svg');
    chart.setAttribute('class', 'chart');
    chart.setAttribute('viewBox', '0 0 640 190');
    chart.setAttribute('role', 'img');
    chart.setAttribute('aria-labelledby', `chart-${e.id}-title`);
    const legend = el('ul', 'legend');
    legend.setAttribute('aria-hidden', 'true');
    for (const { k, label } of KINDS) legend.append(el('li', 'k-' + k, label));
    card.append(head, stats, chart, legend);
    return card;
  }

  // ---- polling ------------------------------------------------------------

  // poll reads every shown event's counts, then waits for the rest of the
  // second: requests never pile up behind a slow server.
  async function poll(gen) {
    if (gen !== state.generation) return;
    const started = Date.now();
    let ok = 0;
    let failed = 0;
    await Promise.all(state.events.map(async (e) => {
      try {
        const st = await api('GET', `/api/admin/events/${e.id}/stats`);
        if (gen !== state.generation) return;
        record(e.id, st);
        ok++;
      } catch (err) {
        failed++;
        if (err.code === 'unauthorized' && gen === state.generation) {
          signOut('The admin token was refused. Sign in again.');
        } else if (err.code === 'admin_disabled' && gen === state.generation) {
          adminDisabled();
        }
      }
    }));
    if (gen !== state.generation) return;
    setLive(failed > 0 && ok === 0 ? 'offline' : 'open');
    state.pollTimer = setTimeout(() => poll(gen), Math.max(100, POLL_MS - (Date.now() - started)));
  }

  function record(id, st) {
    const s = state.series.get(id);
    if (!s) return;
    const now = Date.now();
    s.stats = st;
    s.capacity = st.capacity;
    s.samples.push({ t: now, ...st });
    while (s.samples.length > 0 && s.samples[0].t < now - HISTORY_MS) s.samples.shift();
    const card = $('dash-event-' + id);
    if (!card) return;
    for (const { k } of KINDS) {
      const dd = card.querySelector(`dd[data-k="${k}"]`);
      const text = nf.format(st[k]);
      if (dd.textContent !== text) dd.textContent = text;
      dd.dataset.value = String(st[k]);
    }
    renderChart(id);
  }

  // ---- chart --------------------------------------------------------------

  function svg(tag, attrs, text) {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
    if (text !== undefined) n.textContent = text;
    return n;
  }

  function ago(ms) {
    const s = Math.round(ms / 1000);
    return s < 120 ? `${s} s ago` : `${Math.round(s / 60)} min ago`;
  }

  // renderChart draws a stacked area of purchased, held and available
  // (together always the capacity) and dashed lines for the expired and
  // cancelled totals, over the last minutes.
  function renderChart(id) {
    const card = $('dash-event-' + id);
    const s = state.series.get(id);
    if (!card || !s) return;
    const root = card.querySelector('svg.chart');
    const W = 640, H = 190, L = 52, R = 10, T = 10, B = 26;
    const pw = W - L - R, ph = H - T - B;
    const samples = s.samples;
    const now = Date.now();
    const first = samples.length ? samples[0].t : now;
    // The window grows with the history, so a new chart fills its width.
    const span = Math.min(HISTORY_MS, Math.max(MIN_WINDOW_MS, now - first));
    const x0 = now - span;
    let ymax = Math.max(1, s.capacity || 0);
    for (const p of samples) ymax = Math.max(ymax, p.expired, p.cancelled);
    const x = (t) => L + ((t - x0) / span) * pw;
    const y = (v) => T + ph - (v / ymax) * ph;
    const f = (n) => n.toFixed(1);

    const nodes = [];
    const name = card.querySelector('h3').textContent;
    const last = samples[samples.length - 1];
    nodes.push(svg('title', { id: `chart-${id}-title` }, last
      ? `${name}: ticket counts over the last ${ago(span).replace(' ago', '')}. Now ${nf.format(last.available)} available, ${nf.format(last.held)} held, ${nf.format(last.purchased)} purchased, ${nf.format(last.expired)} expired, ${nf.format(last.cancelled)} cancelled.`
      : `${name}: waiting for the first counts.`));

    for (const frac of [0, 0.5, 1]) {
      const v = ymax * frac;
      nodes.push(svg('line', { class: 'grid-line', x1: L, x2: W - R, y1: f(y(v)), y2: f(y(v)) }));
      nodes.push(svg('text', { class: 'axis-label', x: L - 8, y: f(y(v) + 4), 'text-anchor': 'end' }, nf.format(Math.round(v))));
    }
    nodes.push(svg('text', { class: 'axis-label', x: L, y: H - 6 }, ago(span)));
    nodes.push(svg('text', { class: 'axis-label', x: W - R, y: H - 6, 'text-anchor': 'end' }, 'now'));

    if (samples.length === 0) {
      nodes.push(svg('text', { class: 'empty', x: L + pw / 2, y: T + ph / 2, 'text-anchor': 'middle' }, 'Collecting data…'));
      root.replaceChildren(...nodes);
      return;
    }

    // With one sample, or for the time since the last one, the latest
    // counts hold until now.
    const pts = samples.slice();
    pts.push({ ...last, t: now });

    const stacked = [
      { k: 'purchased', base: () => 0 },
      { k: 'held', base: (p) => p.purchased },
      { k: 'available', base: (p) => p.purchased + p.held },
    ];
    for (const layer of stacked) {
      const top = pts.map((p) => `${f(x(p.t))},${f(y(layer.base(p) + p[layer.k]))}`);
      const bottom = pts.slice().reverse().map((p) => `${f(x(p.t))},${f(y(layer.base(p)))}`);
      nodes.push(svg('path', { class: 'area-' + layer.k, d: 'M' + top.join('L') + 'L' + bottom.join('L') + 'Z' }));
    }
    for (const k of ['expired', 'cancelled']) {
      if (!pts.some((p) => p[k] > 0)) continue;
      nodes.push(svg('path', { class: 'line-' + k, d: 'M' + pts.map((p) => `${f(x(p.t))},${f(y(p[k]))}`).join('L') }));
    }
    root.replaceChildren(...nodes);
  }

  // ---- create -------------------------------------------------------------

  const FIELDS = ['name', 'ticket_quantity', 'max_per_visitor', 'hold_seconds', 'sale_starts_at'];

  function setFieldErrors(fields) {
    let firstBad = null;
    for (const f of FIELDS) {
      const msg = fields && fields[f] ? fields[f] : '';
      $(f + '-error').textContent = msg ? labelOf(f) + ' ' + msg + '.' : '';
      if (msg) {
        $(f).setAttribute('aria-invalid', 'true');
        firstBad = firstBad || $(f);
      } else {
        $(f).removeAttribute('aria-invalid');
      }
    }
    return firstBad;
  }

  function labelOf(f) {
    return { name: 'Name', ticket_quantity: 'Tickets', max_per_visitor: 'Per visitor', hold_seconds: 'Hold time', sale_starts_at: 'Sale start' }[f];
  }

  function intField(f, body, errors) {
    const v = $(f).value.trim();
    if (v === '') return;
    const n = Number(v);
    if (!Number.isInteger(n)) {
      errors[f] = 'must be a whole number';
      return;
    }
    body[f] = n;
  }

  async function create(ev) {
    ev.preventDefault();
    const body = { name: $('name').value.trim() };
    const errors = {};
    if (!body.name) errors.name = 'is required';
    intField('ticket_quantity', body, errors);
    if (body.ticket_quantity === undefined && !errors.ticket_quantity) errors.ticket_quantity = 'is required';
    intField('max_per_visitor', body, errors);
    intField('hold_seconds', body, errors);
    const start = $('sale_starts_at').value;
    if (start) {
      const t = new Date(start);
      if (Number.isNaN(t.getTime())) errors.sale_starts_at = 'must be a date and time';
      else body.sale_starts_at = t.toISOString();
    }
    const bad = setFieldErrors(errors);
    if (bad) {
      showError('Please correct the marked fields.');
      bad.focus();
      return;
    }
    $('create-btn').disabled = true;
    try {
      const e = await api('POST', '/api/admin/events', body);
      $('create').reset();
      setFieldErrors(null);
      showNotice(`Created “${e.name}” (#${e.id}) with ${nf.format(e.capacity)} tickets. It is on the buyer page now.`);
      await refreshList();
    } catch (err) {
      if (err.code === 'unauthorized') {
        signOut(explain(err));
        return;
      }
      const badField = setFieldErrors(err.fields);
      showError(explain(err));
      if (badField) badField.focus();
    } finally {
      $('create-btn').disabled = false;
    }
  }

  // ---- start --------------------------------------------------------------

  async function start() {
    $('login').addEventListener('submit', login);
    $('create').addEventListener('submit', create);
    $('signout').addEventListener('click', () => signOut());
    state.token = session.get();
    if (!(await probeAdmin())) return;
    if (!state.token) {
      $('login').hidden = false;
      return;
    }
    api('GET', '/api/events')
      .then((events) => openDashboard(events || []))
      .catch((err) => {
        // Keep the token through an outage; the poll retries.
        openDashboard([]);
        showError(explain(err));
        setTimeout(refreshList, 3000);
      });
  }

  start();
})();
