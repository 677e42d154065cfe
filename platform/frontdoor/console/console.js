// Kiln's live console: a tenant token (kept in sessionStorage, so it goes with the tab),
// the tenant's functions, versions and log tail, invocations live over the events
// WebSocket, and instances with their history and checkpoints. Text goes into the page
// with textContent only: nothing a function or a tenant stored is ever parsed as HTML.
'use strict';

const TOKEN_KEY = 'kiln.token';
const MAX_LIVE_ROWS = 200;
const $ = (id) => document.getElementById(id);

/// Handshakes refused in a row before the console stops retrying (a bad or expired token).
const REFUSALS_BEFORE_GIVING_UP = 3;

let socket = null;
let lastEventId = null;
let reconnectDelay = 500;
let refusedInARow = 0;
let shownFunction = null;
let shownInstance = null;
let instancesReload = null;

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function status(text, failed) {
  $('status').textContent = text;
  $('status').classList.toggle('error', Boolean(failed));
}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token()}` } });
  if (!response.ok) {
    let message = `${response.status}`;
    try {
      const body = await response.json();
      message = `${body.error.code}: ${body.error.message}`;
    } catch (_) { /* not Kiln's JSON error */ }
    throw new Error(message);
  }
  return response;
}

function row(cells, onClick) {
  const tr = document.createElement('tr');
  for (const cell of cells) {
    const td = document.createElement('td');
    td.textContent = cell === null || cell === undefined ? '' : String(cell);
    tr.appendChild(td);
  }
  if (onClick) {
    tr.classList.add('clickable');
    tr.addEventListener('click', onClick);
  }
  return tr;
}

function fill(tbody, rows) {
  $(tbody).replaceChildren(...rows);
}

async function loadFunctions() {
  const { functions } = await (await api('/v1/functions')).json();
  fill('functions', functions.map((f) => row(
    [f.name, f.current_version, f.size_bytes, f.updated_at],
    () => showFunction(f.name),
  )));
}

async function showFunction(name) {
  shownFunction = name;
  $('function-detail').hidden = false;
  $('function-name').textContent = name;
  const detail = await (await api(`/v1/functions/${encodeURIComponent(name)}`)).json();
  fill('versions', detail.versions.map((v) => row([v.version, v.kind, v.digest.slice(0, 12), v.created_at])));
  const logs = await (await api(`/v1/functions/${encodeURIComponent(name)}/logs?lines=100`)).text();
  $('logs').textContent = logs.split('\n').filter(Boolean).map((line) => {
    const entry = JSON.parse(line);
    return `${entry.time} ${entry.stream} ${entry.line}`;
  }).join('\n');
  await loadInstances(name);
}

async function loadInstances(functionName) {
  const query = functionName ? `?function=${encodeURIComponent(functionName)}&limit=50` : '?limit=50';
  const { instances } = await (await api(`/v1/instances${query}`)).json();
  fill('instances', instances.map((i) => row(
    [i.id, i.function, i.status, i.attempt, i.updated_at],
    () => showInstance(i.id),
  )));
}

async function showInstance(id) {
  shownInstance = id;
  $('instance-detail').hidden = false;
  $('instance-id').textContent = id;
  const path = `/v1/instances/${encodeURIComponent(id)}`;
  const [{ events }, { checkpoints }] = await Promise.all([
    api(`${path}/events`).then((r) => r.json()),
    api(`${path}/checkpoints`).then((r) => r.json()),
  ]);
  fill('instance-events', events.map((e) => row([e.at, e.kind, JSON.stringify(e.detail)])));
  fill('checkpoints', checkpoints.map((c) => row([c.key, JSON.stringify(c.value), c.created_at])));
}

function onEvent(message) {
  const event = JSON.parse(message.data);
  if (event.id) lastEventId = event.id;
  if (event.type === 'invocation') {
    const d = event.data;
    const tr = row([d.time, d.function, d.version, d.status, d.duration_ms.toFixed(2), d.cold ? 'cold' : '']);
    tr.dataset.function = d.function;
    if (d.status >= 500) tr.children[3].classList.add('failed');
    const tbody = $('invocations');
    tbody.prepend(tr);
    while (tbody.children.length > MAX_LIVE_ROWS) tbody.lastChild.remove();
  } else if (event.type === 'instance') {
    // A burst of instance events is one reload, of the list as it is filtered now.
    if (!instancesReload) {
      instancesReload = setTimeout(() => {
        instancesReload = null;
        loadInstances(shownFunction).catch(() => {});
      }, 300);
    }
    if (shownInstance === event.data.instance) showInstance(shownInstance).catch(() => {});
  } else if (event.type === 'gap') {
    status('Connected (some events were missed while away).');
  }
}

function disconnectEvents() {
  const old = socket;
  socket = null;
  if (old) old.close();
}

function connectEvents() {
  disconnectEvents();
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const after = lastEventId ? `?after=${encodeURIComponent(lastEventId)}` : '';
  // Browsers cannot set headers on a WebSocket: the token travels as a subprotocol entry.
  const opened = new WebSocket(`${scheme}://${location.host}/v1/events/ws${after}`, ['kiln.events.v1', `kiln.token.${token()}`]);
  let wasOpen = false;
  socket = opened;
  opened.addEventListener('open', () => {
    wasOpen = true;
    refusedInARow = 0;
    reconnectDelay = 500;
    status('Connected: events arrive live.');
  });
  opened.addEventListener('message', onEvent);
  opened.addEventListener('close', () => {
    // Only the current socket reconnects: one replaced or forgotten just goes.
    if (socket !== opened || !token()) return;
    refusedInARow = wasOpen ? 0 : refusedInARow + 1;
    if (refusedInARow >= REFUSALS_BEFORE_GIVING_UP) {
      socket = null;
      status('The live events refused this token (expired, or not a tenant token?): paste another.', true);
      return;
    }
    status('Disconnected; reconnecting…', true);
    setTimeout(() => { if (socket === opened) connectEvents(); }, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, 15000);
  });
}

async function connect() {
  status('Connecting…');
  try {
    await loadFunctions();
    await loadInstances(null);
    connectEvents();
  } catch (error) {
    status(`Cannot connect: ${error.message}`, true);
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('login').addEventListener('submit', (event) => {
    event.preventDefault();
    const pasted = $('token').value.trim();
    if (!pasted) return;
    sessionStorage.setItem(TOKEN_KEY, pasted);
    $('token').value = '';
    connect();
  });
  $('forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    disconnectEvents();
    status('Not connected.');
  });
  if (token()) connect();
});
