// The wasmesh dashboard. Everything it shows comes from the node's admin
// API with the operator's bearer token; it keeps the token in this tab's
// sessionStorage only, so closing the tab forgets it.
const $ = (sel) => document.querySelector(sel);
const TOKEN_KEY = 'wasmesh-admin-token';

let token = sessionStorage.getItem(TOKEN_KEY) || '';
let state = null; // last State from /v1/events
let selected = ''; // id of the daemon shown in the detail view
let streamCtl = null;
let detailTimer = 0;

class Unauthorized extends Error {}

// api calls the admin API; a non-2xx answer becomes an Error with the
// API's own message.
async function api(method, path, body, signal) {
  const headers = {};
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401) {
    askToken(token ? 'That token was refused.' : '');
    throw new Unauthorized('missing or wrong token');
  }
  if (!res.ok) {
    let msg = res.status + ' ' + res.statusText;
    try { msg = (await res.json()).error || msg; } catch { /* not JSON */ }
    throw new Error(msg);
  }
  return res;
}

// lines yields the lines of a streamed response body as they arrive.
async function* lines(res, sep = '\n') {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i;
    while ((i = buf.indexOf(sep)) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + sep.length);
      if (line.trim() !== '') yield line;
    }
  }
  if (buf.trim() !== '') yield buf;
}

function setConn(text, live = false) {
  const el = $('#conn');
  el.textContent = text;
  el.classList.toggle('live', live);
}

function askToken(msg) {
  streamCtl?.abort();
  $('#main').hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = msg || '';
  setConn('not connected');
  $('#token').focus();
}

$('#login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  token = $('#token').value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  $('#token').value = '';
  $('#login').hidden = true;
  $('#main').hidden = false;
  stream();
});

// stream reads the server-sent events of /v1/events. EventSource cannot
// send the Authorization header, so this parses the stream from fetch.
async function stream() {
  streamCtl?.abort();
  const ctl = new AbortController();
  streamCtl = ctl;
  setConn('connecting…');
  try {
    const res = await api('GET', '/v1/events', undefined, ctl.signal);
    setConn('live', true);
    for await (const block of lines(res, '\n\n')) {
      let ev = 'message';
      let data = '';
      for (const l of block.split('\n')) {
        if (l.startsWith('event:')) ev = l.slice(6).trim();
        else if (l.startsWith('data:')) data += l.slice(5);
      }
      if (ev === 'state') render(JSON.parse(data));
    }
  } catch (e) {
    if (ctl.signal.aborted || e instanceof Unauthorized) return;
    setConn('disconnected (' + e.message + '), retrying…');
  }
  if (ctl.signal.aborted) return;
  setConn('disconnected, retrying…');
  setTimeout(() => { if (streamCtl === ctl) stream(); }, 2000);
}

// el builds an element with text content (never HTML: names come from the
// cluster) and children.
function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function bytes(n) {
  if (n >= 1 << 30) return (n / (1 << 30)).toFixed(1) + ' GiB';
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + ' MiB';
  if (n >= 1 << 10) return (n / (1 << 10)).toFixed(0) + ' KiB';
  return n + ' B';
}

const label = (d) => d.name || d.id;

function render(st) {
  state = st;
  $('#node-name').textContent = 'node ' + st.node;
  renderMembers(st.members);
  renderActivity(st.activity);
  renderDaemons(st.daemons);
  const un = st.unreachable || [];
  $('#unreachable').textContent = un.length ? 'Not answering, their daemons may be missing: ' + un.join(', ') : '';
  if (selected) renderDetail();
}

function renderMembers(members) {
  const body = $('#members tbody');
  body.replaceChildren(...members.map((m) => el('tr', { 'data-name': m.name },
    el('td', { text: m.name + (m.local ? ' (this node)' : '') }),
    el('td', { class: 'state-' + m.state, text: m.state }),
    el('td', {}, ...(m.tags || []).map((t) => el('span', { class: 'tag', text: t }))),
    el('td', { class: 'num', text: String(m.load) }),
    el('td', { class: 'muted', text: m.version || '' }))));
}

