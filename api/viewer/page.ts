/**
 * The trace viewer page: one self-contained HTML document (inline CSS and script, nothing from a CDN)
 * that carries no data. Its script reads the model from `view/data` and follows `view/stream` with the
 * link token or an operator token, and draws with SVG. The script is plain browser JavaScript in a
 * string: the package has no browser build step, and the page is small enough to do without one. It
 * builds every element with createElement/textContent, so no recorded payload is ever parsed as HTML.
 */

export function viewerPage(nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>Trace viewer · fleetactors</title>
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
<header>
  <strong>fleetactors</strong> trace viewer <span id="title"></span>
  <span id="live" class="badge">connecting…</span>
  <span id="expiry" class="muted"></span>
</header>
<form id="auth" hidden>
  <p id="auth-reason"></p>
  <label>Operator token <input id="auth-token" type="password" autocomplete="off" size="60" placeholder="npm run -s token -- --sub you --role operator"></label>
  <button type="submit">Open</button>
  <span class="muted">kept in this tab only (sessionStorage), never in the address</span>
</form>
<main id="main" hidden>
  <section id="diagram-pane"><svg id="diagram" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="sequence diagram"></svg></section>
  <aside id="detail">
    <nav>
      <button id="first" title="First step (Home)">First</button>
      <button id="back" title="Previous step (←)">◀ Back</button>
      <span id="position"></span>
      <button id="next" title="Next step (→)">Next ▶</button>
      <button id="last" title="Last step (End)">Last</button>
    </nav>
    <h2 id="step-title"></h2>
    <p id="step-route"></p>
    <p id="step-time" class="muted"></p>
    <h3>State change <span id="state-change" class="muted"></span></h3>
    <table id="changes"><thead><tr><th>field</th><th>before</th><th>after</th></tr></thead><tbody></tbody></table>
    <details id="full-state"><summary>Full state</summary><h4>after</h4><pre id="state-after"></pre><h4>before</h4><pre id="state-before"></pre></details>
    <h3>Payload</h3><pre id="payload"></pre>
    <h3>Answer</h3><pre id="outcome"></pre>
    <h3>Journal events persisted</h3><ol id="events"></ol>
    <h3>Replay</h3><p><code id="replay"></code> <button id="copy">Copy</button></p>
  </aside>
</main>
<script nonce="${nonce}">${SCRIPT}</script>
</body>
</html>`;
}

const STYLE = `
:root { --accent: #1f6feb; --mqtt: #c2410c; --kafka: #7c3aed; --muted: #6b7280; --line: #d1d5db; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #111827; background: #f9fafb; }
header { padding: 10px 16px; background: #111827; color: #f9fafb; display: flex; gap: 12px; align-items: baseline; }
header .muted { color: #9ca3af; }
.badge { border-radius: 10px; padding: 1px 8px; font-size: 12px; background: #374151; }
.badge.live { background: #15803d; }
.badge.down { background: #b91c1c; }
.muted { color: var(--muted); }
#auth { margin: 24px 16px; padding: 16px; background: #fff; border: 1px solid var(--line); border-radius: 6px; }
main { display: flex; height: calc(100vh - 42px); }
#diagram-pane { flex: 1; overflow: auto; background: #fff; border-right: 1px solid var(--line); }
#detail { width: clamp(340px, 30vw, 440px); flex: none; overflow: auto; padding: 12px 16px; }
nav { display: flex; gap: 6px; align-items: center; position: sticky; top: -12px; background: #f9fafb; padding: 8px 0; }
nav #position { flex: 1; text-align: center; font-weight: 600; }
button { font: inherit; padding: 3px 10px; border: 1px solid var(--line); border-radius: 4px; background: #fff; cursor: pointer; }
button:disabled { opacity: .4; cursor: default; }
h2 { margin: 8px 0 2px; font-size: 18px; }
h3 { margin: 16px 0 4px; font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: #374151; }
h4 { margin: 6px 0 2px; font-size: 12px; color: var(--muted); }
pre { margin: 0; padding: 8px; background: #fff; border: 1px solid var(--line); border-radius: 4px; font-size: 12px; max-height: 260px; overflow: auto; white-space: pre-wrap; word-break: break-all; }
table { border-collapse: collapse; width: 100%; font-size: 12px; background: #fff; }
th, td { border: 1px solid var(--line); padding: 3px 6px; text-align: left; vertical-align: top; overflow-wrap: break-word; }
th { word-break: normal; white-space: nowrap; }
td.path { width: 110px; word-break: normal; overflow-wrap: anywhere; font-weight: 600; }
td.before { color: #b91c1c; } td.after { color: #15803d; }
ol#events { padding-left: 20px; margin: 0; } ol#events li { margin-bottom: 4px; }
code { background: #eef2ff; padding: 2px 4px; border-radius: 3px; font-size: 12px; }
svg text { font: 12px system-ui, sans-serif; }
svg .head rect { fill: #eef2ff; stroke: #6366f1; }
svg .head text { font-weight: 600; font-size: 11px; text-anchor: middle; }
svg .life { stroke: var(--line); stroke-dasharray: 4 4; }
svg .arrow { cursor: pointer; }
svg .arrow line, svg .arrow path { stroke: #6b7280; stroke-width: 1.3; fill: none; }
svg .arrow text { fill: #374151; }
svg .arrow.reply line, svg .arrow.reply path { stroke-dasharray: 5 3; }
svg .arrow.mqtt line, svg .arrow.mqtt path { stroke: var(--mqtt); } svg .arrow.mqtt text { fill: var(--mqtt); }
svg .arrow.kafka line, svg .arrow.kafka path { stroke: var(--kafka); } svg .arrow.kafka text { fill: var(--kafka); }
svg .arrow.current line, svg .arrow.current path { stroke: var(--accent); stroke-width: 2.6; }
svg .arrow.current text { fill: var(--accent); font-weight: 700; }
svg .band { fill: transparent; }
svg .arrow.current .band { fill: #dbeafe; opacity: .5; }
svg .activation { fill: #e5e7eb; stroke: #9ca3af; }
svg .activation.current { fill: #bfdbfe; stroke: var(--accent); }
svg .arrow .time text { fill: var(--muted); font-size: 11px; font-weight: 400; }
svg .arrow.current .time text { fill: var(--accent); font-weight: 700; }
svg .time .duration { fill: #93c5fd; }
`;

const SCRIPT = `
'use strict';
(function () {
  var base = location.pathname.replace(/\\/+$/, '');
  var id = decodeURIComponent(base.split('/')[2] || '');
  var ACCESS_KEY = 'fleetactors.trace-access.' + id;
  var OPERATOR_KEY = 'fleetactors.operator-token';
  var SVG = 'http://www.w3.org/2000/svg';
  var model = null;
  var current = 0;
  var streamAbort = null;
  var $ = function (selector) { return document.getElementById(selector); };

  // A link's token moves to this tab's sessionStorage and leaves the address bar at once (history, screenshots, Referer).
  var params = new URLSearchParams(location.search);
  if (params.has('access')) {
    sessionStorage.setItem(ACCESS_KEY, params.get('access'));
    history.replaceState(null, '', base);
  }
  document.title = 'Trace ' + id + ' · fleetactors';
  $('title').textContent = id;

  function token() { return sessionStorage.getItem(ACCESS_KEY) || sessionStorage.getItem(OPERATOR_KEY); }

  function askForToken(reason) {
    if (streamAbort) streamAbort.abort();
    $('auth-reason').textContent = reason;
    $('auth').hidden = false;
    setLive('down', 'signed out');
  }

  $('auth').addEventListener('submit', function (event) {
    event.preventDefault();
    var value = $('auth-token').value.trim().replace(/^Bearer\\s+/i, '');
    if (!value) return;
    sessionStorage.removeItem(ACCESS_KEY);
    sessionStorage.setItem(OPERATOR_KEY, value);
    $('auth-token').value = '';
    $('auth').hidden = true;
    start();
  });

  function setLive(kind, text) {
    var badge = $('live');
    badge.className = 'badge' + (kind ? ' ' + kind : '');
    badge.textContent = text;
  }

  function problemText(response, body) {
    try { var problem = JSON.parse(body); return problem.detail || problem.title || response.statusText; } catch (e) { return response.status + ' ' + response.statusText; }
  }

  function start() {
    if (!token()) { askForToken('Open a link from npm run trace -- ' + id + ' --open, or paste an operator token.'); return; }
    fetch(base + '/data', { headers: { authorization: 'Bearer ' + token() } }).then(function (response) {
      return response.text().then(function (body) {
        if (response.status === 401 || response.status === 403) { askForToken(problemText(response, body)); return; }
        if (!response.ok) { setLive('down', problemText(response, body)); return; }
        show(JSON.parse(body), true);
        follow();
      });
    }, function () { setLive('down', 'server unreachable'); });
  }

  // Server-sent events read with fetch, not EventSource: EventSource cannot send the Authorization header.
  function follow() {
    if (streamAbort) streamAbort.abort();
    var controller = new AbortController();
    streamAbort = controller;
    fetch(base + '/stream', { headers: { authorization: 'Bearer ' + token(), accept: 'text/event-stream' }, signal: controller.signal }).then(function (response) {
      if (response.status === 401 || response.status === 403) {
        return response.text().then(function (body) { setLive('down', problemText(response, body)); });
      }
      if (!response.ok || !response.body) { retry(controller); return; }
      setLive('live', 'live');
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffer = '';
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) { retry(controller); return; }
          buffer += decoder.decode(chunk.value, { stream: true });
          var end;
          while ((end = buffer.indexOf('\\n\\n')) >= 0) {
            handleEvent(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
          return pump();
        });
      }
      return pump();
    }).catch(function () { retry(controller); });
  }

  function retry(controller) {
    if (controller.signal.aborted || streamAbort !== controller) return;
    setLive('down', 'reconnecting…');
    setTimeout(function () { if (streamAbort === controller) follow(); }, 2000);
  }

  function handleEvent(text) {
    var type = 'message';
    var data = '';
    text.split('\\n').forEach(function (line) {
      if (line.indexOf('event:') === 0) type = line.slice(6).trim();
      else if (line.indexOf('data:') === 0) data += line.slice(5).trim();
    });
    if (type === 'model' && data) show(JSON.parse(data), false);
    if (type === 'expired') {
      if (streamAbort) streamAbort.abort();
      sessionStorage.removeItem(ACCESS_KEY);
      setLive('down', 'link expired');
      $('expiry').textContent = 'The link has expired: the page stays, but no longer follows. Get a new link (npm run trace -- ' + id + ' --open) or paste an operator token below.';
      $('auth').hidden = false;
      $('auth-reason').textContent = '';
    }
    if (type === 'access' && data) {
      var access = JSON.parse(data);
      if (access.expiresAt) $('expiry').textContent = 'link valid until ' + new Date(access.expiresAt).toLocaleTimeString();
    }
  }

  function show(next, first) {
    var spanOfCurrent = model && model.steps[current] ? model.steps[current].spanId : null;
    var wasAtEnd = model && current === model.steps.length - 1;
    model = next;
    $('main').hidden = false;
    if (!first && spanOfCurrent) {
      var found = model.steps.findIndex(function (step) { return step.spanId === spanOfCurrent; });
      current = found >= 0 ? found : Math.min(current, model.steps.length - 1);
      // Following a live booking: at the last step, a new step moves the view along with it.
      if (wasAtEnd && model.steps.length - 1 > current) current = model.steps.length - 1;
    }
    current = Math.max(0, Math.min(current, model.steps.length - 1));
    $('title').textContent = (model.kind === 'booking' ? 'booking ' : 'trace ') + model.id + ' · ' + model.steps.length + ' steps in ' + model.traceIds.length + ' trace' + (model.traceIds.length === 1 ? '' : 's') + (model.hidden ? ' (' + model.hidden + ' steps of other bookings hidden)' : '');
    drawDiagram();
    showStep();
  }

  function el(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    for (var key in attrs) node.setAttribute(key, String(attrs[key]));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  var GUTTER = 96, RIGHT = 16, HEAD = 56, ROW = 34;
  // Lanes share the pane's width (110-160 px each): six lanes fit beside the detail at 1280 px.
  function columnWidth() {
    var pane = $('diagram-pane').clientWidth || 900;
    return Math.max(110, Math.min(160, Math.floor((pane - GUTTER - RIGHT) / Math.max(1, model.participants.length))));
  }

  // Relative times people read: +12 ms, +1.24 s, +2 min 05 s (absolute ones on hover and in the detail).
  function since(ms) {
    if (ms < 1000) return '+' + Math.round(ms) + ' ms';
    if (ms < 60000) return '+' + (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
    var seconds = Math.round(ms / 1000);
    return '+' + Math.floor(seconds / 60) + ' min ' + String(seconds % 60).padStart(2, '0') + ' s';
  }
  function clock(epochMs) {
    var date = new Date(epochMs);
    return date.toLocaleTimeString([], { hour12: false }) + '.' + String(date.getMilliseconds()).padStart(3, '0');
  }

  function drawDiagram() {
    var svg = $('diagram');
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var COL = columnWidth();
    var column = {};
    model.participants.forEach(function (participant, index) { column[participant.name] = GUTTER + COL / 2 + index * COL; });
    var width = GUTTER + model.participants.length * COL + RIGHT;
    var height = HEAD + (model.arrows.length + 1) * ROW + 20;
    svg.setAttribute('width', width);
    svg.setAttribute('height', height);
    svg.setAttribute('viewBox', '0 0 ' + width + ' ' + height);

    var rowOf = function (index) { return HEAD + (index + 1) * ROW; };
    model.participants.forEach(function (participant) {
      var x = column[participant.name];
      svg.appendChild(el('line', { class: 'life', x1: x, y1: HEAD - 6, x2: x, y2: height - 10 }));
      var head = el('g', { class: 'head' });
      var title = el('title', {}, participant.name);
      head.appendChild(title);
      head.appendChild(el('rect', { x: x - COL / 2 + 8, y: 10, width: COL - 16, height: 32, rx: 5 }));
      head.appendChild(el('text', { x: x, y: 31 }, participant.label));
      head.setAttribute('data-participant', participant.name);
      svg.appendChild(head);
    });
    svg.appendChild(el('text', { x: 8, y: 31, class: 'axis', fill: '#6b7280' }, 'time · took'));

    // Activation bars: from a step's message to its last arrow (its reply, MQTT command or events).
    var span = {};
    model.arrows.forEach(function (arrow, index) {
      var entry = span[arrow.step] || (span[arrow.step] = { first: index, last: index });
      entry.last = index;
    });
    model.steps.forEach(function (step) {
      var entry = span[step.index];
      if (!entry || column[step.to] === undefined) return;
      var top = rowOf(entry.first), bottom = Math.max(rowOf(entry.last), top + 10);
      svg.appendChild(el('rect', { class: 'activation', 'data-step': step.index, x: column[step.to] - 5, y: top, width: 10, height: bottom - top }));
    });

    var maxUs = Math.max.apply(null, model.steps.map(function (step) { return step.durationUs; }).concat([1]));
    model.arrows.forEach(function (arrow, index) {
      var y = rowOf(index);
      var step = model.steps[arrow.step];
      var group = el('g', { class: 'arrow ' + arrow.kind, 'data-step': arrow.step });
      group.appendChild(el('rect', { class: 'band', x: 0, y: y - ROW + 6, width: width, height: ROW }));
      // The time axis: when the step's message arrived (from the first step) and how long its handler took.
      if (span[arrow.step].first === index) {
        var axis = el('g', { class: 'time' });
        axis.appendChild(el('title', {}, clock(step.startedAt) + ' (' + new Date(step.startedAt).toISOString() + ')'));
        axis.appendChild(el('text', { x: 8, y: y - 4 }, since(step.offsetMs)));
        axis.appendChild(el('rect', { class: 'duration', x: 8, y: y + 1, height: 4, width: Math.max(2, 60 * Math.log10(1 + step.durationUs) / Math.log10(1 + maxUs)) }));
        axis.appendChild(el('text', { x: 8 + 62, y: y + 6 }, step.duration));
        group.appendChild(axis);
      }
      var x1 = column[arrow.from], x2 = column[arrow.to];
      if (x1 === x2) {
        group.appendChild(el('path', { d: 'M' + x1 + ' ' + (y - 10) + ' h 40 v 12 h -34', 'marker-end': 'url(#head)' }));
        group.appendChild(el('text', { x: x1 + 46, y: y - 2 }, arrow.label));
      } else {
        var towards = x2 > x1 ? -1 : 1;
        group.appendChild(el('line', { x1: x1 + (x2 > x1 ? 5 : -5), y1: y, x2: x2 + towards * 6, y2: y, 'marker-end': 'url(#head)' }));
        group.appendChild(el('text', { x: Math.min(x1, x2) + 12, y: y - 5 }, arrow.label));
      }
      var tip = el('title', {}, 'step ' + (arrow.step + 1) + ': ' + step.messageType + ' ' + step.from + ' → ' + step.to);
      group.appendChild(tip);
      group.addEventListener('click', function () { go(arrow.step); });
      svg.appendChild(group);
    });

    var defs = el('defs', {});
    var marker = el('marker', { id: 'head', viewBox: '0 0 10 10', refX: 9, refY: 5, markerUnits: 'userSpaceOnUse', markerWidth: 10, markerHeight: 10, orient: 'auto-start-reverse' });
    marker.appendChild(el('path', { d: 'M0 0 L10 5 L0 10 z', fill: 'context-stroke' }));
    defs.appendChild(marker);
    svg.insertBefore(defs, svg.firstChild);
  }

  function pretty(value) { return value === undefined || value === null ? '(none)' : JSON.stringify(value, null, 2); }
  function compact(value) { return value === undefined ? '(absent)' : JSON.stringify(value); }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function showStep() {
    var total = model.steps.length;
    var step = model.steps[current];
    $('position').textContent = total ? 'step ' + (current + 1) + ' / ' + total : 'no steps yet';
    $('first').disabled = $('back').disabled = current <= 0;
    $('next').disabled = $('last').disabled = current >= total - 1;
    document.querySelectorAll('#diagram [data-step]').forEach(function (node) {
      node.classList.toggle('current', Number(node.getAttribute('data-step')) === current);
    });
    if (!step) return;
    $('step-title').textContent = (current + 1) + '. ' + step.messageType;
    $('step-route').textContent = step.from + '  →  ' + step.to;
    $('step-time').textContent = since(step.offsetMs) + ' after the first step, at ' + clock(step.startedAt) + ' (' + new Date(step.startedAt).toISOString() + '); took ' + step.duration + ' · trace ' + step.traceId + ' span ' + step.spanId;
    $('state-change').textContent = step.stateChange ? '— ' + step.stateChange : '';
    var body = document.querySelector('#changes tbody');
    clear(body);
    if (step.changes.length === 0) {
      var empty = document.createElement('tr');
      var cell = document.createElement('td');
      cell.colSpan = 3;
      cell.textContent = step.stateAfter === undefined ? '(no state recorded)' : '(no field changed)';
      empty.appendChild(cell);
      body.appendChild(empty);
    }
    step.changes.forEach(function (change) {
      var row = document.createElement('tr');
      [['path', change.path], ['before', compact(change.before)], ['after', compact(change.after)]].forEach(function (pair) {
        var td = document.createElement('td');
        td.className = pair[0];
        td.textContent = pair[1];
        row.appendChild(td);
      });
      body.appendChild(row);
    });
    $('state-after').textContent = pretty(step.stateAfter);
    $('state-before').textContent = pretty(step.stateBefore);
    $('payload').textContent = pretty(step.payload);
    $('outcome').textContent = step.outcome === undefined ? '(none: told, or answered later)' : pretty(step.outcome);
    var events = $('events');
    clear(events);
    if (step.events.length === 0) {
      var none = document.createElement('li');
      none.className = 'muted';
      none.textContent = 'none';
      events.appendChild(none);
    }
    step.events.forEach(function (event) {
      var item = document.createElement('li');
      var details = document.createElement('details');
      var summary = document.createElement('summary');
      var published = !event.topic ? '' : model.publicEvents === 'kafka' ? '  → Kafka ' + event.topic : '  → public event ' + event.topic + ' (GET /events; no Kafka configured)';
      summary.textContent = event.key + ' #' + event.sequenceNumber + ' ' + event.eventType + published;
      var data = document.createElement('pre');
      data.textContent = pretty(event.data);
      details.appendChild(summary);
      details.appendChild(data);
      item.appendChild(details);
      events.appendChild(item);
    });
    $('replay').textContent = step.replay ? step.replay.command : '(not an actor: nothing to replay)';
    $('copy').disabled = !step.replay;
  }

  function go(index) {
    if (!model || model.steps.length === 0) return;
    current = Math.max(0, Math.min(index, model.steps.length - 1));
    showStep();
    var arrow = document.querySelector('#diagram .arrow.current');
    if (arrow && arrow.scrollIntoView) arrow.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  }

  $('first').addEventListener('click', function () { go(0); });
  $('back').addEventListener('click', function () { go(current - 1); });
  $('next').addEventListener('click', function () { go(current + 1); });
  $('last').addEventListener('click', function () { go(Infinity); });
  $('copy').addEventListener('click', function () {
    var text = $('replay').textContent;
    if (navigator.clipboard) navigator.clipboard.writeText(text).then(function () { $('copy').textContent = 'Copied'; }, function () {});
  });
  document.addEventListener('keydown', function (event) {
    if (event.target && (event.target.tagName === 'INPUT' || event.target.tagName === 'TEXTAREA')) return;
    if (event.key === 'ArrowRight' || event.key === 'ArrowDown' || event.key === 'j') { go(current + 1); event.preventDefault(); }
    else if (event.key === 'ArrowLeft' || event.key === 'ArrowUp' || event.key === 'k') { go(current - 1); event.preventDefault(); }
    else if (event.key === 'Home') { go(0); event.preventDefault(); }
    else if (event.key === 'End') { go(Infinity); event.preventDefault(); }
  });

  start();
})();
`;
