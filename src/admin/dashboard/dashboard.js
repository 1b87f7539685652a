// The consentgate admin dashboard: fetches /dashboard.json from this listener every few
// seconds and fills the page. No inline script or style (the page's CSP allows neither), no
// innerHTML: every value goes in as text.
'use strict';

const REFRESH_MS = 5000;

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

// One row of cells: [text, data-k or null, class].
function row(cells) {
  const tr = el('tr');
  for (const [text, key, cls] of cells) {
    const td = el('td', cls ? { class: cls } : {}, text);
    if (key) td.dataset.k = key;
    tr.append(td);
  }
  return tr;
}

function fillTable(id, rows, emptyText, cols) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...rows);
  if (rows.length === 0) {
    const tr = el('tr');
    tr.append(el('td', { class: 'empty', colspan: String(cols) }, emptyText));
    body.append(tr);
  }
}

function setKey(key, value) {
  for (const e of document.querySelectorAll(`[data-k="${key}"]`)) e.textContent = String(value);
}

function pct(n, total) {
  return total > 0 ? `${(100 * n / total).toFixed(1)} %` : '–';
}

function drawChart(perMinute) {
  const chart = document.getElementById('chart');
  const W = 640, H = 170, left = 34, bottom = 20, top = 8;
  const max = Math.max(1, ...perMinute);
  const slot = (W - left) / perMinute.length;
  const parts = [
    svg('line', { class: 'axis', x1: left, y1: H - bottom, x2: W, y2: H - bottom }),
    svg('text', { x: left - 4, y: top + 8, 'text-anchor': 'end' }, max),
    svg('text', { x: left - 4, y: H - bottom, 'text-anchor': 'end' }, 0),
    svg('text', { x: left, y: H - 4 }, '−60 min'),
    svg('text', { x: W, y: H - 4, 'text-anchor': 'end' }, 'now'),
  ];
  perMinute.forEach((n, i) => {
    const h = (H - bottom - top) * n / max;
    const bar = svg('rect', {
      class: 'bar', x: (left + i * slot + 1).toFixed(1), y: (H - bottom - h).toFixed(1),
      width: Math.max(1, slot - 2).toFixed(1), height: h.toFixed(1),
    });
    bar.append(svg('title', {}, `${60 - i} min ago: ${n}`));
    parts.push(bar);
  });
  chart.replaceChildren(...parts);
}

function render(d) {
  const r = d.requests;
  setKey('requests.total', r.total);
  setKey('requests.gpc', r.gpc);
  fillTable('consent', Object.entries(r.consent).map(([state, n]) =>
    row([[state], [n, `requests.consent.${state}`, 'n'], [pct(n, r.total), null, 'n']])), 'no requests yet', 3);

  const b = d.blocked;
  setKey('blocked.blocked', b.blocked);
  setKey('blocked.would_block', b.would_block);
  setKey('blocked.hour', b.per_minute.reduce((a, n) => a + n, 0));
  drawChart(b.per_minute);
  fillTable('lists', b.lists.map(l =>
    row([[l.list, null, 'key'], [l.blocked, `blocked.list.${l.list}.blocked`, 'n'],
      [l.would_block, `blocked.list.${l.list}.would_block`, 'n']])), 'nothing blocked yet', 3);
  fillTable('rules', b.rules.map(x => row([[x.rule, null, 'key'], [x.count, null, 'n']])), 'nothing matched yet', 2);
  fillTable('hosts', b.hosts.map(x => row([[x.host, null, 'key'], [x.count, null, 'n']])), 'nothing matched yet', 2);

  const fields = ['set_cookie_kept', 'set_cookie_stripped', 'set_cookie_would_strip',
    'request_stripped', 'request_would_strip', 'expired'];
  fillTable('cookies', d.cookies.map(c =>
    row([[c.category], ...fields.map(f => [c[f], `cookies.${c.category}.${f}`, 'n'])])), '', 7);

  setKey('unknown.total', d.unknown_cookies.total);
  fillTable('unknown', d.unknown_cookies.names.map(u =>
    row([[u.site], [u.name, null, 'key'], [u.count, null, 'n']])), 'none seen', 3);

  setKey('receipts.written', d.receipts.written);
  setKey('receipts.dropped', d.receipts.dropped);
  for (const [k, v] of Object.entries(d.errors)) setKey(`errors.${k}`, v);

  fillTable('upstreams', d.upstreams.map(u => {
    const tr = row([[u.site], [u.upstream, null, 'key']]);
    const td = el('td', { class: u.healthy ? 'up' : 'down' }, u.healthy ? 'healthy' : 'down');
    td.dataset.k = `upstream.${u.site}.${u.upstream}`;
    td.dataset.v = String(u.healthy);
    tr.append(td);
    return tr;
  }), 'no origins', 3);

  document.getElementById('updated').textContent = `updated ${d.generated_at}`;
  document.body.dataset.generatedAt = d.generated_at;
}

async function refresh() {
  const error = document.getElementById('error');
  try {
    const res = await fetch('/dashboard.json', { cache: 'no-store' });
    if (!res.ok) throw new Error(`/dashboard.json answered ${res.status}`);
    render(await res.json());
    error.hidden = true;
  } catch (e) {
    error.textContent = `cannot refresh: ${e.message}`;
    error.hidden = false;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