function renderActivity(act) {
  const items = [];
  if (act.drain) {
    const d = act.drain;
    const done = d.moved + d.failed;
    items.push(el('li', { class: 'drain' },
      el('div', { text: `Draining ${d.node}: ${d.moved} of ${d.total} moved` + (d.failed ? `, ${d.failed} failed` : '') + `, ${d.remaining} left` }),
      el('progress', { max: String(Math.max(d.total, 1)), value: String(done), 'aria-label': 'drain of ' + d.node })));
  }
  for (const m of act.migrations) {
    const pct = m.bytes_total > 0 ? Math.min(100, Math.round((100 * m.bytes_sent) / m.bytes_total)) : 0;
    items.push(el('li', { class: 'migration', 'data-daemon': m.daemon },
      el('div', { text: `${m.name || m.daemon}: ${m.from} → ${m.to}, ${m.phase}` + (m.attempt > 1 ? ` (attempt ${m.attempt})` : '') +
        (m.bytes_total > 0 ? `, ${bytes(m.bytes_sent)} of ${bytes(m.bytes_total)}` : '') }),
      el('progress', { max: '100', value: String(pct), 'aria-label': 'migration of ' + (m.name || m.daemon) })));
  }
  $('#activity').replaceChildren(...items);
  $('#activity-none').hidden = items.length > 0;
}

// renderDaemons updates rows in place, keyed by id, so a focused button
// keeps its focus across updates.
function renderDaemons(daemons) {
  const body = $('#daemons tbody');
  const rows = new Map([...body.rows].map((r) => [r.dataset.id, r]));
  const sorted = [...daemons].sort((a, b) => label(a).localeCompare(label(b)) || a.id.localeCompare(b.id));
  let prev = null;
  for (const d of sorted) {
    let tr = rows.get(d.id);
    rows.delete(d.id);
    if (!tr) {
      tr = el('tr', { 'data-id': d.id },
        el('td', {}, el('button', { type: 'button', class: 'link', onclick: () => select(d.id) })),
        el('td', { class: 'node' }), el('td', { class: 'kind' }), el('td', { class: 'status' }),
        el('td', { class: 'num rate' }), el('td', { class: 'num processed' }), el('td', { class: 'num mem' }));
    }
    const c = tr.cells;
    c[0].firstChild.textContent = label(d);
    c[0].firstChild.setAttribute('aria-label', 'Show daemon ' + label(d));
    c[1].textContent = d.node;
    c[2].textContent = d.kind;
    c[3].textContent = d.status;
    c[3].className = 'status state-' + d.status;
    c[4].textContent = d.events_per_sec.toFixed(1);
    c[5].textContent = String(d.events_processed);
    c[6].textContent = bytes(d.memory_bytes);
    tr.classList.toggle('selected', d.id === selected);
    const want = prev ? prev.nextSibling : body.firstChild;
    if (want !== tr) body.insertBefore(tr, want);
    prev = tr;
  }
  for (const r of rows.values()) r.remove();
  $('#daemons-none').hidden = daemons.length > 0;
}

function select(id) {
  selected = id;
  $('#detail').hidden = false;
  $('#logs').textContent = '';
  $('#action-status').textContent = '';
  renderDetail();
  pollDetail();
  $('#detail-h').scrollIntoView({ block: 'nearest' });
}

$('#detail-close').addEventListener('click', () => {
  selected = '';
  clearTimeout(detailTimer);
  $('#detail').hidden = true;
  render(state);
});

function current() {
  return state?.daemons.find((d) => d.id === selected);
}

let extra = {}; // the daemon's own stats (GET /v1/daemons/{id})

function renderDetail() {
  const d = current();
  $('#detail-h').textContent = d ? 'Daemon ' + label(d) : 'Daemon ' + selected + ' (gone)';
  for (const id of ['#migrate', '#snapshot', '#stop', '#target']) $(id).disabled = !d;
  if (!d) return;
  const pairs = [['id', d.id], ['name', d.name || '—'], ['kind', d.kind], ['node', d.node], ['status', d.status],
    ['events/s', d.events_per_sec.toFixed(1)], ['processed', d.events_processed], ['errors', d.errors],
    ['memory', bytes(d.memory_bytes)], ['emitted', extra.events_emitted ?? '—'], ['chain seq', extra.chain_sequence ?? '—'],
    ['checkpointed', extra.checkpoint_input_seq ?? '—'], ['mode', extra.mode || '—'], ['last error', d.last_error || '—']];
  $('#stats').replaceChildren(...pairs.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: String(v) })]));
  const sel = $('#target');
  const others = state.members.filter((m) => m.name !== d.node && m.state === 'alive').map((m) => m.name);
  const keep = sel.value;
  if ([...sel.options].map((o) => o.value).join() !== others.join()) {
    sel.replaceChildren(...others.map((n) => el('option', { value: n, text: n })));
    if (others.includes(keep)) sel.value = keep;
  }
  $('#migrate').disabled = others.length === 0;
}

