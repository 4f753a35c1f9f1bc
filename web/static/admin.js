// ticketrush organiser dashboard: sign in with the admin token, create
// events, watch each event's counts with charts drawn here as inline SVG,
// close, reopen, hide and show events, and run their waiting rooms (rate,
// pause, resume) live. The counts are polled once a second: one organiser polling is cheap,
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
  // The stock (always adding up to the capacity) and the released holds
  // (running totals that can grow past it) are drawn on charts of their own.
  const STOCK = KINDS.slice(0, 3);
  const RELEASED = KINDS.slice(3);
  // The waiting room's counts, from the stats' queue object.
  const QUEUE_KINDS = [
    { k: 'in_queue', label: 'In queue' },
    { k: 'admitted', label: 'Admitted' },
    { k: 'active', label: 'Active' },
    { k: 'admitted_per_minute', label: 'Admitted / min' },
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
    // Events with a settings change in flight.
    busy: new Set(),
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
    // A PATCH is a JSON merge patch (RFC 7396) of the event.
    if (body !== undefined) h['Content-Type'] = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
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
      case 'event_not_found': return 'That event no longer exists.';
      case 'event_has_reservations': return 'This event has reservations, so it cannot be deleted. Close the sale and hide it instead.';
      case 'cross_site_request': return 'The server refused a request from another site. Open the dashboard from the server itself.';
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
      // The admin listing checks the token, and has the hidden events too.
      const events = await listEvents();
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

  // listEvents reads every event, hidden ones too, newest first.
  async function listEvents() {
    return await api('GET', '/api/admin/events') || [];
  }

  async function refreshList() {
    try {
      setEvents(await listEvents());
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
      updateCard(card, e);
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
    if (e.max_per_order > 0) parts.push(`max ${nf.format(e.max_per_order)} per order`);
    if (e.sale_starts_at) parts.push('sale opens ' + df.format(new Date(e.sale_starts_at)));
    return parts.join(' · ');
  }

  function el(tag, cls, text) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    return n;
  }

  function button(cls, action, text) {
    const b = el('button', 'btn ' + cls, text);
    b.type = 'button';
    b.dataset.action = action;
    return b;
  }

  function eventCard(e) {
    const card = el('article', 'card dash-event');
    card.id = 'dash-event-' + e.id;
    card.dataset.eventId = String(e.id);
    card.setAttribute('aria-labelledby', `dash-event-${e.id}-title`);
    const head = el('div', 'dash-event-head');
    const titleRow = el('div', 'dash-event-title');
    const h = el('h3', '', e.name);
    h.id = `dash-event-${e.id}-title`;
    titleRow.append(h, el('span', 'dash-badges'));
    head.append(titleRow, el('span', 'muted dash-event-meta'));

    const actions = el('div', 'dash-actions');
    actions.setAttribute('role', 'group');
    actions.setAttribute('aria-label', 'Sale settings of ' + e.name);
    actions.append(button('btn-secondary btn-small', 'close', 'Close sale'), button('btn-secondary btn-small', 'hide', 'Hide from buyers'));

    const stats = el('dl', 'stats');
    for (const { k, label } of KINDS) {
      const box = el('div', 'stat stat-' + k);
      const dd = el('dd', '', '–');
      dd.dataset.k = k;
      box.append(el('dt', '', label), dd);
      stats.append(box);
    }

    const queue = el('section', 'dash-queue');
    queue.setAttribute('aria-labelledby', `dash-queue-${e.id}-title`);
    const qh = el('div', 'dash-queue-head');
    const qt = el('h4', '', 'Waiting room');
    qt.id = `dash-queue-${e.id}-title`;
    qh.append(qt, el('span', 'badge dash-queue-state'));
    const qstats = el('dl', 'stats stats-queue');
    for (const { k, label } of QUEUE_KINDS) {
      const box = el('div', 'stat stat-queue');
      const dd = el('dd', '', '–');
      dd.dataset.q = k;
      box.append(el('dt', '', label), dd);
      qstats.append(box);
    }
    const rate = el('form', 'dash-rate');
    rate.noValidate = true;
    const field = el('div', 'field');
    const input = el('input');
    input.id = `rate-${e.id}`;
    input.name = 'admit_per_minute';
    input.type = 'number';
    input.min = '1';
    input.max = '1000000';
    input.step = '1';
    input.inputMode = 'numeric';
    input.setAttribute('aria-describedby', `rate-${e.id}-error`);
    const label = el('label', '', 'Admit per minute');
    label.htmlFor = input.id;
    const err = el('p', 'field-error');
    err.id = `rate-${e.id}-error`;
    field.append(label, input, err);
    const set = el('button', 'btn btn-secondary', 'Set rate');
    set.type = 'submit';
    set.dataset.action = 'rate';
    rate.append(field, set, button('btn-primary', 'pause', 'Pause admission'));
    rate.addEventListener('submit', (ev) => {
      ev.preventDefault();
      setRate(e.id);
    });
    queue.append(qh, qstats, rate, el('p', 'hint dash-queue-note'));

    const chart = document.createElementNS(SVG, 'svg');
    chart.setAttribute('class', 'chart chart-stock');
    chart.setAttribute('viewBox', '0 0 640 190');
    chart.setAttribute('role', 'img');
    chart.setAttribute('aria-labelledby', `chart-${e.id}-title`);
    const legend = el('ul', 'legend');
    legend.setAttribute('aria-hidden', 'true');
    for (const { k, label: l } of STOCK) legend.append(el('li', 'k-' + k, l));

    const released = document.createElementNS(SVG, 'svg');
    released.setAttribute('class', 'chart chart-released');
    released.setAttribute('viewBox', '0 0 640 110');
    released.setAttribute('role', 'img');
    released.setAttribute('aria-labelledby', `released-${e.id}-title`);
    const rlegend = el('ul', 'legend');
    rlegend.setAttribute('aria-hidden', 'true');
    rlegend.append(el('li', 'k-label', 'Released holds, running total:'));
    for (const { k, label: l } of RELEASED) rlegend.append(el('li', 'k-' + k, l));

    card.append(head, actions, stats, queue, chart, legend, released, rlegend);
    card.addEventListener('click', (ev) => {
      const b = ev.target.closest('button[data-action]');
      if (!b || b.type === 'submit') return;
      act(e.id, b.dataset.action);
    });
    return card;
  }

  // updateCard shows an event's settings: name, flags, buttons, and the
  // waiting room's part when it has one.
  function updateCard(card, e) {
    const h = card.querySelector('h3');
    if (h.textContent !== e.name) h.textContent = e.name;
    card.querySelector('.dash-event-meta').textContent = eventMeta(e);
    card.dataset.hidden = String(!!e.hidden);
    card.dataset.closed = String(!!e.sale_closed);
    const badges = [];
    if (e.sale_closed) badges.push(el('span', 'badge badge-soldout', 'Sale closed'));
    if (e.hidden) badges.push(el('span', 'badge', 'Hidden'));
    if (e.waiting_room) badges.push(el('span', 'badge badge-queue', 'Waiting room'));
    card.querySelector('.dash-badges').replaceChildren(...badges);
    const busy = state.busy.has(e.id);
    const close = card.querySelector('button[data-action="close"]');
    close.textContent = e.sale_closed ? 'Reopen sale' : 'Close sale';
    close.setAttribute('aria-pressed', String(!!e.sale_closed));
    close.disabled = busy;
    const hide = card.querySelector('button[data-action="hide"]');
    hide.textContent = e.hidden ? 'Show to buyers' : 'Hide from buyers';
    hide.setAttribute('aria-pressed', String(!!e.hidden));
    hide.disabled = busy;

    const queue = card.querySelector('.dash-queue');
    const w = e.waiting_room;
    queue.hidden = !w;
    if (!w) return;
    const st = card.querySelector('.dash-queue-state');
    st.textContent = w.paused ? 'Paused' : 'Admitting';
    st.className = 'badge dash-queue-state ' + (w.paused ? 'badge-soldout' : 'badge-ok');
    st.dataset.paused = String(!!w.paused);
    const pause = card.querySelector('button[data-action="pause"]');
    pause.textContent = w.paused ? 'Resume admission' : 'Pause admission';
    pause.setAttribute('aria-pressed', String(!!w.paused));
    pause.disabled = busy;
    card.querySelector('button[data-action="rate"]').disabled = busy;
    const input = card.querySelector('input[name="admit_per_minute"]');
    // The organiser's unsent edit wins over a refresh.
    if (document.activeElement !== input && input.dataset.dirty !== 'true') input.value = String(w.admit_per_minute);
    input.oninput = () => { input.dataset.dirty = 'true'; };
    const note = [`Admits up to ${nf.format(w.admit_per_minute)} a minute`];
    if (w.max_active > 0) note.push(`at most ${nf.format(w.max_active)} active at once`);
    note.push(`a turn lasts ${w.pass_seconds >= 60 && w.pass_seconds % 60 === 0 ? w.pass_seconds / 60 + ' min' : w.pass_seconds + ' s'}`);
    if (w.challenge_bits > 0) note.push(`joining costs a ${w.challenge_bits}-bit proof of work`);
    if (w.prequeue_opens_at) note.push('pre-queue opens ' + df.format(new Date(w.prequeue_opens_at)));
    card.querySelector('.dash-queue-note').textContent = note.join(' · ') + '.';
  }

  // ---- settings -----------------------------------------------------------

  // patch sends a merge patch of event id and shows the event it returns.
  async function patch(id, body, done) {
    if (state.busy.has(id)) return false;
    state.busy.add(id);
    rerender(id);
    try {
      const e = await api('PATCH', `/api/admin/events/${id}`, body);
      const i = state.events.findIndex((x) => x.id === id);
      if (i >= 0) state.events[i] = e;
      showNotice(done(e));
      return true;
    } catch (err) {
      if (err.code === 'unauthorized') {
        signOut(explain(err));
        return false;
      }
      if (err.code === 'admin_disabled') {
        adminDisabled();
        return false;
      }
      const f = err.fields && (err.fields['waiting_room.admit_per_minute'] || err.fields.admit_per_minute);
      const errEl = $(`rate-${id}-error`);
      if (f && errEl) {
        errEl.textContent = 'Admit per minute ' + f + '.';
        $(`rate-${id}`).setAttribute('aria-invalid', 'true');
      }
      showError(explain(err));
      if (err.code === 'event_not_found') refreshList();
      return false;
    } finally {
      state.busy.delete(id);
      rerender(id);
    }
  }

  function rerender(id) {
    const e = state.events.find((x) => x.id === id);
    const card = $('dash-event-' + id);
    if (e && card) updateCard(card, e);
  }

  function act(id, action) {
    const e = state.events.find((x) => x.id === id);
    if (!e) return;
    switch (action) {
      case 'close':
        patch(id, { sale_closed: !e.sale_closed }, (n) => n.sale_closed
          ? `The sale of “${n.name}” is closed: reserves are refused; holds can still be bought.`
          : `The sale of “${n.name}” is open again.`);
        break;
      case 'hide':
        patch(id, { hidden: !e.hidden }, (n) => n.hidden
          ? `“${n.name}” is hidden from the buyer page. It stays here, and its sale goes on for links already shared.`
          : `“${n.name}” is on the buyer page again.`);
        break;
      case 'pause':
        if (!e.waiting_room) return;
        patch(id, { waiting_room: { paused: !e.waiting_room.paused } }, (n) => n.waiting_room && n.waiting_room.paused
          ? `Admission to “${n.name}” is paused: visitors keep their places.`
          : `Admission to “${n.name}” goes on.`);
        break;
    }
  }

  async function setRate(id) {
    const input = $(`rate-${id}`);
    const errEl = $(`rate-${id}-error`);
    const n = Number(input.value.trim());
    if (!Number.isInteger(n) || n < 1 || n > 1000000) {
      errEl.textContent = 'Admit per minute must be a whole number from 1 to 1,000,000.';
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    errEl.textContent = '';
    input.removeAttribute('aria-invalid');
    const ok = await patch(id, { waiting_room: { admit_per_minute: n } },
      (ev) => `“${ev.name}” now admits up to ${nf.format(ev.waiting_room.admit_per_minute)} visitors a minute.`);
    if (ok) {
      input.dataset.dirty = 'false';
      rerender(id);
    }
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
    const q = queueCounts(st.queue);
    for (const { k } of QUEUE_KINDS) {
      const dd = card.querySelector(`dd[data-q="${k}"]`);
      const v = q ? q[k] : null;
      const text = v === null || v === undefined ? '–' : nf.format(v);
      if (dd.textContent !== text) dd.textContent = text;
      dd.dataset.value = v === null || v === undefined ? '' : String(v);
    }
    renderChart(id);
  }

  // queueCounts reads the stats' queue object (null for an event without a
  // waiting room) as the four numbers the dashboard shows.
  function queueCounts(q) {
    if (!q) return null;
    return {
      in_queue: (q.prequeue || 0) + (q.waiting || 0),
      admitted: q.admitted,
      active: q.active,
      admitted_per_minute: q.admitted_last_minute,
    };
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

  // axes draws the grid lines, value labels and time labels of a chart.
  function axes(nodes, g, ymax, span) {
    const f = (n) => n.toFixed(1);
    for (const frac of [0, 0.5, 1]) {
      const v = ymax * frac;
      nodes.push(svg('line', { class: 'grid-line', x1: g.L, x2: g.W - g.R, y1: f(g.y(v)), y2: f(g.y(v)) }));
      // Counts are whole: a half-way line between 0 and 5 gets no label
      // rather than a rounded one.
      if (Number.isInteger(v)) {
        nodes.push(svg('text', { class: 'axis-label', x: g.L - 8, y: f(g.y(v) + 4), 'text-anchor': 'end' }, nf.format(v)));
      }
    }
    nodes.push(svg('text', { class: 'axis-label', x: g.L, y: g.H - 6 }, ago(span)));
    nodes.push(svg('text', { class: 'axis-label', x: g.W - g.R, y: g.H - 6, 'text-anchor': 'end' }, 'now'));
  }

  function geometry(W, H, ymax, x0, span) {
    const L = 52, R = 10, T = 10, B = 26;
    const pw = W - L - R, ph = H - T - B;
    return {
      W, H, L, R, T, B, pw, ph,
      x: (t) => L + ((t - x0) / span) * pw,
      y: (v) => T + ph - (Math.min(v, ymax) / ymax) * ph,
    };
  }

  // renderChart draws, over the last minutes, a stacked area of purchased,
  // held and available (together always the capacity, so the axis ends at
  // the capacity), and below it a chart of its own for the running totals
  // of expired and cancelled holds, which can grow past the capacity.
  function renderChart(id) {
    const card = $('dash-event-' + id);
    const s = state.series.get(id);
    if (!card || !s) return;
    const samples = s.samples;
    const now = Date.now();
    const first = samples.length ? samples[0].t : now;
    // The window grows with the history, so a new chart fills its width.
    const span = Math.min(HISTORY_MS, Math.max(MIN_WINDOW_MS, now - first));
    const x0 = now - span;
    const f = (n) => n.toFixed(1);
    const name = card.querySelector('h3').textContent;
    const last = samples[samples.length - 1];
    const win = ago(span).replace(' ago', '');

    // Stock.
    const root = card.querySelector('svg.chart-stock');
    const ymax = Math.max(1, s.capacity || 0);
    const g = geometry(640, 190, ymax, x0, span);
    const nodes = [];
    nodes.push(svg('title', { id: `chart-${id}-title` }, last
      ? `${name}: tickets over the last ${win}. Now ${nf.format(last.available)} available, ${nf.format(last.held)} held, ${nf.format(last.purchased)} purchased, of ${nf.format(last.capacity)}.`
      : `${name}: waiting for the first counts.`));
    axes(nodes, g, ymax, span);

    // Released holds.
    const rroot = card.querySelector('svg.chart-released');
    let rmax = 1;
    for (const p of samples) rmax = Math.max(rmax, p.expired, p.cancelled);
    // A round top keeps the labels readable as the totals grow.
    rmax = niceCeil(rmax);
    const rg = geometry(640, 110, rmax, x0, span);
    const rnodes = [];
    rnodes.push(svg('title', { id: `released-${id}-title` }, last
      ? `${name}: holds released over the last ${win}, as running totals. Now ${nf.format(last.expired)} tickets expired and ${nf.format(last.cancelled)} cancelled since the event began.`
      : `${name}: waiting for the first counts.`));
    axes(rnodes, rg, rmax, span);

    if (samples.length === 0) {
      nodes.push(svg('text', { class: 'empty', x: g.L + g.pw / 2, y: g.T + g.ph / 2, 'text-anchor': 'middle' }, 'Collecting data…'));
      root.replaceChildren(...nodes);
      rroot.replaceChildren(...rnodes);
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
      const top = pts.map((p) => `${f(g.x(p.t))},${f(g.y(layer.base(p) + p[layer.k]))}`);
      const bottom = pts.slice().reverse().map((p) => `${f(g.x(p.t))},${f(g.y(layer.base(p)))}`);
      nodes.push(svg('path', { class: 'area-' + layer.k, d: 'M' + top.join('L') + 'L' + bottom.join('L') + 'Z' }));
    }
    root.replaceChildren(...nodes);

    for (const k of ['expired', 'cancelled']) {
      rnodes.push(svg('path', { class: 'line-' + k, d: 'M' + pts.map((p) => `${f(rg.x(p.t))},${f(rg.y(p[k]))}`).join('L') }));
    }
    rroot.replaceChildren(...rnodes);
  }

  // niceCeil rounds up to 1, 2 or 5 times a power of ten.
  function niceCeil(v) {
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // ---- create -------------------------------------------------------------

  const FIELDS = ['name', 'ticket_quantity', 'max_per_visitor', 'hold_seconds', 'sale_starts_at', 'wr_admit_per_minute', 'wr_challenge_bits'];

  // The API names a waiting-room field waiting_room.x; the form's input is
  // wr_x.
  function apiField(f) {
    return f.startsWith('wr_') ? 'waiting_room.' + f.slice(3) : f;
  }

  function setFieldErrors(fields) {
    let firstBad = null;
    for (const f of FIELDS) {
      const msg = fields && fields[apiField(f)] ? fields[apiField(f)] : '';
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
    return { name: 'Name', ticket_quantity: 'Tickets', max_per_visitor: 'Per visitor', hold_seconds: 'Hold time', sale_starts_at: 'Sale start', wr_admit_per_minute: 'Admit per minute', wr_challenge_bits: 'Bot check' }[f];
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
    if ($('wr_on').checked) {
      const w = {};
      intField('wr_admit_per_minute', w, errors);
      intField('wr_challenge_bits', w, errors);
      if (w.wr_admit_per_minute === undefined && !errors.wr_admit_per_minute) errors.wr_admit_per_minute = 'is required';
      body.waiting_room = { admit_per_minute: w.wr_admit_per_minute, challenge_bits: w.wr_challenge_bits || 0 };
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
      $('wr-fields').hidden = true;
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
    $('wr_on').addEventListener('change', () => { $('wr-fields').hidden = !$('wr_on').checked; });
    $('signout').addEventListener('click', () => signOut());
    state.token = session.get();
    if (!(await probeAdmin())) return;
    if (!state.token) {
      $('login').hidden = false;
      return;
    }
    listEvents()
      .then((events) => openDashboard(events))
      .catch((err) => {
        // Keep the token through an outage; the poll retries.
        openDashboard([]);
        showError(explain(err));
        setTimeout(refreshList, 3000);
      });
  }

  start();
})();
