// ticketrush buyer page: list events with live availability, reserve,
// show the hold with a countdown, buy or cancel. Events with a waiting room
// first queue the visitor (solving the room's proof-of-work challenge in
// Web Workers), show the place and wait, and reserve by themselves when the
// visitor's turn comes. Plain JavaScript against the JSON API; no
// framework, no build step.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  const KEY_VISITOR = 'ticketrush.visitor';
  const KEY_HOLD = 'ticketrush.reservation';
  // The events whose queue this browser joined, with the amount wanted and
  // the admission already used, so a reload picks the wait up again.
  const KEY_QUEUES = 'ticketrush.queues';
  // How often the whole event list is read again, for events added since and
  // for the numbers of the events not being watched live.
  const LIST_REFRESH_MS = 30000;
  // How often screen readers hear the live number at most; visible numbers
  // change at once. Sold out and back on sale are said at once.
  const ANNOUNCE_EVERY_MS = 15000;
  const FETCH_TIMEOUT_MS = 15000;

  const nf = new Intl.NumberFormat('en');
  const df = new Intl.DateTimeFormat('en', { dateStyle: 'medium', timeStyle: 'short' });
  // "Tue 1 Dec, 10:00": what a sale time reads as when it is days away.
  const dayFmt = new Intl.DateTimeFormat('en-GB', { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  const dayYearFmt = new Intl.DateTimeFormat('en-GB', { weekday: 'short', day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  const timeFmt = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  const DAY_MS = 24 * 3600 * 1000;

  // Storage that still works, for this page's life, where the browser
  // refuses localStorage (private modes, disabled storage).
  const memory = new Map();
  const storage = {
    get(k) { try { return localStorage.getItem(k); } catch { return memory.get(k) ?? null; } },
    set(k, v) { try { localStorage.setItem(k, v); } catch { memory.set(k, v); } },
    del(k) { try { localStorage.removeItem(k); } catch { memory.delete(k); } },
  };

  const state = {
    events: [],
    byId: new Map(),
    selected: null,
    // The visitor's current reservation (reserved or just purchased) with
    // the visitor token it belongs to.
    hold: null,
    stream: null,
    // Milliseconds to add to the local clock to get the server's, so a
    // countdown is right on a computer whose clock is off.
    clockOffset: 0,
    busy: false,
    // The reserve that has no definite answer yet: a retry of the same
    // choice reuses its Idempotency-Key, so a lost answer never holds
    // tickets twice.
    pendingReserve: null,
    // Until when (server-independent local ms) an action waits, as asked by
    // Retry-After.
    waitUntil: 0,
    // Per event id, this browser's place in the event's waiting room (see
    // queueFor).
    queues: new Map(),
    // The events whose queue was looked up for a place this browser may
    // hold: once per page view each.
    queueLooked: new Set(),
  };

  // ---- API ----------------------------------------------------------------

  class ApiError extends Error {
    constructor(code, status, message, fields, retryAfter) {
      super(message);
      this.code = code;
      this.status = status;
      this.fields = fields || null;
      this.retryAfter = retryAfter;
    }
  }

  function retryAfterSeconds(res) {
    const v = res.headers.get('Retry-After');
    if (!v) return 0;
    let s = Number(v);
    if (!Number.isFinite(s)) s = (Date.parse(v) - Date.now()) / 1000;
    if (!Number.isFinite(s)) return 0;
    return Math.min(Math.max(Math.ceil(s), 1), 120);
  }

  function noteServerClock(res) {
    const d = Date.parse(res.headers.get('Date') || '');
    if (!Number.isFinite(d)) return;
    // The Date header has whole seconds; a skew within that is noise.
    const off = d - Date.now();
    state.clockOffset = Math.abs(off) > 1500 ? off : 0;
  }

  function serverNow() { return Date.now() + state.clockOffset; }

  async function api(method, path, { body, visitor, headers } = {}) {
    const h = { Accept: 'application/json', ...(headers || {}) };
    if (body !== undefined) h['Content-Type'] = 'application/json';
    if (visitor) h['Visitor-Token'] = visitor;
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), FETCH_TIMEOUT_MS);
    let res;
    try {
      res = await fetch(path, {
        method,
        headers: h,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        signal: ctrl.signal,
      });
    } catch {
      throw new ApiError('network', 0, '');
    } finally {
      clearTimeout(timer);
    }
    noteServerClock(res);
    let doc = null;
    try { doc = await res.json(); } catch { /* not JSON: judged by status below */ }
    if (!res.ok) {
      const e = (doc && doc.error) || {};
      throw new ApiError(e.code || (res.status >= 500 ? 'unavailable' : 'http_' + res.status),
        res.status, e.message || '', e.fields, retryAfterSeconds(res));
    }
    return { data: doc ? doc.data : null, res };
  }

  // ---- words --------------------------------------------------------------

  function tickets(n) { return nf.format(n) + (n === 1 ? ' ticket' : ' tickets'); }

  function eventName(id) {
    const e = state.byId.get(id);
    return e ? e.name : 'event #' + id;
  }

  function saleStart(e) {
    return e && e.sale_starts_at ? Date.parse(e.sale_starts_at) : NaN;
  }

  function saleOpen(e) {
    const t = saleStart(e);
    return !Number.isFinite(t) || serverNow() >= t;
  }

  function fmtClock(totalSeconds) {
    const s = Math.max(0, Math.ceil(totalSeconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const ss = String(s % 60).padStart(2, '0');
    return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
  }

  function fmtHold(seconds) {
    if (seconds % 60 === 0) {
      const m = seconds / 60;
      return m === 1 ? '1 minute' : `${m} minutes`;
    }
    return `${seconds} seconds`;
  }

  // fmtWhen names a moment as a day and a time ("Tue 1 Dec, 10:00"), with
  // the year when it is not this year's.
  function fmtWhen(t) {
    const d = new Date(t);
    return (d.getFullYear() === new Date(serverNow()).getFullYear() ? dayFmt : dayYearFmt).format(d);
  }

  // fmtOpens says when something opens: a countdown within a day, a date
  // beyond (a countdown of "91:30:59" reads as a clock, not as a date).
  function fmtOpens(t) {
    const left = t - serverNow();
    if (left > DAY_MS) return fmtWhen(t);
    return 'in ' + fmtClock(left / 1000);
  }

  // fmtSaleTime is the sale time of a list entry or a sentence: the date
  // when days away, the clock time when today or tomorrow.
  function fmtSaleTime(t) {
    const left = t - serverNow();
    if (left > DAY_MS || left < 0) return fmtWhen(t);
    const today = new Date(serverNow()).getDate() === new Date(t).getDate();
    return (today ? 'today at ' : 'tomorrow at ') + timeFmt.format(new Date(t));
  }

  function fmtWait(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '–';
    if (seconds < 60) return 'under a minute';
    const m = Math.round(seconds / 60);
    if (m < 60) return m === 1 ? 'about 1 minute' : `about ${m} minutes`;
    const h = Math.floor(m / 60);
    return `about ${h} h ${String(m % 60).padStart(2, '0')} min`;
  }

  const fieldNames = { amount: 'Number of tickets', event_id: 'Event', reservation_id: 'Reservation', id: 'Identifier', nonce: 'Challenge answer', challenge: 'Challenge' };

  // explain turns an API error into words for the visitor. ctx holds the
  // event and amount of the action, when known.
  function explain(err, ctx = {}) {
    const e = ctx.event;
    const wait = err.retryAfter || 1;
    switch (err.code) {
      case 'not_enough_tickets':
        if (e && e.ticket_quantity > 0 && ctx.amount > e.ticket_quantity) {
          return `Only ${tickets(e.ticket_quantity)} left — choose fewer and try again.`;
        }
        return 'Sold out — no tickets are left right now. Tickets that others hold but do not buy go back on sale within minutes, so check again soon.';
      case 'sale_not_started': {
        const t = saleStart(e);
        return 'The sale has not started yet.' + (Number.isFinite(t) ? ` It opens ${fmtSaleTime(t)}.` : ' Please try again when it opens.');
      }
      case 'sale_closed':
        return 'The organiser has closed the sale for this event, so no more tickets can be reserved.';
      case 'order_limit_exceeded':
        return `One order can have at most ${tickets(e ? maxPerOrder(e) : 10)} — choose fewer and try again.`;
      case 'admission_required':
        return 'This event has a waiting room: join the queue, and you can reserve when it is your turn.';
      case 'admission_invalid':
        return 'Your turn in the queue has already been used for an order, or it belongs to another visit. Join the queue again to get a new turn.';
      case 'admission_expired':
        return 'Your turn to reserve ran out. Join the queue again to get a new turn.';
      case 'queue_not_open': {
        const w = e && e.waiting_room;
        const at = w && w.prequeue_opens_at ? Date.parse(w.prequeue_opens_at) : saleStart(e);
        return 'The queue is not open yet.' + (Number.isFinite(at) && at > serverNow() ? ` It opens ${fmtSaleTime(at)}.` : ' Please try again in a moment.');
      }
      case 'challenge_failed':
        return 'Joining the queue did not work out — your browser’s check was refused. Please try again.';
      case 'waiting_room_not_found':
        return 'This event no longer has a waiting room: you can reserve straight away.';
      case 'not_in_queue':
        return 'You are not in the queue for this event. Join it to get a place.';
      case 'worker':
        return 'Your browser could not run the check that joining the queue needs. Try another browser, or turn off settings that block scripts.';
      case 'outcome_unknown':
        return `The ticket office did not confirm in time — retry in a moment (about ${wait} s); a retry never holds tickets twice.`;
      case 'cross_site_request':
        return 'This request came from another site and was refused. Open the ticket page directly and try again.';
      case 'visitor_limit_exceeded':
        return e && e.max_per_visitor > 0
          ? `You can have at most ${tickets(e.max_per_visitor)} for this event, counting the ones you hold or already bought.`
          : 'That is more tickets than one visitor may have for this event.';
      case 'reservation_expired':
        return 'Your hold expired, so the tickets went back on sale. Reserve again to try once more.';
      case 'reservation_cancelled':
        return 'This hold was cancelled, so there is nothing to buy. Reserve again if you still want tickets.';
      case 'reservation_already_purchased':
        return 'You have already bought these tickets.';
      case 'reservation_not_found':
        return 'We could not find your hold any more. Reserve again if you still want tickets.';
      case 'event_not_found':
        return 'This event is no longer available.';
      case 'overloaded':
      case 'unavailable':
        return `The ticket office is too busy — retry in a moment (about ${wait} s).`;
      case 'rate_limited':
        return `You are going a little fast — wait ${wait} s, then try again.`;
      case 'validation_failed': {
        const parts = Object.entries(err.fields || {}).map(([k, v]) => `${fieldNames[k] || k} ${v}`);
        return 'Please check your choice' + (parts.length ? ': ' + parts.join('; ') + '.' : '.');
      }
      case 'visitor_token_required':
      case 'invalid_visitor_token':
        return 'Your browser’s visitor ID was not valid, so we reset it. Please try again.';
      case 'idempotency_key_reused':
        return 'That request clashed with an earlier one. Please try again.';
      case 'invalid_json':
      case 'unsupported_media_type':
      case 'body_too_large':
      case 'method_not_allowed':
      case 'not_found':
        return 'This page sent a request the ticket office did not understand. Reload the page and try again.';
      case 'network':
        return 'We could not reach the ticket office. Check your connection and try again.';
      case 'internal':
        return 'Something went wrong on our side. Please try again in a moment.';
      default:
        return err.message || 'Something went wrong. Please try again.';
    }
  }

  // ---- messages -----------------------------------------------------------

  function showError(text) {
    $('notice').textContent = '';
    $('error').textContent = text;
  }

  function showNotice(text) {
    $('error').textContent = '';
    $('notice').textContent = text;
  }

  function clearMessages() {
    $('error').textContent = '';
    $('notice').textContent = '';
  }

  function announce(text) {
    const a = $('announcer');
    a.textContent = '';
    // A fresh text node, a moment later, is read even when it repeats.
    setTimeout(() => { a.textContent = text; }, 60);
  }

  let lastAnnounced = 0;
  let announceTimer = null;

  function announceAvailability(e, before) {
    if (e.id !== state.selected) return;
    if (e.ticket_quantity === 0 && before !== 0) {
      clearTimeout(announceTimer);
      lastAnnounced = Date.now();
      announce(`${e.name} is sold out right now.`);
      return;
    }
    if (before === 0 && e.ticket_quantity > 0) {
      clearTimeout(announceTimer);
      lastAnnounced = Date.now();
      announce(`Tickets for ${e.name} are back on sale: ${nf.format(e.ticket_quantity)} left.`);
      return;
    }
    clearTimeout(announceTimer);
    announceTimer = setTimeout(() => {
      lastAnnounced = Date.now();
      const cur = state.byId.get(e.id);
      if (cur) announce(`${tickets(cur.ticket_quantity)} left for ${cur.name}.`);
    }, Math.max(0, lastAnnounced + ANNOUNCE_EVERY_MS - Date.now()));
  }

  // ---- events -------------------------------------------------------------

  async function loadEvents() {
    try {
      const { data } = await api('GET', '/api/events');
      setEvents(data || []);
      $('events-loading').hidden = true;
      return true;
    } catch (err) {
      if (state.events.length === 0) $('events-loading').textContent = explain(err) + ' Retrying…';
      // One retry pending at a time, however many callers failed.
      if (!state.listRetry) {
        state.listRetry = setTimeout(() => {
          state.listRetry = null;
          loadEvents();
        }, Math.max(err.retryAfter || 0, 3) * 1000);
      }
      return false;
    }
  }

  function setEvents(list) {
    // The live number of the watched event is fresher than the list's.
    const watched = state.stream && state.byId.get(state.stream.id);
    state.events = list;
    state.byId = new Map(list.map((e) => [e.id, e]));
    if (watched && state.byId.has(watched.id) && watched.updated_live) {
      const e = state.byId.get(watched.id);
      e.ticket_quantity = watched.ticket_quantity;
      e.capacity = watched.capacity;
      e.updated_live = true;
    }
    renderEvents();
    if (state.selected !== null && !state.byId.has(state.selected)) {
      state.selected = null;
      unwatch();
    }
    if (state.selected === null && list.length > 0) {
      const held = state.hold && state.byId.has(state.hold.event_id);
      select(held ? state.hold.event_id : preferred(list).id, false);
    }
    renderCheckout();
  }

  // preferred is the event a visitor most likely came for: the first (the
  // list is newest first) that is on sale now, else the one whose sale
  // opens soonest, else the first. Sold out and closed events come last:
  // preselecting them shows a dead end.
  function preferred(list) {
    const open = list.find((e) => !e.sale_closed && e.ticket_quantity > 0 && saleOpen(e));
    if (open) return open;
    const soon = list.filter((e) => !e.sale_closed && e.ticket_quantity > 0 && !saleOpen(e))
      .sort((a, b) => saleStart(a) - saleStart(b))[0];
    return soon || list.find((e) => !e.sale_closed) || list[0];
  }

  function renderEvents() {
    const box = $('events');
    const list = state.events;
    $('events-empty').hidden = list.length > 0;
    $('events-set').hidden = list.length === 0;
    const ids = list.map((e) => e.id).join(',');
    if (box.dataset.ids !== ids) {
      // Rebuilt only when the set changes, so focus and selection stay put
      // while numbers move.
      box.replaceChildren(...list.map(eventOption));
      box.dataset.ids = ids;
    }
    for (const e of list) renderEventMeta(e);
  }

  function eventOption(e) {
    const label = document.createElement('label');
    label.className = 'event-option';
    label.id = 'event-' + e.id;
    const input = document.createElement('input');
    input.type = 'radio';
    input.name = 'event';
    input.value = String(e.id);
    input.checked = e.id === state.selected;
    input.setAttribute('aria-describedby', 'event-meta-' + e.id);
    input.addEventListener('change', () => { if (input.checked) select(e.id, true); });
    const name = document.createElement('span');
    name.className = 'event-name';
    name.textContent = e.name;
    const meta = document.createElement('span');
    meta.className = 'event-meta';
    meta.id = 'event-meta-' + e.id;
    label.append(input, name, meta);
    return label;
  }

  function badge(text, kind) {
    const b = document.createElement('span');
    b.className = 'badge ' + kind;
    b.textContent = text;
    return b;
  }

  function renderEventMeta(e) {
    const meta = $('event-meta-' + e.id);
    if (!meta) return;
    const parts = [];
    if (e.sale_closed) {
      parts.push(badge('Sale closed', 'badge-soldout'));
    } else if (!saleOpen(e)) {
      parts.push(badge('Soon', 'badge-soon'));
      parts.push(document.createTextNode('Sale opens ' + fmtSaleTime(saleStart(e))));
    } else if (e.ticket_quantity === 0) {
      parts.push(badge('Sold out', 'badge-soldout'));
    } else {
      parts.push(document.createTextNode(`${nf.format(e.ticket_quantity)} of ${nf.format(e.capacity)} left`));
    }
    if (e.waiting_room) parts.push(badge('Waiting room', 'badge-queue'));
    const q = state.queues.get(e.id);
    const qs = q && q.entry && q.entry.state;
    if (state.hold && state.hold.event_id === e.id && state.hold.status === 'reserved') {
      parts.push(badge('Your hold', 'badge-held'));
    } else if (qs === 'admitted' && !queueTurnUsed(q)) {
      parts.push(badge('Your turn', 'badge-held'));
    } else if (qs === 'waiting' || qs === 'prequeue' || qs === 'paused') {
      parts.push(badge('In the queue', 'badge-held'));
    }
    meta.replaceChildren(...parts);
  }

  function select(id, byUser) {
    state.selected = id;
    for (const input of document.querySelectorAll('input[name="event"]')) {
      input.checked = Number(input.value) === id;
    }
    if (byUser) clearMessages();
    renderCheckout();
    watch(id);
  }

  // ---- live availability --------------------------------------------------

  // One EventSource, for the selected event only. A page may list many
  // events, and browsers open at most six HTTP/1.1 connections to one
  // server: a stream per event would leave none for reserving. One stream
  // per visitor also keeps a rush at one long-lived connection per person.
  // The other events' numbers come from the list, read every 30 seconds.
  function watch(id) {
    if (state.stream && state.stream.id === id) return;
    unwatch();
    const es = new EventSource(`/api/events/${id}/stream`);
    const s = { id, es, retry: null };
    state.stream = s;
    setLive('connecting');
    es.addEventListener('open', () => { if (state.stream === s) setLive('open'); });
    es.addEventListener('availability', (m) => {
      if (state.stream !== s) return;
      let a;
      try { a = JSON.parse(m.data); } catch { return; }
      setLive('open');
      onAvailability(a);
    });
    es.addEventListener('error', () => {
      if (state.stream !== s) return;
      if (es.readyState !== EventSource.CLOSED) {
        setLive('connecting'); // the browser reconnects by itself
        return;
      }
      // The server answered with an error (the event is gone, or the server
      // is busy or restarting): browsers do not retry that, so we do, after
      // a pause with jitter so a restart is not met by every page at once.
      setLive('offline');
      s.retry = setTimeout(async () => {
        if (state.stream !== s) return;
        state.stream = null;
        await loadEvents();
        if (state.selected === id && state.byId.has(id)) watch(id);
      }, 3000 + Math.random() * 3000);
    });
  }

  function unwatch() {
    const s = state.stream;
    if (!s) return;
    clearTimeout(s.retry);
    s.es.close();
    state.stream = null;
  }

  function setLive(st) {
    const el = $('live');
    el.dataset.state = st;
    el.textContent = st === 'open' ? 'Live' : st === 'offline' ? 'Offline — retrying' : 'Connecting…';
  }

  function onAvailability(a) {
    const e = state.byId.get(a.event_id);
    if (!e) return;
    const before = e.ticket_quantity;
    e.ticket_quantity = a.ticket_quantity;
    e.capacity = a.capacity;
    e.updated_live = true;
    renderEventMeta(e);
    if (e.id === state.selected) renderCheckout();
    if (before !== e.ticket_quantity) announceAvailability(e, before);
  }

  // ---- checkout panel -----------------------------------------------------

  // maxPerOrder is the most one reserve may take (the event says; 10 when
  // an older server does not).
  function maxPerOrder(e) {
    return e.max_per_order > 0 ? e.max_per_order : 10;
  }

  function amountLimit(e) {
    let n = maxPerOrder(e);
    if (e.max_per_visitor > 0) n = Math.min(n, e.max_per_visitor);
    return Math.min(n, 20);
  }

  function renderCheckout() {
    const e = state.byId.get(state.selected);
    $('checkout').hidden = !e;
    if (!e) return;
    $('ev-title').textContent = e.name;

    const count = $('avail-count');
    const sold = e.ticket_quantity === 0;
    count.textContent = sold ? 'Sold out' : nf.format(e.ticket_quantity);
    count.dataset.available = String(e.ticket_quantity);
    count.dataset.soldout = String(sold);
    $('avail-of').textContent = sold
      ? 'Every ticket is sold or held right now. Held tickets that are not bought come back on sale.'
      : `of ${nf.format(e.capacity)} tickets left`;
    $('avail-bar').style.width = (e.capacity > 0 ? (100 * e.ticket_quantity) / e.capacity : 0) + '%';

    const sale = $('ev-sale');
    const start = saleStart(e);
    sale.hidden = !e.sale_closed && saleOpen(e);
    if (e.sale_closed) sale.textContent = 'The organiser has closed the sale for this event.';
    else if (!sale.hidden) sale.textContent = `The sale opens ${fmtSaleTime(start)}.`;
    sale.dataset.closed = String(!!e.sale_closed);

    const sel = $('amount');
    const n = amountLimit(e);
    if (sel.dataset.event !== String(e.id) || sel.options.length !== n) {
      const q = state.queues.get(e.id);
      const keep = Math.min((q && q.amount) || Number(sel.value) || 1, n);
      sel.replaceChildren(...Array.from({ length: n }, (_, i) => {
        const o = document.createElement('option');
        o.value = String(i + 1);
        o.textContent = String(i + 1);
        return o;
      }));
      sel.value = String(keep);
      sel.dataset.event = String(e.id);
    }

    const hint = [];
    if (e.max_per_visitor > 0) hint.push(`Up to ${tickets(e.max_per_visitor)} per visitor.`);
    else if (maxPerOrder(e) < 20) hint.push(`Up to ${tickets(maxPerOrder(e))} per order.`);
    hint.push(`We hold your tickets for ${fmtHold(e.hold_seconds)} while you check out.`);
    if (holding()) hint.unshift('Buy or cancel the tickets you hold before reserving more.');
    $('amount-hint').textContent = hint.join(' ');
    renderQueue();
    renderButtons();
  }

  function holding() {
    return !!(state.hold && state.hold.status === 'reserved');
  }

  // renderButtons sets every button from the state, so a wait asked by
  // Retry-After, a request in flight and a sale not yet open never fight.
  function renderButtons() {
    const e = state.byId.get(state.selected);
    const waitLeft = Math.ceil((state.waitUntil - Date.now()) / 1000);
    const reserve = $('reserve');
    let label = 'Reserve';
    let disabled = state.busy || holding() || !e;
    let mode = 'reserve';
    const q = e && state.queues.get(e.id);
    if (e && e.sale_closed) {
      label = 'Sale closed';
      disabled = true;
    } else if (e && e.waiting_room && !queueAdmitted(q)) {
      mode = 'join';
      const opens = queueOpensAt(e);
      if (q && q.phase !== 'idle' && !(q.quiet && !q.entry)) {
        label = q.phase === 'in' ? 'Waiting for your turn' : 'Joining…';
        if (q.entry && q.entry.state === 'sold_out') label = 'Sold out';
        if (q.entry && q.entry.state === 'admitted') label = 'Turn used';
        disabled = true;
      } else if (Number.isFinite(opens) && opens > serverNow()) {
        label = 'Queue opens ' + fmtOpens(opens);
        disabled = true;
      } else if (waitLeft > 0) {
        label = `Retry in ${waitLeft} s`;
        disabled = true;
      } else {
        label = q && q.entry && q.entry.state === 'expired' ? 'Join the queue again' : 'Join the queue';
        disabled = state.busy || holding();
      }
    } else if (e && !saleOpen(e)) {
      label = 'Opens ' + fmtOpens(saleStart(e));
      disabled = true;
    } else if (waitLeft > 0) {
      label = `Retry in ${waitLeft} s`;
      disabled = true;
    } else if (state.busy && state.busyWith === 'reserve') {
      label = 'Reserving…';
    }
    reserve.textContent = label;
    reserve.disabled = disabled;
    reserve.dataset.mode = mode;
    $('amount').disabled = state.busy || holding() || !!(e && e.sale_closed);

    if (state.hold) {
      const purchase = $('purchase');
      const cancel = $('cancel');
      let buy = 'Buy ' + tickets(state.hold.amount);
      if (waitLeft > 0) buy = `Retry in ${waitLeft} s`;
      else if (state.busy && state.busyWith === 'purchase') buy = 'Buying…';
      purchase.textContent = buy;
      purchase.disabled = state.busy || waitLeft > 0;
      cancel.textContent = state.busy && state.busyWith === 'cancel' ? 'Cancelling…' : 'Cancel hold';
      cancel.disabled = state.busy;
    }
  }

  function setBusy(what) {
    state.busy = !!what;
    state.busyWith = what || null;
    renderButtons();
  }

  function waitFor(err) {
    if (err.retryAfter > 0) state.waitUntil = Date.now() + err.retryAfter * 1000;
    renderButtons();
  }

  // ---- reserve, purchase, cancel -------------------------------------------

  function newKey() {
    // getRandomValues works on plain http too, unlike crypto.randomUUID.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // visitorToken returns this browser's visitor token, creating and storing
  // one (a random UUID, as the server would) when there is none yet. It
  // exists before the first reserve or join, so a retry after a lost answer
  // is the same visitor: the same hold, or the same place in the queue.
  function visitorToken() {
    let t = storage.get(KEY_VISITOR);
    if (!t) {
      t = newKey();
      storage.set(KEY_VISITOR, t);
    }
    return t;
  }

  // Codes after which nothing is known to have happened, or which say
  // plainly that nothing did: a retry of the same choice may reuse the key.
  const uncertain = new Set(['network', 'unavailable', 'overloaded', 'internal', 'rate_limited', 'outcome_unknown']);

  // The form's button joins the queue of an event with a waiting room until
  // the visitor's turn comes, and reserves otherwise.
  function submit(ev) {
    ev.preventDefault();
    const e = state.byId.get(state.selected);
    if (!e) return;
    if ($('reserve').dataset.mode === 'join') {
      joinQueue(e);
      return;
    }
    reserve(e, Number($('amount').value));
  }

  async function reserve(e, amount) {
    if (!e || state.busy || holding() || Date.now() < state.waitUntil) return;
    const q = e.waiting_room ? state.queues.get(e.id) : null;
    const pass = q && queueAdmitted(q) ? q.entry.pass : null;
    let p = state.pendingReserve;
    if (!p || p.event_id !== e.id || p.amount !== amount || p.pass !== pass) {
      p = { event_id: e.id, amount, pass, key: newKey() };
      state.pendingReserve = p;
    }
    clearMessages();
    setBusy('reserve');
    // The token exists before the first reserve, so a retry after a lost
    // answer is the same visitor with the same key: it holds once.
    const visitor = visitorToken();
    const headers = { 'Idempotency-Key': p.key };
    if (pass) headers['Admission-Pass'] = pass;
    try {
      const { data, res } = await api('POST', '/api/reserve', {
        body: { event_id: e.id, amount },
        visitor,
        headers,
      });
      state.pendingReserve = null;
      const token = res.headers.get('Visitor-Token') || data.user_uid;
      storage.set(KEY_VISITOR, token);
      if (q && pass) {
        q.usedTurn = admissionId(q.entry);
        saveQueues();
      }
      setHold({ ...data, visitor: token });
      announce(`${tickets(data.amount)} held for ${e.name}. You have ${fmtClock((Date.parse(data.expires_at) - serverNow()) / 1000)} to buy them.`);
      $('hold-title').focus();
    } catch (err) {
      if (!uncertain.has(err.code)) state.pendingReserve = null;
      if (err.code === 'invalid_visitor_token') { storage.del(KEY_VISITOR); state.pendingReserve = null; }
      if (err.code === 'event_not_found' || err.code === 'sale_closed') loadEvents();
      if (err.code === 'admission_required' || err.code === 'admission_invalid' || err.code === 'admission_expired') {
        // The room, or this visitor's turn, is not what the page thought:
        // ask the queue where the visitor stands.
        if (q) {
          if (err.code === 'admission_invalid') q.usedTurn = admissionId(q.entry);
          saveQueues();
          pollQueue(q, 0);
        } else {
          loadEvents();
        }
      }
      showError(explain(err, { event: e, amount }));
      waitFor(err);
    } finally {
      setBusy(null);
    }
  }

  async function purchase() {
    const h = state.hold;
    if (!h || state.busy || Date.now() < state.waitUntil) return;
    clearMessages();
    setBusy('purchase');
    try {
      const { data } = await api('POST', '/api/purchase', { body: { reservation_id: h.id }, visitor: h.visitor });
      setHold({ ...data, visitor: h.visitor });
      announce(`Done: you bought ${tickets(data.amount)} for ${eventName(data.event_id)}.`);
      $('done-title').focus();
    } catch (err) {
      await settleFailed(h, err);
    } finally {
      setBusy(null);
    }
  }

  async function cancel() {
    const h = state.hold;
    if (!h || state.busy) return;
    clearMessages();
    setBusy('cancel');
    try {
      await api('DELETE', `/api/reservations/${h.id}`, { visitor: h.visitor });
      clearHold();
      showNotice(`Your hold is cancelled and the ${h.amount === 1 ? 'ticket is' : 'tickets are'} back on sale.`);
      $('reserve').focus();
    } catch (err) {
      await settleFailed(h, err);
    } finally {
      setBusy(null);
    }
  }

  // settleFailed handles a failed purchase or cancel: the hold's state is
  // what the answer says it is.
  async function settleFailed(h, err) {
    switch (err.code) {
      case 'reservation_already_purchased':
        try {
          const { data } = await api('GET', `/api/reservations/${h.id}`, { visitor: h.visitor });
          setHold({ ...data, visitor: h.visitor });
          return;
        } catch { /* show the words below */ }
        break;
      case 'reservation_expired':
      case 'reservation_cancelled':
      case 'reservation_not_found':
        clearHold();
        break;
      default:
        waitFor(err);
    }
    showError(explain(err, { event: state.byId.get(h.event_id), amount: h.amount }));
  }

  // ---- the waiting room ----------------------------------------------------

  // A queue record q, one per event this browser joined:
  //   event_id, amount (tickets wanted when the turn comes),
  //   phase: 'idle' (no live place), 'challenge' (fetching the challenge),
  //     'solving' (workers at work), 'joining', 'retry' (a join waits to be
  //     sent again), 'in' (a place, polled as Retry-After says),
  //   entry: the API's last answer ({state, position, ahead, …, pass}),
  //   usedTurn: the admission (see admissionId) a reserve already used,
  //   solve: progress of the proof of work, timer: the next poll.
  const POLL_DEFAULT_S = 5;
  const JOIN_TRIES = 5;
  const NONCE_PREFIXES = 'ABCDEFGH';

  function queueFor(id) {
    let q = state.queues.get(id);
    if (!q) {
      q = { event_id: id, amount: 1, phase: 'idle', entry: null, usedTurn: null, timer: null, gen: 0 };
      state.queues.set(id, q);
    }
    return q;
  }

  function saveQueues() {
    const list = [];
    for (const q of state.queues.values()) {
      if (q.entry || (q.phase !== 'idle' && !q.quiet)) list.push({ event_id: q.event_id, amount: q.amount, used_turn: q.usedTurn });
    }
    if (list.length) storage.set(KEY_QUEUES, JSON.stringify(list));
    else storage.del(KEY_QUEUES);
  }

  function loadQueues() {
    let list;
    try { list = JSON.parse(storage.get(KEY_QUEUES) || '[]'); } catch { list = []; }
    if (!Array.isArray(list)) return;
    for (const r of list) {
      if (!r || !Number.isInteger(r.event_id)) continue;
      const q = queueFor(r.event_id);
      q.amount = Number.isInteger(r.amount) && r.amount > 0 ? r.amount : 1;
      q.usedTurn = typeof r.used_turn === 'string' ? r.used_turn : null;
      q.phase = 'in';
    }
  }

  function dropQueue(q) {
    clearTimeout(q.timer);
    stopSolving(q);
    q.gen++;
    state.queues.delete(q.event_id);
    saveQueues();
  }

  // admissionId names one admission: its pass's expiry is fixed when the
  // visitor is let in and differs from every other admission's.
  function admissionId(entry) {
    return entry && entry.state === 'admitted' ? String(entry.pass_expires_at || entry.pass || '') : null;
  }

  function queueTurnUsed(q) {
    return !!(q && q.usedTurn && q.usedTurn === admissionId(q.entry));
  }

  // queueAdmitted: the visitor may reserve now, with the pass of q.
  function queueAdmitted(q) {
    if (!q || !q.entry || q.entry.state !== 'admitted' || !q.entry.pass || queueTurnUsed(q)) return false;
    const end = Date.parse(q.entry.pass_expires_at || '');
    return !Number.isFinite(end) || end > serverNow();
  }

  // queueOpensAt is when joining opens: the pre-queue's opening, else the
  // sale's start; NaN when the queue is open from the start.
  function queueOpensAt(e) {
    const w = e.waiting_room;
    if (w && w.prequeue_opens_at) return Date.parse(w.prequeue_opens_at);
    return saleStart(e);
  }

  async function joinQueue(e) {
    if (!e.waiting_room || state.busy || holding()) return;
    const q = queueFor(e.id);
    if (q.phase !== 'idle') return;
    q.amount = Number($('amount').value) || 1;
    q.entry = null;
    q.usedTurn = null;
    q.solve = null;
    const gen = ++q.gen;
    clearMessages();
    const visitor = visitorToken();
    saveQueues();
    // Always a JSON body, {} when the room asks no challenge: the server
    // takes a join only with a JSON type, which a page of another site
    // cannot send without the browser asking this server first.
    let body = {};
    let challenged = e.waiting_room.challenge_bits > 0;
    for (let attempt = 1; ; attempt++) {
      if (gen !== q.gen) return;
      try {
        if (challenged && !body.nonce) {
          q.phase = 'challenge';
          renderQueueAll();
          const { data: ch } = await api('GET', `/api/events/${e.id}/queue/challenge`, { visitor });
          if (gen !== q.gen) return;
          if (ch.bits > 0) {
            q.phase = 'solving';
            renderQueueAll();
            const nonce = await solveChallenge(q, ch, visitor);
            if (gen !== q.gen) return;
            body = { challenge: ch.challenge, nonce };
          }
        }
        q.phase = 'joining';
        renderQueueAll();
        const { data, res } = await api('POST', `/api/events/${e.id}/queue`, { body, visitor });
        if (gen !== q.gen) return;
        onQueueAnswer(q, data, res);
        $('queue-title').focus();
        return;
      } catch (err) {
        if (gen !== q.gen) return;
        stopSolving(q);
        if (attempt < JOIN_TRIES && (err.code === 'challenge_failed' || err.code === 'challenge_expired')) {
          // A challenge works once and expires: a fresh one, a fresh try.
          challenged = true;
          body = {};
          continue;
        }
        if (attempt < JOIN_TRIES && uncertain.has(err.code)) {
          // The same token and the same answer: a join that did happen
          // answers with the same place, so trying again is safe.
          q.phase = 'retry';
          const wait = Math.max(err.retryAfter || 0, 2) + Math.random() * 2;
          q.retryText = explain(err, { event: e });
          renderQueueAll();
          await sleep(wait * 1000);
          q.retryText = '';
          continue;
        }
        q.phase = 'idle';
        if (err.code === 'invalid_visitor_token') storage.del(KEY_VISITOR);
        if (['waiting_room_not_found', 'event_not_found', 'sale_closed', 'queue_not_open'].includes(err.code)) loadEvents();
        if (!q.entry) dropQueue(q);
        showError(explain(err, { event: e, amount: q.amount }));
        waitFor(err);
        renderQueueAll();
        return;
      }
    }
  }

  function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

  // solveChallenge finds a nonce in Web Workers, one per core (up to
  // eight), each trying its own nonces, and keeps q.solve up to date for
  // the progress bar. It gives up when the challenge expires.
  function solveChallenge(q, ch, visitor) {
    return new Promise((resolve, reject) => {
      const n = Math.max(1, Math.min(navigator.hardwareConcurrency || 2, NONCE_PREFIXES.length));
      const counts = new Array(n).fill(0);
      const workers = [];
      const s = { bits: ch.bits, expected: 2 ** ch.bits, hashes: 0, started: Date.now(), workers, timer: null };
      q.solve = s;
      const fail = (code) => {
        stopSolving(q);
        reject(new ApiError(code, 0, ''));
      };
      const expires = Date.parse(ch.expires_at || '');
      if (Number.isFinite(expires)) {
        s.timer = setTimeout(() => fail('challenge_expired'), Math.max(1000, expires - serverNow()));
      }
      for (let i = 0; i < n; i++) {
        let w;
        try {
          w = new Worker('/static/pow.js');
        } catch {
          fail('worker');
          return;
        }
        workers.push(w);
        w.onmessage = (m) => {
          if (q.solve !== s) return;
          const d = m.data || {};
          if (d.type === 'progress' || d.type === 'found') {
            counts[i] = d.hashes;
            s.hashes = counts.reduce((a, b) => a + b, 0);
          }
          if (d.type === 'found') {
            stopSolving(q);
            q.solve = { ...s, done: true };
            renderQueueProgress();
            resolve(d.nonce);
            return;
          }
          if (d.type === 'error') {
            fail('worker');
            return;
          }
          renderQueueProgress();
        };
        w.onerror = (ev) => {
          if (ev && ev.preventDefault) ev.preventDefault();
          if (q.solve === s) fail('worker');
        };
        w.postMessage({ challenge: ch.challenge, token: visitor, bits: ch.bits, prefix: NONCE_PREFIXES[i] });
      }
      renderQueueProgress();
    });
  }

  function stopSolving(q) {
    const s = q.solve;
    if (!s || !s.workers) return;
    for (const w of s.workers) w.terminate();
    s.workers = [];
    clearTimeout(s.timer);
  }

  // pollQueue reads the visitor's place after `seconds`.
  function pollQueue(q, seconds) {
    clearTimeout(q.timer);
    q.nextPoll = Date.now() + seconds * 1000;
    q.timer = setTimeout(() => readQueue(q), seconds * 1000);
  }

  async function readQueue(q) {
    const gen = q.gen;
    const visitor = storage.get(KEY_VISITOR);
    if (!visitor) {
      dropQueue(q);
      renderQueueAll();
      return;
    }
    try {
      const { data, res } = await api('GET', `/api/events/${q.event_id}/queue`, { visitor });
      if (gen !== q.gen) return;
      q.offline = false;
      onQueueAnswer(q, data, res);
    } catch (err) {
      if (gen !== q.gen) return;
      if (q.quiet && !q.entry) {
        // A look-up, not a wait the visitor asked for: nothing to retry.
        dropQueue(q);
        renderQueueAll();
        return;
      }
      if (['not_in_queue', 'waiting_room_not_found', 'event_not_found', 'invalid_visitor_token', 'visitor_token_required'].includes(err.code)) {
        dropQueue(q);
        if (err.code !== 'not_in_queue') loadEvents();
        renderQueueAll();
        return;
      }
      // Busy or unreachable: keep the place shown and ask again later,
      // with jitter so a restart is not met by every page at once.
      q.offline = true;
      pollQueue(q, Math.max(err.retryAfter || 0, 3) + Math.random() * 3);
      renderQueueAll();
    }
  }

  function onQueueAnswer(q, data, res) {
    const before = q.entry ? q.entry.state : null;
    const beforeTurn = admissionId(q.entry);
    q.entry = data;
    q.quiet = false;
    q.phase = data.state === 'expired' ? 'idle' : 'in';
    q.checkedAt = Date.now();
    saveQueues();
    const after = Math.max(retryAfterSeconds(res), 1) || POLL_DEFAULT_S;
    switch (data.state) {
      case 'admitted':
        // The turn's end is known: read again then, to learn that it ended.
        clearTimeout(q.timer);
        q.nextPoll = 0;
        if (!queueTurnUsed(q)) {
          const end = Date.parse(data.pass_expires_at || '');
          if (Number.isFinite(end)) pollQueue(q, Math.max(1, (end - serverNow()) / 1000 + 1));
        }
        break;
      case 'expired':
        clearTimeout(q.timer);
        q.nextPoll = 0;
        break;
      default:
        pollQueue(q, res.headers.get('Retry-After') ? after : POLL_DEFAULT_S);
    }
    const e = state.byId.get(q.event_id);
    if (before !== data.state || beforeTurn !== admissionId(data)) {
      announceQueue(q, e);
    }
    renderQueueAll();
    if (queueAdmitted(q)) autoReserve(q);
  }

  function announceQueue(q, e) {
    const name = e ? e.name : 'the event';
    const d = q.entry;
    switch (d.state) {
      case 'prequeue': announce(`You are in the queue for ${name}. Places are drawn at random when the sale opens.`); break;
      case 'waiting': announce(`You are in the queue for ${name}, place ${nf.format(d.position)}.`); break;
      case 'paused': announce(`The queue for ${name} is paused. You keep your place.`); break;
      case 'admitted': if (!queueTurnUsed(q)) announce(`It is your turn for ${name}.`); break;
      case 'expired': announce(`Your turn for ${name} has ended. You can join the queue again.`); break;
      case 'sold_out': announce(`${name} is sold out.`); break;
    }
  }

  // autoReserve takes the visitor on to the reservation when the turn
  // comes: once per admission, for the amount chosen when joining.
  function autoReserve(q) {
    const id = admissionId(q.entry);
    if (q.autoFor === id) return;
    const e = state.byId.get(q.event_id);
    if (!e) return;
    if (holding() || state.busy) {
      showNotice(`It is your turn for ${e.name}. Buy or cancel the tickets you hold, then reserve.`);
      return;
    }
    q.autoFor = id;
    if (state.selected !== e.id) select(e.id, false);
    const amount = Math.min(q.amount || 1, amountLimit(e));
    $('amount').value = String(amount);
    reserve(e, amount);
  }

  // A hold made with a turn has ended (cancelled, expired): the visitor's
  // entry has ended with it, so read it to offer a new place.
  function afterHoldEnded(eventID) {
    const q = state.queues.get(eventID);
    if (q && q.usedTurn) pollQueue(q, 0.5);
  }

  // resumeQueue looks up, once, a place this browser may hold in the
  // selected event's queue (joined in another tab, or before a reload).
  function resumeQueue(e) {
    if (!e || !e.waiting_room || state.queues.has(e.id) || !storage.get(KEY_VISITOR)) return;
    if (state.queueLooked.has(e.id)) return;
    state.queueLooked.add(e.id);
    const q = queueFor(e.id);
    q.phase = 'in';
    q.quiet = true;
    readQueue(q);
  }

  function renderQueueAll() {
    for (const e of state.events) if (e.waiting_room) renderEventMeta(e);
    renderCheckout();
  }

  function renderQueueProgress() {
    const e = state.byId.get(state.selected);
    const q = e && state.queues.get(e.id);
    const s = q && q.solve;
    const box = $('queue-solve');
    box.hidden = !s || !(q.phase === 'solving' || q.phase === 'joining' || q.phase === 'challenge');
    if (box.hidden) return;
    // Finding the answer is luck: the chance of having found it after h of
    // an expected E tries is 1 - e^(-h/E). The bar shows that chance, so it
    // moves steadily and never promises an end it cannot know.
    const p = s.done ? 1 : 1 - Math.exp(-s.hashes / s.expected);
    const pct = Math.min(100, Math.floor(p * 100));
    $('queue-progress-bar').style.width = pct + '%';
    $('queue-progress').setAttribute('aria-valuenow', String(pct));
    $('queue-progress').dataset.hashes = String(s.hashes);
    const secs = (Date.now() - s.started) / 1000;
    const rate = secs > 0.5 ? s.hashes / secs : 0;
    const left = rate > 0 && !s.done ? Math.max(1, Math.ceil(Math.max(0, s.expected - s.hashes) / rate)) : 0;
    let togo = 'a few seconds to go';
    if (left >= 90) togo = `about ${Math.round(left / 60)} min to go`;
    else if (left > 0) togo = `about ${left} s to go`;
    $('queue-progress-text').textContent = s.done ? 'Done — joining the queue…' : `${pct}% · ${togo}`;
  }

  function renderQueue() {
    const e = state.byId.get(state.selected);
    const box = $('queue');
    box.hidden = !e || !e.waiting_room;
    if (box.hidden) return;
    resumeQueue(e);
    const w = e.waiting_room;
    const q = state.queues.get(e.id);
    const d = q && q.entry;
    const st = q && q.quiet && !d ? 'none' : (d ? d.state : (q ? q.phase : 'none'));
    const badgeEl = $('queue-state');
    const text = $('queue-text');
    let words = '';
    let label = '';
    let kind = 'badge-soon';
    const start = saleStart(e);
    const used = queueTurnUsed(q);
    if (q && (q.phase === 'challenge' || q.phase === 'solving' || q.phase === 'joining' || q.phase === 'retry')) {
      label = 'Joining';
      words = q.phase === 'retry'
        ? q.retryText + ' We will try again by ourselves.'
        : w.challenge_bits > 0 || q.solve
          ? 'Getting your place… Your browser is doing a short check that makes it costly for ticket bots to crowd the queue. Keep this page open.'
          : 'Getting your place…';
    } else if (d && d.state === 'prequeue') {
      label = 'In the pre-queue';
      words = `You are in. When the sale opens ${Number.isFinite(start) ? fmtSaleTime(start) : ''}, everyone who joined before then gets a place drawn at random, so there was no need to rush. Keep this page open: it updates by itself.`;
    } else if (d && d.state === 'waiting') {
      label = 'In the queue';
      kind = 'badge-held';
      words = `Keep this page open. When it is your turn we reserve your ${tickets(q.amount)} at once, and you have ${fmtHold(e.hold_seconds)} to buy.`;
    } else if (d && d.state === 'paused') {
      label = 'Paused';
      words = 'The organiser has paused the queue for a moment. You keep your place; it moves again when they resume.';
    } else if (d && d.state === 'admitted' && !used) {
      label = 'Your turn';
      kind = 'badge-ok';
      const end = Date.parse(d.pass_expires_at || '');
      words = 'It is your turn!' + (Number.isFinite(end) ? ` Reserve within ${fmtClock((end - serverNow()) / 1000)}.` : '');
      if (state.busy && state.busyWith === 'reserve') words = 'It is your turn! Reserving your tickets…';
    } else if (d && d.state === 'admitted') {
      label = 'Turn used';
      kind = 'badge-ok';
      words = state.hold && state.hold.event_id === e.id && state.hold.status === 'purchased'
        ? 'You bought your tickets with your turn in the queue.'
        : 'You reserved tickets with your turn in the queue. If the hold ends unbought, you can join the queue again.';
    } else if (d && d.state === 'expired') {
      label = 'Turn ended';
      kind = 'badge-soldout';
      words = 'Your turn ended before tickets were bought (it ran out, or the hold ended). Join the queue again to get a new place at the back.';
    } else if (d && d.state === 'sold_out') {
      label = e.sale_closed ? 'Sale closed' : 'Sold out';
      kind = 'badge-soldout';
      words = e.sale_closed
        ? 'The organiser has closed the sale for this event, so the queue no longer lets anyone in.'
        : 'Every ticket has been sold, and no held tickets are left to come back.';
    } else {
      label = '';
      const opens = queueOpensAt(e);
      const parts = [`This sale has a waiting room. Join the queue and keep this page open: when it is your turn, we reserve your tickets at once and you have ${fmtHold(e.hold_seconds)} to buy.`];
      if (w.prequeue_opens_at && Number.isFinite(start) && start > serverNow()) {
        if (opens > serverNow()) parts.push(`The queue opens ${fmtSaleTime(opens)}.`);
        parts.push(`Everyone who joins before the sale opens ${fmtSaleTime(start)} gets a place drawn at random then, so there is no need to rush.`);
      } else if (Number.isFinite(opens) && opens > serverNow()) {
        parts.push(`The queue opens ${fmtSaleTime(opens)}.`);
      }
      words = parts.join(' ');
    }
    badgeEl.textContent = label;
    badgeEl.hidden = !label;
    badgeEl.className = 'badge ' + kind;
    badgeEl.dataset.state = st;
    if (text.textContent !== words) text.textContent = words;
    box.dataset.state = st;

    const place = $('queue-place');
    place.hidden = !d || !(d.state === 'waiting' || d.state === 'paused' || (d.state === 'sold_out' && d.position));
    if (!place.hidden) {
      $('queue-position').textContent = d.position ? nf.format(d.position) : '–';
      $('queue-ahead').textContent = d.ahead === null || d.ahead === undefined ? '–' : nf.format(d.ahead);
      $('queue-wait').textContent = d.state === 'paused' ? 'paused' : fmtWait(d.estimated_wait_seconds);
    }
    const live = $('queue-live');
    if (q && q.offline) live.textContent = 'Cannot reach the ticket office — retrying…';
    else if (d && q.nextPoll > Date.now() && d.state !== 'admitted') {
      live.textContent = `Updates by itself · next check in ${Math.max(1, Math.ceil((q.nextPoll - Date.now()) / 1000))} s`;
    } else live.textContent = '';
    renderQueueProgress();
  }

  // ---- the hold -----------------------------------------------------------

  function setHold(r) {
    state.hold = r;
    storage.set(KEY_HOLD, JSON.stringify({ id: r.id, event_id: r.event_id, visitor: r.visitor, amount: r.amount, status: r.status, expires_at: r.expires_at, created_at: r.created_at }));
    renderHold();
    const e = state.byId.get(r.event_id);
    if (e) renderEventMeta(e);
    renderCheckout();
  }

  function clearHold() {
    const h = state.hold;
    state.hold = null;
    storage.del(KEY_HOLD);
    renderHold();
    if (h) {
      const e = state.byId.get(h.event_id);
      if (e) renderEventMeta(e);
      if (h.status === 'reserved') afterHoldEnded(h.event_id);
    }
    renderCheckout();
  }

  function renderHold() {
    const h = state.hold;
    const held = !!h && h.status === 'reserved';
    const bought = !!h && h.status === 'purchased';
    $('hold').hidden = !held;
    $('done').hidden = !bought;
    if (held) {
      $('hold-amount').textContent = tickets(h.amount);
      $('hold-event').textContent = eventName(h.event_id);
      $('hold-id').textContent = '#' + h.id;
      tickHold();
    }
    if (bought) {
      $('done-text').textContent = `${tickets(h.amount)} for ${eventName(h.event_id)}. Your reservation number is #${h.id}.`;
    }
    renderButtons();
  }

  let said60 = null;

  function tickHold() {
    const h = state.hold;
    if (!h || h.status !== 'reserved') return;
    const end = Date.parse(h.expires_at);
    const left = (end - serverNow()) / 1000;
    if (left <= 0) {
      clearHold();
      showError('Your hold expired, so the tickets went back on sale. Reserve again to try once more.');
      return;
    }
    const cd = $('countdown');
    const text = fmtClock(left);
    if (cd.textContent !== text) {
      cd.textContent = text;
      cd.dateTime = 'PT' + Math.ceil(left) + 'S';
    }
    const total = Math.max(1, (end - Date.parse(h.created_at)) / 1000);
    $('countdown-bar').style.width = Math.min(100, (100 * left) / total) + '%';
    const urgent = left <= 60;
    $('hold').dataset.urgent = String(urgent);
    if (urgent && said60 !== h.id && total > 90) {
      said60 = h.id;
      announce('One minute left to buy your tickets.');
    }
  }

  async function restoreHold() {
    let saved;
    try { saved = JSON.parse(storage.get(KEY_HOLD) || 'null'); } catch { saved = null; }
    if (!saved || !Number.isInteger(saved.id) || typeof saved.visitor !== 'string') {
      if (state.hold) clearHold();
      else storage.del(KEY_HOLD);
      return;
    }
    try {
      const { data } = await api('GET', `/api/reservations/${saved.id}`, { visitor: saved.visitor });
      if (data.status === 'reserved' || data.status === 'purchased') {
        setHold({ ...data, visitor: saved.visitor });
      } else {
        clearHold();
        if (data.status === 'expired') showNotice('Your earlier hold expired and its tickets went back on sale.');
      }
    } catch (err) {
      if (err.code === 'reservation_not_found' || err.status === 400) {
        clearHold();
      } else if (saved.status === 'reserved' || saved.status === 'purchased') {
        // The server cannot say right now: show what this browser knows;
        // buying or cancelling asks the server anyway.
        setHold(saved);
      }
    }
  }

  function again() {
    clearHold();
    clearMessages();
    $('amount').focus();
  }

  // ---- start --------------------------------------------------------------

  function tick() {
    tickHold();
    renderButtons();
    const sel = state.byId.get(state.selected);
    if (sel && sel.waiting_room) renderQueue();
    // A sale opening while the page is open enables the button and drops
    // the "opens" line without a reload.
    const e = state.byId.get(state.selected);
    if (e && e.sale_starts_at) {
      const open = saleOpen(e);
      if (open !== e.was_open) {
        e.was_open = open;
        renderEventMeta(e);
        renderCheckout();
      }
    }
  }

  async function start() {
    $('reserve-form').addEventListener('submit', submit);
    $('purchase').addEventListener('click', purchase);
    $('cancel').addEventListener('click', cancel);
    $('again').addEventListener('click', again);
    $('amount').addEventListener('change', () => {
      // A visitor in a queue may change their mind while waiting: the turn
      // reserves what the form says then.
      const q = state.queues.get(state.selected);
      if (q && q.entry && q.phase === 'in') {
        q.amount = Number($('amount').value) || q.amount;
        saveQueues();
        renderQueue();
      }
    });
    loadQueues();
    await restoreHold();
    await loadEvents();
    for (const q of state.queues.values()) readQueue(q);
    if (state.hold) renderHold(); // event names are known now
    setInterval(tick, 250);
    setInterval(loadEvents, LIST_REFRESH_MS);
    window.addEventListener('storage', (ev) => {
      // Another tab of this site reserved, bought or cancelled.
      if (ev.key === KEY_HOLD) restoreHold();
    });
  }

  start();
})();
