// Outbound's portal: one page for an integration client's people (CONTRACT §13, docs/API.md
// "Portal"). Plain JavaScript on standard web APIs, no build step, no dependencies.
//
// Safety rules of this file:
//  - every text that comes from the API (URLs, descriptions, receivers' answers, payloads) is put
//    into the page with textContent or as a text node, never parsed as markup;
//  - no inline scripts, handlers or style attributes (the page's CSP forbids them);
//  - the credential (a key, or the session a portal link is exchanged for) lives in this tab's
//    sessionStorage only, and is sent only to this server's API.
'use strict';

(function () {
  const TOKEN_KEY = 'outbound.portal.token';
  const CLIENT_KEY = 'outbound.portal.client';
  const STATUSES = ['pending', 'succeeded', 'failed', 'dead', 'cancelled'];

  const app = document.getElementById('app');
  const who = document.getElementById('who');
  const signout = document.getElementById('signout');
  const message = document.getElementById('message');

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    me: null,          // GET /v1/portal/me
    clients: [],       // a tenant's clients
    clientId: null,    // the client whose subscriptions are shown
    eventTypes: null,  // GET /v1/event-types, loaded once
  };

  // ---- small DOM helpers (text only) ----

  // h('button', {class: 'x', type: 'button', 'aria-label': '...', onclick: fn}, 'text', child...)
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = String(v);
      else if (k === 'value') el.value = v;
      else if (k === 'checked' || k === 'hidden' || k === 'disabled' || k === 'selected') el[k] = true;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    append(el, children);
    return el;
  }
  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }
  let idSeq = 0;
  function uid(prefix) { idSeq += 1; return prefix + '-' + idSeq; }
  // A labelled control: returns [label, control].
  function field(labelText, control) {
    if (!control.id) control.id = uid('f');
    return [h('label', { for: control.id, text: labelText }), control];
  }

  function say(text, kind) {
    message.textContent = text || '';
    message.className = 'message' + (kind ? ' ' + kind : '');
  }
  function fmtTime(t) {
    if (!t) return '—';
    const d = new Date(t);
    if (isNaN(d)) return String(t);
    return d.toISOString().slice(0, 19).replace('T', ' ') + ' UTC';
  }
  function yesNo(b) { return b === undefined ? 'n/a' : (b ? 'yes' : 'no'); }

  // ---- the API ----

  class ApiError extends Error {
    constructor(status, body, path) {
      const e = body && body.error;
      super(e && e.message ? e.message : 'HTTP ' + status);
      this.status = status;
      this.code = e && e.code;
      this.details = (e && e.details) || [];
      this.path = path;
    }
    // The route itself is missing on this server (an older or partial build).
    get routeMissing() { return this.status === 404 && this.code === 'route_not_found'; }
  }

  // JSON.parse keeping each number's text where the browser can (JSON.rawJSON and the source
  // text JSON.parse hands a reviver): a payload shown as it was sent keeps 149.50 as 149.50
  // (CONTRACT.md §10), where a number parsed and written out again reads 149.5.
  function parseKeepingNumbers(text) {
    if (typeof JSON.rawJSON !== 'function') return JSON.parse(text);
    return JSON.parse(text, (key, value, context) =>
      (typeof value === 'number' && context && typeof context.source === 'string') ? JSON.rawJSON(context.source) : value);
  }

  async function api(method, path, body, options) {
    const headers = { Accept: 'application/json' };
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    const init = { method, headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    let data = null;
    const text = await res.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
      if (data && options && options.keepNumbers) {
        try { data = { parsed: data, exact: parseKeepingNumbers(text) }; } catch (e) { data = { parsed: data, exact: data }; }
      }
    }
    if (res.status === 401 && state.me) {
      signOutLocally('Your session has ended; sign in again.');
      throw new ApiError(res.status, data, path);
    }
    if (!res.ok) throw new ApiError(res.status, data, path);
    return data;
  }
  function errorText(err, what) {
    if (!(err instanceof ApiError)) return what + ': ' + (err && err.message ? err.message : err);
    if (err.routeMissing) return what + ' is not available on this server (' + err.path.split('?')[0] + ' answered 404).';
    let t = what + ' failed: ' + err.message;
    for (const d of err.details) t += ' ' + (d.field ? d.field + ': ' : '') + d.message;
    return t;
  }
  function fail(err, what) { say(errorText(err, what), 'error'); }

  async function listAll(path, max) {
    const out = [];
    let cursor = null;
    for (let i = 0; i < (max || 20); i++) {
      const sep = path.includes('?') ? '&' : '?';
      const page = await api('GET', path + sep + 'limit=250' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
      out.push(...page.data);
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    return out;
  }

  // ---- signing in ----

  function signOutLocally(text) {
    state.token = null;
    state.me = null;
    state.clientId = null;
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(CLIENT_KEY);
    showSignIn(text);
  }

  function showSignIn(text) {
    who.textContent = '';
    signout.hidden = true;
    say('');
    const key = h('input', { type: 'password', autocomplete: 'off', spellcheck: 'false', required: true,
      'aria-describedby': 'key-hint' });
    const error = h('p', { class: 'error', role: 'alert', text: text || '' });
    const form = h('form', { 'aria-label': 'Sign in' },
      h('h2', { text: 'Sign in' }),
      field('API key', key),
      h('p', { id: 'key-hint', class: 'hint',
        text: 'A client key (obc_…) or a tenant key (obt_…). It is kept in this browser tab only.' }),
      h('div', { class: 'actions' }, h('button', { type: 'submit', text: 'Sign in' })),
      error);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      state.token = key.value.trim();
      if (!state.token) return;
      try {
        await start();
        sessionStorage.setItem(TOKEN_KEY, state.token);
      } catch (err) {
        state.token = null;
        error.textContent = err instanceof ApiError && err.status === 401
          ? 'This key is not valid.' : errorText(err, 'Signing in');
      }
    });
    clear(app).appendChild(h('section', { id: 'signin' }, form));
    key.focus();
  }

  // Exchanges a portal link (#link=obl_…) for a session, once.
  async function redeemLink(link) {
    try {
      const s = await api('POST', '/v1/portal/sessions', { link });
      state.token = s.token;
      sessionStorage.setItem(TOKEN_KEY, s.token);
      return true;
    } catch (err) {
      const text = err instanceof ApiError && (err.status === 410 || err.status === 401)
        ? 'This portal link cannot be used: ' + err.message : errorText(err, 'Opening the portal link');
      showSignIn(text);
      return false;
    }
  }

  async function start() {
    state.me = await api('GET', '/v1/portal/me');
    signout.hidden = false;
    if (state.me.kind === 'client') {
      state.clientId = state.me.client.clientId;
      who.textContent = 'Client: ' + state.me.client.name + ' (' + state.me.client.sourceSystem + ')';
      await showSubscriptions();
      return;
    }
    who.textContent = 'Tenant ' + state.me.tenantId;
    state.clients = await listAll('/v1/clients');
    const saved = Number(sessionStorage.getItem(CLIENT_KEY));
    state.clientId = state.clients.some((c) => c.clientId === saved) ? saved : null;
    if (state.clientId) await showSubscriptions();
    else showClientPicker();
  }

  function clientPicker() {
    if (!state.me || state.me.kind !== 'tenant') return null;
    const select = h('select', {},
      h('option', { value: '', text: 'Choose a client…' }),
      state.clients.map((c) => h('option', { value: String(c.clientId), selected: c.clientId === state.clientId,
        text: c.name + ' (' + c.sourceSystem + ', #' + c.clientId + ')' })));
    select.addEventListener('change', async () => {
      state.clientId = select.value ? Number(select.value) : null;
      if (state.clientId) sessionStorage.setItem(CLIENT_KEY, String(state.clientId));
      else sessionStorage.removeItem(CLIENT_KEY);
      if (state.clientId) await showSubscriptions(); else showClientPicker();
    });
    return h('div', { class: 'card', id: 'client-picker' }, field('Client', select),
      h('p', { class: 'hint', text: 'A tenant key sees every client; choose the one to look at.' }));
  }

  function showClientPicker() {
    say('');
    clear(app).appendChild(clientPicker());
    if (!state.clients.length) app.appendChild(h('p', { class: 'notice', text: 'This tenant has no clients yet.' }));
  }

  // ---- subscriptions ----

  function healthPill(s) {
    if (!s.enabled) return h('span', { class: 'pill bad', text: 'disabled' });
    if (s.paused) return h('span', { class: 'pill warn', text: 'paused' });
    if (s.failingSinceUtc) return h('span', { class: 'pill bad', text: 'failing' });
    return h('span', { class: 'pill ok', text: 'healthy' });
  }
  function backlogText(s) {
    if (!s.backlog) return 'n/a';
    const n = s.backlog.pending;
    return n + ' waiting' + (s.backlog.oldestDueAtUtc ? ', oldest due ' + fmtTime(s.backlog.oldestDueAtUtc) : '');
  }

  async function showSubscriptions(note) {
    say(note || '', note ? 'ok' : '');
    let subs;
    try {
      subs = await listAll('/v1/subscriptions?clientId=' + state.clientId);
    } catch (err) { fail(err, 'Loading subscriptions'); return; }
    const rows = subs.map((s) => h('tr', { 'data-subscription': s.subscriptionId },
      h('td', { class: 'url', text: s.url }),
      h('td', { text: s.eventTypes.join(', ') }),
      h('td', {}, healthPill(s)),
      h('td', { text: yesNo(s.enabled) }),
      h('td', { text: yesNo(s.paused) }),
      h('td', { text: fmtTime(s.lastSuccessAtUtc) }),
      h('td', { text: fmtTime(s.failingSinceUtc) }),
      h('td', { text: s.disabledReason || '—' }),
      h('td', { text: backlogText(s) }),
      h('td', {}, h('button', { type: 'button', class: 'secondary', text: 'Open',
        'aria-label': 'Open subscription ' + s.subscriptionId + ' (' + s.url + ')',
        onclick: () => showSubscription(s.subscriptionId) }))));
    const table = h('table', { id: 'subscriptions', 'aria-label': 'Subscriptions' },
      h('thead', {}, h('tr', {}, ['URL', 'Event types', 'Health', 'Enabled', 'Paused', 'Last success',
        'Failing since', 'Disabled reason', 'Backlog', ''].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, rows));
    clear(app);
    const picker = clientPicker();
    if (picker) app.appendChild(picker);
    app.appendChild(h('section', { id: 'subscriptions-view', 'aria-labelledby': 'subs-title' },
      h('h2', { id: 'subs-title', text: 'Subscriptions' }),
      h('div', { class: 'actions' }, h('button', { type: 'button', text: 'New subscription',
        onclick: () => showForm(null) })),
      subs.length ? table : h('p', { class: 'hint', text: 'No subscriptions yet.' })));
  }

  async function loadEventTypes() {
    if (state.eventTypes) return state.eventTypes;
    try {
      const r = await api('GET', '/v1/event-types');
      state.eventTypes = r.data.map((t) => t.eventType);
    } catch (err) { state.eventTypes = []; }
    return state.eventTypes;
  }

  // Create (sub null) or edit.
  async function showForm(sub) {
    say('');
    const types = await loadEventTypes();
    const url = h('input', { type: 'url', required: true, value: sub ? sub.url : '', placeholder: 'https://…' });
    const eventTypes = h('input', { type: 'text', required: true, value: sub ? sub.eventTypes.join(', ') : '*',
      'aria-describedby': 'types-hint' });
    const description = h('textarea', {});
    description.value = sub && sub.description ? sub.description : '';
    const ordered = h('input', { type: 'checkbox', checked: sub ? sub.ordered : false });
    // A new subscription starts from the contract's defaults (CONTRACT.md §4), which the API
    // applies to options left out: customer context and contact details on, the rest off.
    const opts = sub ? sub.options : {
      includeCustomerContext: true, includeContactDetails: true,
      includeSummaryPreview: false, includeBillingDetails: false,
    };
    const optionBoxes = [
      ['includeCustomerContext', 'Include customer context'],
      ['includeContactDetails', 'Include contact details'],
      ['includeSummaryPreview', 'Include summary preview'],
      ['includeBillingDetails', 'Include billing details'],
    ].map(([name, text]) => [name, text, h('input', { type: 'checkbox', checked: !!opts[name] })]);
    const error = h('div', { class: 'error', role: 'alert' });
    const form = h('form', { 'aria-label': sub ? 'Edit subscription' : 'New subscription' },
      h('h2', { text: sub ? 'Edit subscription ' + sub.subscriptionId : 'New subscription' }),
      field('Endpoint URL', url),
      field('Event types', eventTypes),
      h('p', { id: 'types-hint', class: 'hint', text: 'Comma-separated: exact names, * for all, or a prefix such as route.*. Types: ' + types.join(', ') }),
      field('Description', description),
      h('fieldset', {}, h('legend', { text: 'Delivery' }),
        h('label', { class: 'inline' }, ordered, 'Ordered (per target, one at a time)'),
        optionBoxes.map(([, text, box]) => h('label', { class: 'inline' }, box, text))),
      h('div', { class: 'actions' },
        h('button', { type: 'submit', text: sub ? 'Save changes' : 'Create subscription' }),
        h('button', { type: 'button', class: 'secondary', text: 'Cancel',
          onclick: () => (sub ? showSubscription(sub.subscriptionId) : showSubscriptions()) })),
      error);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clear(error);
      const body = {
        url: url.value.trim(),
        eventTypes: eventTypes.value.split(',').map((t) => t.trim()).filter(Boolean),
        description: description.value,
        ordered: ordered.checked,
        options: Object.fromEntries(optionBoxes.map(([name, , box]) => [name, box.checked])),
      };
      try {
        if (sub) {
          await api('PATCH', '/v1/subscriptions/' + sub.subscriptionId, body);
          await showSubscription(sub.subscriptionId, 'Saved.');
        } else {
          if (state.me.kind === 'tenant') body.clientId = state.clientId;
          const made = await api('POST', '/v1/subscriptions', body);
          await showSubscription(made.subscriptionId, 'Subscription created.', made.secret);
        }
      } catch (err) {
        error.textContent = errorText(err, sub ? 'Saving' : 'Creating the subscription');
      }
    });
    clear(app).appendChild(h('section', { id: 'subscription-form' }, form));
    url.focus();
  }

  // One subscription: its facts, actions, chart and delivery log. `secret`: a secret to show once.
  async function showSubscription(id, note, secret) {
    say(note || '', note ? 'ok' : '');
    let s;
    try {
      s = await api('GET', '/v1/subscriptions/' + id);
    } catch (err) { fail(err, 'Loading the subscription'); return; }
    const back = h('button', { type: 'button', class: 'secondary', text: '← All subscriptions',
      onclick: () => showSubscriptions() });
    const facts = h('dl', { class: 'facts' }, [
      ['Subscription', String(s.subscriptionId)],
      ['URL', s.url],
      ['Description', s.description || '—'],
      ['Event types', s.eventTypes.join(', ')],
      ['Enabled', yesNo(s.enabled)],
      ['Paused', yesNo(s.paused)],
      ['Ordered', yesNo(s.ordered)],
      ['Last success', fmtTime(s.lastSuccessAtUtc)],
      ['Failing since', fmtTime(s.failingSinceUtc)],
      ['Disabled reason', s.disabledReason || '—'],
      ['Backlog', backlogText(s)],
      ['Created', fmtTime(s.createdAtUtc)],
    ].map(([k, v]) => [h('dt', { text: k }), h('dd', { text: v, 'data-fact': k })]));
    facts.querySelector('[data-fact="Description"]').id = 'subscription-description';

    const secretBox = h('div', { class: 'secret', role: 'alert', hidden: !secret });
    if (secret) showSecret(secretBox, secret);

    const testType = h('select', {}, h('option', { value: '', text: 'ordinavo.test' }),
      (await loadEventTypes()).map((t) => h('option', { value: t, text: t })));
    const confirmBox = h('div', { class: 'actions', hidden: true },
      h('span', { text: 'Delete this subscription and stop its deliveries?' }),
      h('button', { type: 'button', class: 'danger', text: 'Delete subscription', onclick: async () => {
        try {
          await api('DELETE', '/v1/subscriptions/' + id);
          await showSubscriptions('Subscription ' + id + ' deleted.');
        } catch (err) { fail(err, 'Deleting'); }
      } }),
      h('button', { type: 'button', class: 'secondary', text: 'Keep it', onclick: () => { confirmBox.hidden = true; } }));

    const patch = async (body, done, what) => {
      try {
        await api('PATCH', '/v1/subscriptions/' + id, body);
        await showSubscription(id, done);
      } catch (err) {
        if (err instanceof ApiError && err.status === 422 &&
          (err.code === 'unknown_field' || err.details.some((d) => d.code === 'unknown_field'))) {
          say(what + ' is not available on this server.', 'error');
        } else fail(err, what);
      }
    };
    const actions = h('div', { class: 'actions', role: 'group', 'aria-label': 'Subscription actions' },
      h('button', { type: 'button', class: 'secondary', text: 'Edit', onclick: () => showForm(s) }),
      s.enabled
        ? h('button', { type: 'button', class: 'secondary', text: 'Disable', 'aria-label': 'Disable',
          onclick: () => patch({ enabled: false }, 'Disabled.', 'Disabling') })
        : h('button', { type: 'button', text: 'Enable', 'aria-label': 'Enable',
          onclick: () => patch({ enabled: true }, 'Enabled.', 'Enabling') }),
      s.paused
        ? h('button', { type: 'button', text: 'Resume', onclick: () => patch({ paused: false }, 'Resumed.', 'Resuming') })
        : h('button', { type: 'button', class: 'secondary', text: 'Pause',
          onclick: () => patch({ paused: true }, 'Paused: deliveries are held until you resume.', 'Pausing') }),
      h('button', { type: 'button', class: 'secondary', text: 'Rotate secret', onclick: async () => {
        try {
          const r = await api('POST', '/v1/subscriptions/' + id + '/rotate-secret');
          showSecret(secretBox, r.secret, r.previousSecretExpiresAtUtc);
          say('Secret rotated.', 'ok');
        } catch (err) { fail(err, 'Rotating the secret'); }
      } }),
      h('button', { type: 'button', class: 'danger', text: 'Delete', onclick: () => { confirmBox.hidden = false; } }));
    const testGroup = h('div', { class: 'actions', role: 'group', 'aria-label': 'Test event' },
      field('Test event type', testType),
      h('button', { type: 'button', text: 'Send test event', onclick: async () => {
        try {
          const body = testType.value ? { eventType: testType.value } : {};
          const r = await api('POST', '/v1/subscriptions/' + id + '/test', body);
          say('Test event ' + r.eventId + ' sent; it appears in the delivery log below.', 'ok');
          setTimeout(() => loadLog(), 1500);
        } catch (err) { fail(err, 'Sending a test event'); }
      } }));
    const since = h('input', { type: 'datetime-local', step: '1' });
    since.value = localInputValue(new Date(Date.now() - 24 * 3600 * 1000));
    const recoverGroup = h('div', { class: 'actions', role: 'group', 'aria-label': 'Recover' },
      field('Recover failed deliveries since', since),
      h('button', { type: 'button', text: 'Recover', onclick: async () => {
        const t = new Date(since.value);
        if (isNaN(t)) { say('Choose a time to recover from.', 'error'); return; }
        try {
          const r = await api('POST', '/v1/subscriptions/' + id + '/recover', { sinceUtc: t.toISOString() });
          say('Recover: ' + r.recovered + ' dead or cancelled deliveries queued again.', 'ok');
          setTimeout(() => loadLog(), 1000);
        } catch (err) { fail(err, 'Recover'); }
      } }));

    const chart = h('div', { class: 'chart', id: 'chart' });
    const statusFilter = h('select', {}, h('option', { value: '', text: 'All' }),
      STATUSES.map((st) => h('option', { value: st, text: st })));
    const logBody = h('div', { id: 'log' });
    const detail = h('div', { id: 'attempt-detail' });
    let cursor = null;
    const loadLog = async (more) => {
      if (!more) cursor = null;
      let page;
      try {
        const q = '?limit=50' + (statusFilter.value ? '&status=' + statusFilter.value : '') +
          (cursor ? '&cursor=' + encodeURIComponent(cursor) : '');
        page = await api('GET', '/v1/subscriptions/' + id + '/deliveries' + q);
      } catch (err) { fail(err, 'Loading the delivery log'); return; }
      cursor = page.nextCursor;
      renderLog(logBody, page.data, more, id, detail, () => loadLog(true), cursor);
    };
    statusFilter.addEventListener('change', () => loadLog());

    clear(app).appendChild(h('section', { id: 'subscription', 'aria-labelledby': 'sub-title' },
      h('div', { class: 'actions' }, back),
      h('h2', { id: 'sub-title' }, 'Subscription ', healthPill(s)),
      secretBox, facts, actions, confirmBox, testGroup, recoverGroup));
    app.appendChild(h('section', { id: 'stats', 'aria-labelledby': 'chart-title' },
      h('h2', { id: 'chart-title', text: 'Last 24 hours' }), chart));
    app.appendChild(h('section', { id: 'deliveries', 'aria-labelledby': 'log-title' },
      h('h2', { id: 'log-title', text: 'Delivery log' }),
      h('div', { class: 'actions' }, field('Status', statusFilter),
        h('button', { type: 'button', class: 'secondary', text: 'Refresh', onclick: () => loadLog() })),
      logBody, detail));
    await Promise.all([loadLog(), loadChart(chart, id)]);
  }

  function showSecret(box, secret, previousUntil) {
    clear(box);
    box.hidden = false;
    append(box, [h('strong', { text: 'New signing secret (shown once): ' }),
      h('code', { id: 'new-secret', text: secret }),
      h('p', { class: 'hint', text: previousUntil
        ? 'The previous secret keeps signing alongside it until ' + fmtTime(previousUntil) + '.'
        : 'Store it now; it is not shown again.' })]);
  }

  function localInputValue(d) {
    const pad = (n) => String(n).padStart(2, '0');
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + 'T' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  // ---- the delivery log ----

  function renderLog(container, rows, more, subId, detail, loadMore, cursor) {
    let table = container.querySelector('table');
    if (!more || !table) {
      clear(container);
      if (!rows.length) { container.appendChild(h('p', { class: 'hint', text: 'No attempts.' })); return; }
      table = h('table', { 'aria-label': 'Delivery attempts' },
        h('thead', {}, h('tr', {}, ['Attempted', 'Event type', 'Event', 'Attempt', 'HTTP status',
          'Duration', 'Delivery status', ''].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}));
      container.appendChild(table);
    }
    const tbody = table.querySelector('tbody');
    for (const r of rows) {
      tbody.appendChild(h('tr', { 'data-delivery': r.deliveryId, 'data-http-status': r.httpStatus },
        h('td', { text: fmtTime(r.attemptedAtUtc) }),
        h('td', { text: r.eventType }),
        h('td', { class: 'mono', text: r.eventId }),
        h('td', { text: String(r.attempt) }),
        h('td', { text: r.httpStatus === null ? (r.error || 'no answer') : String(r.httpStatus) }),
        h('td', { text: r.durationMs + ' ms' }),
        h('td', { text: r.status }),
        h('td', {}, h('button', { type: 'button', class: 'secondary', text: 'Details',
          'aria-label': 'Details of attempt ' + r.attempt + ' of event ' + r.eventId,
          onclick: () => showAttempt(detail, subId, r) }))));
    }
    const old = container.querySelector('.more');
    if (old) old.remove();
    if (cursor) {
      container.appendChild(h('div', { class: 'actions more' },
        h('button', { type: 'button', class: 'secondary', text: 'Load more', onclick: loadMore })));
    }
  }

  async function showAttempt(container, subId, row) {
    clear(container);
    let ev;
    let exact;
    try {
      ({ parsed: ev, exact } = await api('GET', '/v1/events/' + encodeURIComponent(row.eventId), undefined, { keepNumbers: true }));
    } catch (err) { fail(err, 'Loading the attempt'); return; }
    const index = (ev.deliveries || []).findIndex((d) => d.subscriptionId === subId);
    const delivery = index >= 0 ? ev.deliveries[index] : {};
    const attempt = (delivery.attempts || []).find((a) => a.deliveryId === row.deliveryId) || row;
    // The body as last sent (the API keeps one per delivery: another attempt's differs in its
    // deliveryId), its numbers as they were written.
    const sent = index >= 0 && exact.deliveries ? exact.deliveries[index].payload : delivery.payload;
    const payload = sent === undefined ? '(not available)' : JSON.stringify(sent, null, 2);
    container.appendChild(h('div', { class: 'card detail', role: 'region', 'aria-label': 'Attempt detail' },
      h('h3', { text: 'Attempt ' + attempt.attempt + ' of ' + row.eventType }),
      h('dl', { class: 'facts' },
        [['Event', row.eventId], ['Delivery', attempt.deliveryId], ['Attempted', fmtTime(attempt.attemptedAtUtc)],
          ['HTTP status', attempt.httpStatus === null ? 'no answer' : String(attempt.httpStatus)],
          ['Duration', attempt.durationMs + ' ms'], ['Error', attempt.error || '—'],
          ['Delivery status', delivery.status || row.status]]
          .map(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })])),
      h('h3', { text: 'Response snippet' }),
      h('pre', { id: 'response-snippet', text: attempt.responseSnippet || '(empty)' }),
      h('h3', { text: 'Payload as last sent' }),
      h('pre', { id: 'payload-sent', text: payload }),
      h('div', { class: 'actions' },
        h('button', { type: 'button', text: 'Redeliver', 'aria-label': 'Redeliver',
          onclick: async () => {
            try {
              await api('POST', '/v1/events/' + encodeURIComponent(row.eventId) + '/redeliver', { subscriptionId: subId });
              say('Redeliver: event ' + row.eventId + ' queued again.', 'ok');
            } catch (err) { fail(err, 'Redeliver'); }
          } }),
        h('button', { type: 'button', class: 'secondary', text: 'Close', onclick: () => clear(container) }))));
    container.scrollIntoView({ block: 'nearest' });
  }

  // ---- the chart: successes, failures and p95 latency per hour over 24 h (inline SVG) ----

  const SVG = 'http://www.w3.org/2000/svg';
  function s(tag, attrs, text) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  async function loadChart(container, id) {
    const since = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
    let stats;
    try {
      stats = await api('GET', '/v1/subscriptions/' + id + '/stats?bucket=1h&sinceUtc=' + encodeURIComponent(since));
    } catch (err) {
      container.appendChild(h('p', { class: 'notice', text: errorText(err, 'The chart') }));
      return;
    }
    drawChart(container, stats.buckets || []);
  }

  function drawChart(container, buckets) {
    const W = 720, H = 220, L = 40, R = 50, T = 10, B = 30;
    const n = Math.max(buckets.length, 1);
    const maxCount = Math.max(1, ...buckets.map((b) => b.succeeded + b.failed));
    const maxMs = Math.max(1, ...buckets.map((b) => b.p95Ms || 0));
    const bw = (W - L - R) / n;
    const y = (v) => T + (H - T - B) * (1 - v / maxCount);
    const yMs = (v) => T + (H - T - B) * (1 - v / maxMs);
    const total = buckets.reduce((a, b) => [a[0] + b.succeeded, a[1] + b.failed], [0, 0]);
    const svg = s('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img',
      'aria-label': 'Last 24 hours: ' + total[0] + ' succeeded, ' + total[1] + ' failed attempts; p95 latency up to ' +
        Math.round(maxMs) + ' ms' });
    svg.appendChild(s('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }));
    svg.appendChild(s('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }));
    svg.appendChild(s('text', { x: L - 4, y: T + 8, 'text-anchor': 'end' }, String(maxCount)));
    svg.appendChild(s('text', { x: L - 4, y: H - B, 'text-anchor': 'end' }, '0'));
    svg.appendChild(s('text', { x: W - R + 4, y: T + 8 }, Math.round(maxMs) + ' ms'));
    const points = [];
    buckets.forEach((b, i) => {
      const x = L + i * bw + 1;
      const w = Math.max(1, bw - 2);
      const okTop = y(b.succeeded);
      const badTop = y(b.succeeded + b.failed);
      if (b.succeeded) svg.appendChild(s('rect', { class: 'bar-ok', x, y: okTop, width: w, height: H - B - okTop }));
      if (b.failed) svg.appendChild(s('rect', { class: 'bar-bad', x, y: badTop, width: w, height: okTop - badTop }));
      if (b.p95Ms !== null && b.p95Ms !== undefined) points.push((x + w / 2).toFixed(1) + ',' + yMs(b.p95Ms).toFixed(1));
      if (i % 6 === 0) {
        svg.appendChild(s('text', { x, y: H - B + 14 }, new Date(b.startUtc).toISOString().slice(11, 16)));
      }
    });
    if (points.length) svg.appendChild(s('polyline', { class: 'line-p95', points: points.join(' ') }));
    clear(container);
    append(container, [svg, h('div', { class: 'legend' },
      h('span', {}, h('span', { class: 'sw ok' }), 'succeeded ' + total[0]),
      h('span', {}, h('span', { class: 'sw bad' }), 'failed ' + total[1]),
      h('span', {}, h('span', { class: 'sw p95' }), 'p95 latency (UTC hours)'))]);
  }

  // ---- start ----

  signout.addEventListener('click', async () => {
    try { if (state.token) await api('DELETE', '/v1/portal/session'); } catch (err) { /* signed out anyway */ }
    signOutLocally('Signed out.');
  });

  (async () => {
    // A portal link carries its one-time token in the fragment (never sent to any server); take
    // it out of the address bar and history at once.
    if (location.hash.startsWith('#link=')) {
      const link = decodeURIComponent(location.hash.slice(6));
      history.replaceState(null, '', location.pathname + location.search);
      sessionStorage.removeItem(CLIENT_KEY);
      if (!(await redeemLink(link))) return;
    }
    if (!state.token) { showSignIn(); return; }
    try {
      await start();
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) showSignIn(errorText(err, 'Signing in'));
    }
  })();
})();