// pollDetail refreshes the daemon's own stats and log tail every 2 s
// while its view is open; the log follows the daemon wherever it runs.
async function pollDetail() {
  clearTimeout(detailTimer);
  const id = selected;
  if (!id) return;
  try {
    const ref = encodeURIComponent(id);
    extra = await (await api('GET', `/v1/daemons/${ref}`)).json();
    const logs = await (await api('GET', `/v1/daemons/${ref}/logs`)).json();
    if (id !== selected) return;
    const pre = $('#logs');
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = logs.slice(-200).map((l) => `${l.time.slice(11, 23)} ${l.level.padEnd(5)} ${l.text}`).join('\n') || '(no log lines)';
    if (atEnd) pre.scrollTop = pre.scrollHeight;
    renderDetail();
  } catch (e) {
    if (e instanceof Unauthorized) return;
    if (id === selected && current()) $('#logs').textContent = 'log unavailable: ' + e.message;
  }
  if (id === selected) detailTimer = setTimeout(pollDetail, 2000);
}

// confirmAction asks before an action that changes the cluster.
function confirmAction(text, okLabel) {
  const d = $('#confirm');
  $('#confirm-text').textContent = text;
  $('#confirm-ok').textContent = okLabel;
  d.returnValue = '';
  d.showModal();
  $('#confirm-cancel').focus();
  return new Promise((resolve) => d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true }));
}
$('#confirm-ok').addEventListener('click', () => $('#confirm').close('ok'));
$('#confirm-cancel').addEventListener('click', () => $('#confirm').close('cancel'));

function status(text, isError = false) {
  const s = $('#action-status');
  s.textContent = text;
  s.className = isError ? 'error' : '';
}

async function action(fn) {
  const buttons = ['#migrate', '#snapshot', '#stop'].map((s) => $(s));
  buttons.forEach((b) => { b.disabled = true; });
  try {
    await fn();
  } catch (e) {
    if (!(e instanceof Unauthorized)) status(e.message, true);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    renderDetail();
  }
}

$('#migrate').addEventListener('click', () => action(async () => {
  const d = current();
  const to = $('#target').value;
  if (!d || !to || !(await confirmAction(`Move ${label(d)} from ${d.node} to ${to}?`, 'Migrate'))) return;
  status(`moving to ${to}…`);
  const res = await api('POST', `/v1/daemons/${encodeURIComponent(d.id)}/migrate`, { to });
  for await (const line of lines(res)) {
    const m = JSON.parse(line);
    if (m.error) throw new Error(m.error.error);
    if (m.progress) status(`moving to ${to}: ${m.progress.phase}` + (m.progress.bytes_total ? `, ${bytes(m.progress.bytes_sent)} of ${bytes(m.progress.bytes_total)}` : ''));
    if (m.result) status(`moved to ${m.result.to} in ${m.result.total_ms.toFixed(0)} ms (paused ${m.result.pause_ms.toFixed(1)} ms)`);
  }
}));

$('#snapshot').addEventListener('click', () => action(async () => {
  const d = current();
  if (!d || !(await confirmAction(`Download a snapshot of ${label(d)}? It holds the daemon's whole memory.`, 'Download'))) return;
  const blob = await (await api('GET', `/v1/daemons/${encodeURIComponent(d.id)}/snapshot`)).blob();
  const a = el('a', { href: URL.createObjectURL(blob), download: d.id + '.snap' });
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  status(`snapshot saved (${bytes(blob.size)})`);
}));

$('#stop').addEventListener('click', () => action(async () => {
  const d = current();
  if (!d || !(await confirmAction(`Stop ${label(d)} on ${d.node}? Its state is discarded.`, 'Stop'))) return;
  await api('DELETE', `/v1/daemons/${encodeURIComponent(d.id)}`);
  status('stopped');
}));

stream();
