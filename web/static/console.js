// SPDX-License-Identifier: MIT
// The console's page: plain JS over lfp-web's JSON API (docs/web.md). Everything from lfpd is put in
// the page as text (el()), never as HTML: an app's path or a filter's name is not markup.
'use strict';

// An element with attributes (on* as listeners) and children (strings become text).
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
  return e;
}
const $ = (id) => document.getElementById(id);

// lfp-web's API: the result, or an Error with lfpd's code and message (and the banner when lfpd is away).
async function api(path, body) {
  let res;
  try {
    res = await fetch(path, body === undefined ? {} : {
      method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
  } catch (err) {
    banner('lfp-web cannot be reached (has it stopped?). The console keeps trying.');
    throw err;
  }
  const data = await res.json().catch(() => ({error: {code: 'PROTOCOL', message: `lfp-web answered ${res.status}`}}));
  if (!res.ok) {
    const err = new Error(`${data.error.code}: ${data.error.message}`);
    err.code = data.error.code;
    if (err.code === 'UNAUTHORIZED') banner(`${data.error.message}.`);
    else if (['NOT_RUNNING', 'TIMEOUT', 'PROTOCOL'].includes(err.code)) banner(`lfpd cannot be reached: ${data.error.message}. The console keeps trying.`);
    else banner(null);  // (lfpd answered: it refused this request)
    throw err;
  }
  banner(null);
  return data;
}
// Says why lfpd (or lfp-web) cannot be reached (null: it can); once it can again, what the page shows is
// loaded again.
let away = false;
function banner(text) {
  $('banner').hidden = !text;
  $('banner').textContent = text ?? '';
  if (away && !text) {
    away = false;
    loadState();
    loadRecentEvents();
    if (!layers.length) loadLayers();
  }
  away = Boolean(text);
}
const showError = (where, err) => where.replaceChildren(el('p', {class: 'error'}, err.message));

// ---- tabs: the address' #hash names the page
function showTab() {
  const name = location.hash.slice(1) || 'state';
  for (const page of document.querySelectorAll('.page')) page.hidden = page.id !== name;
  for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('active', a.hash === '#' + name);
  if (name === 'drops') drawDrops();
}
window.addEventListener('hashchange', showTab);

// ---- shared wording
const protoName = (p) => ({1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6'}[p] ?? (p === undefined ? '-' : String(p)));
function endpoint(e, addr, port) {
  if (e[addr] === undefined) return '*';
  const a = e[addr].includes(':') ? `[${e[addr]}]` : e[addr];
  return e[port] === undefined ? a : `${a}:${e[port]}`;
}
function actionText(a) {
  if (!a) return '';
  if (typeof a === 'string') return a;
  return a.type + (a.callout ? ` ${state.names[a.callout] ? `"${state.names[a.callout]}"` : a.callout}` : '');
}
// A filter's weight as it was given (its effective weight, 64 bits, is more than a JS number holds exactly).
const weightText = (w) => w === undefined ? 'auto' : typeof w === 'object' ? JSON.stringify(w) : String(w);
function conditionText(c) {
  const v = c.value && typeof c.value === 'object' ? JSON.stringify(c.value) : c.value;
  return `${c.field} ${c.match && c.match !== 'EQUAL' ? c.match + ' ' : '= '}${v}`;
}

// ---- State
const state = {filters: [], names: {}};
async function loadState() {
  let s;
  try {
    s = await api('/api/state');
  } catch (err) {
    return showError($('filters'), err);
  }
  $('whoami').textContent = `uid ${s.session.uid}, ${s.session.role} at lfpd`;
  for (const o of [...s.providers, ...s.sublayers, ...s.callouts]) state.names[o.key] = o.name;
  $('providers').tBodies[0].replaceChildren(...s.providers.map((p) => el('tr', {},
    el('td', {}, p.name), el('td', {class: 'key'}, p.key), el('td', {}, p.service_name ?? ''), el('td', {}, (p.flags ?? []).join(' ')))));
  $('sublayers').tBodies[0].replaceChildren(...[...s.sublayers].sort((a, b) => b.weight - a.weight).map((l) => el('tr', {},
    el('td', {}, l.name), el('td', {}, l.weight), el('td', {}, state.names[l.provider] ?? l.provider ?? ''), el('td', {class: 'key'}, l.key))));
  state.filters = s.filters;
  $('state-summary').textContent = `${s.providers.length} providers, ${s.sublayers.length} sublayers, ${s.callouts.length} callouts, ` +
    `${s.filter_total} filters` + (s.filters.length < s.filter_total ? ` (the first ${s.filters.length} listed)` : '') +
    Object.entries(s.state.enforcement?.degraded ?? {}).map(([part, why]) => `; degraded: ${part}: ${why}`).join('');
  drawFilters();
}
function drawFilters() {
  const words = $('state-search').value.toLowerCase().split(/\s+/).filter(Boolean);
  const byLayer = new Map();
  for (const f of state.filters) {
    const text = [f.name, f.key, f.id, f.layer, actionText(f.action), state.names[f.sublayer], state.names[f.provider],
      ...(f.conditions ?? []).map(conditionText)].join(' ').toLowerCase();
    if (!words.every((w) => text.includes(w))) continue;
    if (!byLayer.has(f.layer)) byLayer.set(f.layer, []);
    byLayer.get(f.layer).push(f);
  }
  const parts = [];
  for (const [layer, filters] of [...byLayer].sort()) {
    // Highest effective weight first (as doubles: filters whose weights differ only in the last bits may swap).
    filters.sort((a, b) => (b.effective_weight ?? 0) - (a.effective_weight ?? 0));
    parts.push(el('h3', {}, `${layer} (${filters.length})`), el('table', {class: 'filters', 'data-layer': layer},
      el('thead', {}, el('tr', {}, ['id', 'name', 'action', 'weight', 'sublayer', 'conditions', 'key', ''].map((h) => el('th', {}, h)))),
      el('tbody', {}, filters.map((f) => el('tr', {'data-filter': f.key},
        el('td', {}, f.id), el('td', {}, f.name ?? ''), el('td', {class: f.action?.type}, actionText(f.action)),
        el('td', {}, weightText(f.weight)),
        el('td', {}, state.names[f.sublayer] ?? f.sublayer ?? ''),
        el('td', {}, (f.conditions ?? []).map(conditionText).join(', ')), el('td', {class: 'key'}, f.key),
        el('td', {}, el('button', {type: 'button', onclick: () => tryFilter(f)}, 'Arbitrate')))))));
  }
  $('filters').replaceChildren(...(parts.length ? parts : [el('p', {}, 'No filter matches.')]));
}
$('state-search').addEventListener('input', drawFilters);
$('state-reload').addEventListener('click', loadState);

// ---- Arbitration
let layers = [];
function fieldRow(layer, field = '', value = '') {
  const fields = layers.find((l) => l.layer === layer)?.fields ?? [];
  return el('div', {},
    el('select', {class: 'field'}, fields.map((f) => el('option', {selected: f === field}, f))),
    el('input', {class: 'value', value, placeholder: 'value, as on the lfp command line'}),
    el('button', {type: 'button', onclick: (ev) => ev.target.parentElement.remove()}, '×'));
}
function setArbitration(layer, values) {
  $('arb-layer').value = layer;
  $('arb-fields').replaceChildren(...values.map(([f, v]) => fieldRow(layer, f, v)));
}
// A filter's own values (its EQUAL conditions) as the packet.
function tryFilter(f) {
  setArbitration(f.layer, (f.conditions ?? []).filter((c) => (c.match ?? 'EQUAL') === 'EQUAL' && typeof c.value !== 'object')
    .map((c) => [c.field, String(c.value)]));
  location.hash = '#arbitration';
}
async function loadLayers() {
  layers = await api('/api/layers');
  $('arb-layer').replaceChildren(...layers.map((l) => el('option', {}, l.layer)));
  setArbitration('ALE_AUTH_CONNECT_V4', [['IP_REMOTE_ADDRESS', ''], ['IP_REMOTE_PORT', ''], ['IP_PROTOCOL', 'TCP'], ['ALE_APP_ID', '']]);
}
$('arb-layer').addEventListener('change', () => setArbitration($('arb-layer').value, []));
$('arb-add').addEventListener('click', () => $('arb-fields').append(fieldRow($('arb-layer').value)));
$('arb-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const values = {};
  for (const row of $('arb-fields').children) {
    const v = row.querySelector('.value').value.trim();
    if (v) values[row.querySelector('.field').value] = v;
  }
  try {
    drawArbitration(await api('/api/classify', {layer: $('arb-layer').value, values}));
  } catch (err) {
    showError($('arb-result'), err);
  }
});
function drawArbitration(r) {
  const decider = r.filter?.key;
  const head = el('p', {class: 'verdict'}, el('span', {class: r.action}, r.action),
    r.hard ? ' (hard)' : '', r.veto ? ' (veto)' : '',
    r.filter ? ` by filter ${r.filter.id} "${r.filter.name ?? ''}"` : ' (no filter matched: the layer\'s default)');
  const boxes = (r.explain ?? []).map((s) => {
    const decides = s.steps?.some((st) => st.filter?.key === decider);
    return el('div', {class: 'sublayer' + (decides ? ' decider' : s.steps?.length ? ' matched' : '')},
      el('span', {class: 'effect'}, s.effect ?? ''),
      el('strong', {}, s.name ?? s.key), ` weight ${s.weight}`,
      (s.steps ?? []).map((st) => el('div', {class: 'step' + (st.filter?.key === decider && decides ? ' decider' : '')},
        `filter ${st.filter?.id} "${st.filter?.name ?? ''}" → `, el('span', {class: st.outcome}, st.outcome))),
      s.steps?.length ? el('div', {class: 'step'}, `sublayer result: ${s.result ?? 'none'}${s.hard ? ' (hard)' : ''}`) : '');
  });
  $('arb-result').replaceChildren(head, el('div', {class: 'sublayers'}, boxes));
}

// ---- Events (live, Server-Sent Events) and the drops they count
const events = [];  // newest first
const seen = new Set();
const MAX_EVENTS = 1000;
const isDrop = (e) => /DROP/.test(e.type ?? '');
function eventText(e) {
  return [e.time, e.type, e.layer, protoName(e.ip_protocol), endpoint(e, 'local_address', 'local_port'),
    endpoint(e, 'remote_address', 'remote_port'), e.app_id, e.uid, e.filter_name, e.filter_key, e.reason].join(' ');
}
function eventRow(e) {
  return el('tr', {class: isDrop(e) ? 'drop-row' : ''},
    el('td', {}, e.time ?? ''), el('td', {class: isDrop(e) ? 'drop' : ''}, e.type ?? ''), el('td', {}, e.layer ?? ''),
    el('td', {}, protoName(e.ip_protocol)),
    el('td', {}, `${endpoint(e, 'local_address', 'local_port')} → ${endpoint(e, 'remote_address', 'remote_port')}`),
    el('td', {}, e.app_id ?? ''), el('td', {}, e.uid ?? ''),
    el('td', {}, e.filter_key ? `"${e.filter_name ?? ''}" ` : (e.reason ?? ''), e.filter_key ? el('span', {class: 'key'}, e.filter_key) : ''));
}
// Adds an event once (an event listed at start may come live too); live ones go on top.
const eventId = (e) => [e.time, e.type, e.pid, e.local_port, e.remote_address, e.remote_port, e.filter_key].join('|');
function addEvent(e, live) {
  if (seen.has(eventId(e))) return;
  seen.add(eventId(e));
  if (live) events.unshift(e); else events.push(e);
  if (events.length > MAX_EVENTS) seen.delete(eventId(events.pop()));
  const words = $('events-filter').value.toLowerCase().split(/\s+/).filter(Boolean);
  if (live && words.every((w) => eventText(e).toLowerCase().includes(w))) {
    const body = $('events-table').tBodies[0];
    body.prepend(eventRow(e));
    if (body.rows.length > MAX_EVENTS) body.lastChild.remove();
  }
  if (isDrop(e)) countDrop(e);
}
function drawEvents() {
  const words = $('events-filter').value.toLowerCase().split(/\s+/).filter(Boolean);
  $('events-table').tBodies[0].replaceChildren(
    ...events.filter((e) => words.every((w) => eventText(e).toLowerCase().includes(w))).map(eventRow));
}
$('events-filter').addEventListener('input', drawEvents);
function setLive(live, text) {
  $('events-live').dataset.live = live;
  $('events-live').textContent = text;
}
function followEvents() {
  const source = new EventSource('/api/events');
  source.addEventListener('ready', () => setLive(true, 'live'));
  source.addEventListener('message', (m) => addEvent(JSON.parse(m.data), true));
  source.addEventListener('lfpd', (m) => setLive(false, `lfpd: ${JSON.parse(m.data).error.message}`));
  source.addEventListener('error', () => {
    setLive(false, 'not connected; retrying…');
    // An error status (lfpd not running) closes an EventSource for good: a new one, a little later.
    if (source.readyState === EventSource.CLOSED) setTimeout(followEvents, 2000);
  });
}
async function loadRecentEvents() {
  try {
    const since = new Date(Date.now() - DROP_WINDOW_MS).toISOString();
    const r = await api('/api/netevents', {template: {since}, limit: MAX_EVENTS});
    for (const e of r.events) addEvent(e, false);
    drawEvents();
  } catch (err) { /* the banner says why */ }
}

// Drops per layer: counts in 20 s buckets over the last 10 minutes, drawn as inline SVG lines.
const BUCKET_MS = 20000, DROP_WINDOW_MS = 600000, BUCKETS = DROP_WINDOW_MS / BUCKET_MS;
const drops = new Map();  // layer -> Map(bucket number -> count)
const COLORS = ['#b3261e', '#1f5fa8', '#1e7b34', '#8a5a00', '#6b3fa0', '#00796b', '#c2185b', '#455a64'];
function countDrop(e) {
  const bucket = Math.floor(Date.parse(e.time) / BUCKET_MS);
  if (!drops.has(e.layer ?? '?')) drops.set(e.layer ?? '?', new Map());
  const m = drops.get(e.layer ?? '?');
  m.set(bucket, (m.get(bucket) ?? 0) + 1);
  if (!$('drops').hidden) drawDrops();
}
function drawDrops() {
  const svg = $('drops-chart'), W = 800, H = 300, L = 40, B = 24, T = 10, R = 10;
  const last = Math.floor(Date.now() / BUCKET_MS), first = last - BUCKETS + 1;
  const series = [...drops].map(([layer, m]) => [layer, Array.from({length: BUCKETS}, (_, i) => m.get(first + i) ?? 0)]);
  const max = Math.max(1, ...series.flatMap(([, v]) => v));
  const x = (i) => L + (W - L - R) * i / (BUCKETS - 1), y = (v) => H - B - (H - B - T) * v / max;
  const ns = 'http://www.w3.org/2000/svg';
  const svgEl = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const parts = [svgEl('line', {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#999'}),
    svgEl('line', {x1: L, y1: T, x2: L, y2: H - B, stroke: '#999'}),
    svgEl('text', {x: L - 6, y: T + 10, 'text-anchor': 'end', 'font-size': 11}, max),
    svgEl('text', {x: L - 6, y: H - B, 'text-anchor': 'end', 'font-size': 11}, 0),
    svgEl('text', {x: L, y: H - 6, 'font-size': 11}, '10 min ago'),
    svgEl('text', {x: W - R, y: H - 6, 'text-anchor': 'end', 'font-size': 11}, 'now')];
  series.forEach(([layer, v], k) => parts.push(svgEl('polyline', {
    points: v.map((c, i) => `${x(i).toFixed(1)},${y(c).toFixed(1)}`).join(' '), fill: 'none',
    stroke: COLORS[k % COLORS.length], 'stroke-width': 2, 'data-layer': layer})));
  svg.replaceChildren(...parts);
  $('drops-legend').replaceChildren(...(series.length ? series.map(([layer, v], k) => el('li', {},
    el('i', {style: `background:${COLORS[k % COLORS.length]}`}), `${layer}: ${v.reduce((a, b) => a + b, 0)}`))
    : [el('li', {}, 'No drops in the last 10 minutes.')]));
}
setInterval(() => { if (!$('drops').hidden) drawDrops(); }, 5000);

// ---- Diagnose
// "now", an ISO time, or a duration ago (90s, 10m, 2h, 1d), as `lfp diagnose --time` takes it.
function timeOf(text) {
  const m = /^(\d+)([smhd])$/.exec(text);
  if (!m) return text || 'now';
  return new Date(Date.now() - m[1] * {s: 1e3, m: 6e4, h: 36e5, d: 864e5}[m[2]]).toISOString();
}
$('diag-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target), h = {time: timeOf(form.get('time').trim()), window_s: Number(form.get('window'))};
  for (const k of ['app', 'remote', 'local']) if (form.get(k).trim()) h[k] = form.get(k).trim();
  const proto = form.get('protocol').trim(), user = form.get('user').trim();
  if (proto) h.protocol = /^\d+$/.test(proto) ? Number(proto) : proto;
  if (user) h.user = /^\d+$/.test(user) ? Number(user) : user;
  try {
    drawDiagnosis(await api('/api/diagnose', {hypothesis: h}));
  } catch (err) {
    showError($('diag-result'), err);
  }
});
function drawDiagnosis(d) {
  const out = [el('p', {class: 'verdict ' + d.verdict, 'data-verdict': d.verdict}, d.verdict)];
  if (d.verdict === 'confirmed') {
    out.push(el('p', {}, d.cause ?? ''));
    if (d.filter) out.push(el('p', {class: 'diag-filter'}, 'Filter: ', el('strong', {}, `"${d.filter.name ?? ''}"`),
      ` ${d.filter.key} (id ${d.filter.id}) at ${d.filter.layer}, `, el('span', {class: actionText(d.filter.action)}, actionText(d.filter.action)),
      d.filter.in_policy === false ? ', no longer in the policy' : '',
      d.provider ? `; provider "${d.provider.name ?? ''}" ${d.provider.key}` : ''));
    if (d.event) out.push(el('p', {}, 'Event: ', eventText(d.event)));
    const inv = d.involved ?? {};
    if (inv.veto) out.push(el('p', {}, 'A veto was involved.'));
    for (const o of inv.other_filters ?? [])
      out.push(el('p', {}, `Also ${o.outcome} by "${o.name}" ${o.filter}` + (o.provider ? ` of provider ${o.provider}` : '')));
    if (inv.blocked_now !== undefined)
      out.push(el('p', {}, `With the policy as it is now, this traffic is ${inv.blocked_now ? 'still blocked' : 'permitted'}.`));
    if (d.repairs?.length) out.push(el('h3', {}, 'Repairs'), el('ol', {}, d.repairs.map((r) => el('li', {}, r.description))),
      el('p', {class: 'help'}, '`lfp diagnose ... --repair N` applies one, with your own rights.'));
  } else {
    out.push(el('p', {}, d.reason ?? ''));
    for (const f of d.foreign ?? []) out.push(el('p', {}, `Outside LFP (${f.certainty}): ${f.where}: ${f.description}`));
  }
  $('diag-result').replaceChildren(...out);
}

// ---- Prompts: polled; also the console's heartbeat (the banner goes once lfpd answers again)
async function loadPrompts() {
  let pending;
  try {
    pending = (await api('/api/prompts')).pending;
  } catch (err) {
    $('prompts-empty').textContent = err.message;  // (an lfpd without a data path has no prompts)
    return;
  }
  $('prompts-empty').textContent = 'No pending connections.';
  $('prompt-count').hidden = !pending.length;
  $('prompt-count').textContent = pending.length;
  $('prompts-empty').hidden = pending.length > 0;
  const body = $('prompts-table').tBodies[0];
  const shown = new Set([...body.rows].map((r) => r.dataset.id));
  for (const row of [...body.rows]) if (!pending.some((p) => String(p.id) === row.dataset.id)) row.remove();
  for (const p of pending) {
    const waiting = `${(p.waiting_ms / 1000).toFixed(0)} of ${(p.timeout_ms / 1000).toFixed(0)} s`;
    if (shown.has(String(p.id))) {
      body.querySelector(`tr[data-id="${p.id}"] .waiting`).textContent = waiting;
      continue;
    }
    const scope = el('select', {class: 'scope'}, ['once', 'session', 'forever'].map((s) => el('option', {}, s)));
    const answer = (action) => async () => {
      try {
        const r = await api('/api/prompts/answer', {id: p.id, action, scope: scope.value});
        $('prompts-done').textContent = `${action === 'allow' ? 'Allowed' : 'Denied'} ${p.app_id ?? 'the connection'} to ` +
          `${p.remote_address}:${p.remote_port} (${r.scope})` + (r.filter ? `; filter ${r.filter.key} added` : '');
      } catch (err) {
        $('prompts-done').textContent = err.message;
      }
      loadPrompts();
    };
    body.append(el('tr', {'data-id': p.id},
      el('td', {}, p.id), el('td', {}, p.app_id ?? '(unknown app)'), el('td', {}, `uid ${p.uid}, pid ${p.pid}`),
      el('td', {}, `${p.remote_address}:${p.remote_port}/${protoName(p.ip_protocol)}`), el('td', {class: 'waiting'}, waiting),
      el('td', {}, scope, ' ', el('button', {type: 'button', class: 'allow', onclick: answer('allow')}, 'Allow'),
        ' ', el('button', {type: 'button', class: 'deny', onclick: answer('deny')}, 'Deny'))));
  }
}

showTab();
followEvents();
loadLayers().catch(() => {});
loadState();
loadRecentEvents();
loadPrompts();
setInterval(loadPrompts, 1000);
