// ticketrush buyer page: list events with live availability, reserve,
// show the hold with a countdown, buy or cancel. Plain JavaScript against
// the JSON API; no framework, no build step.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  const KEY_VISITOR = 'ticketrush.visitor';
  const KEY_HOLD = 'ticketrush.reservation';
  // How often the whole event list is read again, for events added since and
  // for the numbers of the events not being watched live.
  const LIST_REFRESH_MS = 30000;
  // How often screen readers hear the live number at most; visible numbers
  // change at once. Sold out and back on sale are said at once.
  const ANNOUNCE_EVERY_MS = 15000;
  const FETCH_TIMEOUT_MS = 15000;

  const nf = new Intl.NumberFormat('en');
  const df = new Intl.DateTimeFormat('en', { dateStyle: 'medium', timeStyle: 'short' });

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

  const fieldNames = { amount: 'Number of tickets', event_id: 'Event', reservation_id: 'Reservation', id: 'Identifier' };

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
        return 'The sale has not started yet.' + (Number.isFinite(t) ? ` It opens ${df.format(new Date(t))}.` : ' Please try again when it opens.');
      }
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
      select(held ? state.hold.event_id : list[0].id, false);
    }
    renderCheckout();
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
    if (!saleOpen(e)) {
      parts.push(badge('Soon', 'badge-soon'));
      parts.push(document.createTextNode('Sale opens ' + df.format(new Date(saleStart(e)))));
    } else if (e.ticket_quantity === 0) {
      parts.push(badge('Sold out', 'badge-soldout'));
    } else {
      parts.push(document.createTextNode(`${nf.format(e.ticket_quantity)} of ${nf.format(e.capacity)} left`));
    }
    if (state.hold && state.hold.event_id === e.id && state.hold.status === 'reserved') {
      parts.push(badge('Your hold', 'badge-held'));
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

  function amountLimit(e) {
    return e.max_per_visitor > 0 ? Math.min(e.max_per_visitor, 20) : 10;
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
    sale.hidden = saleOpen(e);
    if (!sale.hidden) sale.textContent = `The sale opens ${df.format(new Date(start))}.`;

    const sel = $('amount');
    const n = amountLimit(e);
    if (sel.dataset.event !== String(e.id) || sel.options.length !== n) {
      const keep = Math.min(Number(sel.value) || 1, n);
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
    hint.push(`We hold your tickets for ${fmtHold(e.hold_seconds)} while you check out.`);
    if (holding()) hint.unshift('Buy or cancel the tickets you hold before reserving more.');
    $('amount-hint').textContent = hint.join(' ');
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
    if (e && !saleOpen(e)) {
      label = 'Opens in ' + fmtClock((saleStart(e) - serverNow()) / 1000);
      disabled = true;
    } else if (waitLeft > 0) {
      label = `Retry in ${waitLeft} s`;
      disabled = true;
    } else if (state.busy && state.busyWith === 'reserve') {
      label = 'Reserving…';
    }
    reserve.textContent = label;
    reserve.disabled = disabled;
    $('amount').disabled = state.busy || holding();

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
  // one (a random UUID, as the server would) when there is none yet.
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
  const uncertain = new Set(['network', 'unavailable', 'overloaded', 'internal', 'rate_limited']);

  async function reserve(ev) {
    ev.preventDefault();
    const e = state.byId.get(state.selected);
    if (!e || state.busy || holding() || Date.now() < state.waitUntil) return;
    const amount = Number($('amount').value);
    let p = state.pendingReserve;
    if (!p || p.event_id !== e.id || p.amount !== amount) {
      p = { event_id: e.id, amount, key: newKey() };
      state.pendingReserve = p;
    }
    clearMessages();
    setBusy('reserve');
    // The token exists before the first reserve, so a retry after a lost
    // answer is the same visitor with the same key: it holds once.
    const visitor = visitorToken();
    try {
      const { data, res } = await api('POST', '/api/reserve', {
        body: { event_id: e.id, amount },
        visitor,
        headers: { 'Idempotency-Key': p.key },
      });
      state.pendingReserve = null;
      const token = res.headers.get('Visitor-Token') || data.user_uid;
      storage.set(KEY_VISITOR, token);
      setHold({ ...data, visitor: token });
      announce(`${tickets(data.amount)} held for ${e.name}. You have ${fmtClock((Date.parse(data.expires_at) - serverNow()) / 1000)} to buy them.`);
      $('hold-title').focus();
    } catch (err) {
      if (!uncertain.has(err.code)) state.pendingReserve = null;
      if (err.code === 'invalid_visitor_token') { storage.del(KEY_VISITOR); state.pendingReserve = null; }
      if (err.code === 'event_not_found') loadEvents();
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
    $('reserve-form').addEventListener('submit', reserve);
    $('purchase').addEventListener('click', purchase);
    $('cancel').addEventListener('click', cancel);
    $('again').addEventListener('click', again);
    await restoreHold();
    await loadEvents();
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
