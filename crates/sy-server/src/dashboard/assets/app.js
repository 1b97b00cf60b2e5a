// Switchyard dashboard: polls the admin API once a second and draws what it
// gets. No dependencies; charts are drawn on <canvas> by the code below.
//
// Data: GET /api/stats (time series; after the first answer only the new
// points, ?since=), /upstreams (servers), /status, /reloads. With an admin
// token, every call sends `Authorization: Bearer` (the token is asked for
// when the API answers 401 and kept in sessionStorage).
//
// DOM nodes are created once per route, upstream, server, listener and
// reused; machine-readable values sit in data-* attributes (the end-to-end
// test reads them).
'use strict';

(function () {
  const POLL_MS = 1000;
  const SPAN_MS = 300 * 1000; // the charts show 5 minutes
  const MAX_POINTS = 300;
  const GAP_MS = 5000; // a line is broken across a longer gap
  const TOKEN_KEY = 'switchyard-admin-token';
  const THEME_KEY = 'switchyard-theme';
  const SERIES = ['rps', 'error_rate', 'client_error_rate', 'p50_ms', 'p99_ms'];
  // Listeners: every answer, routed or not; no latency.
  const LISTENER_SERIES = ['rps', 'error_rate', 'client_error_rate', 'connections'];

  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function setText(e, s) {
    s = String(s);
    if (e.textContent !== s) e.textContent = s;
  }

  function setAttr(e, k, v) {
    v = v == null ? '' : String(v);
    if (e.getAttribute(k) !== v) e.setAttribute(k, v);
  }

  function setClass(e, cls, on) {
    if (e.classList.contains(cls) !== on) e.classList.toggle(cls, on);
  }

  // ------------------------------------------------------------ formatting

  const fmt = {
    rps(v) {
      if (v == null) return '–';
      if (v >= 1e6) return (v / 1e6).toFixed(1) + 'M';
      if (v >= 1e4) return (v / 1e3).toFixed(0) + 'k';
      if (v >= 1e3) return (v / 1e3).toFixed(1) + 'k';
      if (v >= 100) return v.toFixed(0);
      if (v >= 10) return v.toFixed(1);
      return v === 0 ? '0' : v.toFixed(2);
    },
    pct(v) {
      if (v == null) return '–';
      const p = v * 100;
      if (p === 0) return '0%';
      if (p < 0.01) return '<0.01%';
      if (p < 1) return p.toFixed(2) + '%';
      if (p < 10) return p.toFixed(1) + '%';
      return p.toFixed(0) + '%';
    },
    ms(v) {
      if (v == null) return '–';
      if (v >= 10000) return (v / 1000).toFixed(1) + ' s';
      if (v >= 1000) return (v / 1000).toFixed(2) + ' s';
      if (v >= 100) return v.toFixed(0) + ' ms';
      if (v >= 10) return v.toFixed(1) + ' ms';
      return v.toFixed(2) + ' ms';
    },
    int(v) {
      return v == null ? '–' : Math.round(v).toLocaleString('en-US');
    },
    dur(s) {
      if (s == null) return '–';
      const d = Math.floor(s / 86400);
      const h = Math.floor((s % 86400) / 3600);
      const m = Math.floor((s % 3600) / 60);
      const sec = Math.floor(s % 60);
      if (d > 0) return d + 'd ' + h + 'h';
      if (h > 0) return h + 'h ' + m + 'm';
      if (m > 0) return m + 'm ' + sec + 's';
      return sec + 's';
    },
    clock(ms) {
      const d = new Date(ms);
      const p = (n) => String(n).padStart(2, '0');
      return p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
    },
    ago(ms) {
      const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
      if (s < 60) return s + ' s ago';
      if (s < 3600) return Math.floor(s / 60) + ' min ago';
      if (s < 86400) return Math.floor(s / 3600) + ' h ago';
      return Math.floor(s / 86400) + ' d ago';
    },
  };

  // The top of a chart's y axis: the next "nice" number at or above v
  // (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^n; their halves read well too).
  function niceCeil(v) {
    if (!(v > 0)) return 1;
    const e = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * e >= v * 0.9999) return m * e;
    return 10 * e;
  }

  function last(a) {
    return a && a.length ? a[a.length - 1] : null;
  }

  // ---------------------------------------------------------------- theme

  const colors = {};
  function readColors() {
    const cs = getComputedStyle(document.documentElement);
    for (const k of ['c-rps', 'c-5xx', 'c-4xx', 'c-p50', 'c-p99', 'c-conn', 'grid', 'faint', 'text', 'panel']) {
      colors[k] = cs.getPropertyValue('--' + k).trim();
    }
    colors.font = cs.getPropertyValue('--sans').trim() || 'sans-serif';
  }

  function storedTheme() {
    try {
      const t = localStorage.getItem(THEME_KEY);
      return t === 'light' || t === 'dark' ? t : 'auto';
    } catch (e) {
      return 'auto';
    }
  }

  function applyTheme(mode) {
    const root = document.documentElement;
    if (mode === 'auto') root.removeAttribute('data-theme');
    else root.setAttribute('data-theme', mode);
    try {
      if (mode === 'auto') localStorage.removeItem(THEME_KEY);
      else localStorage.setItem(THEME_KEY, mode);
    } catch (e) { /* not persisted */ }
    const b = $('theme');
    b.textContent = { auto: 'Auto', light: 'Light', dark: 'Dark' }[mode];
    b.title = 'Theme: ' + (mode === 'auto' ? 'follows the system' : mode) + ' (click to change)';
    b.setAttribute('aria-label', b.title);
    readColors();
    redrawAll();
  }

  // --------------------------------------------------------------- charts

  // A small time-series chart: the last 5 minutes, x by time, y from 0 to
  // a nice maximum, one line per spec.lines entry; hovering shows the
  // values at that time (in every chart of the card).
  class Chart {
    constructor(parent, spec, onHover) {
      this.spec = spec;
      this.root = el('div', 'chart');
      const head = el('div', 'chart-head');
      head.append(el('span', 'chart-title', spec.title));
      const legend = el('span', 'legend');
      this.values = spec.lines.map((l) => {
        const item = el('span');
        item.append(el('i', 'sw ' + l.color), document.createTextNode(l.label + ' '));
        const v = el('b', null, '–');
        item.append(v);
        legend.append(item);
        return v;
      });
      head.append(legend);
      this.canvas = el('canvas');
      this.canvas.setAttribute('role', 'img');
      this.canvas.setAttribute('aria-label', spec.title);
      this.root.append(head, this.canvas);
      parent.append(this.root);
      this.canvas.addEventListener('mousemove', (ev) => {
        const r = this.canvas.getBoundingClientRect();
        onHover((ev.clientX - r.left) / r.width);
      });
      this.canvas.addEventListener('mouseleave', () => onHover(null));
    }

    // t: sample times (ms); data: key -> values aligned with t; hover: a
    // time or null.
    draw(t, data, hover) {
      const spec = this.spec;
      const c = this.canvas;
      const w = c.clientWidth;
      const h = c.clientHeight;
      if (!w || !h) return;
      const dpr = window.devicePixelRatio || 1;
      const W = Math.round(w * dpr);
      const H = Math.round(h * dpr);
      if (c.width !== W || c.height !== H) {
        c.width = W;
        c.height = H;
      }
      const g = c.getContext('2d');
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      g.clearRect(0, 0, w, h);
      const end = t.length ? t[t.length - 1] : Date.now();
      const start = end - SPAN_MS;

      let max = 0;
      for (const l of spec.lines) {
        for (const v of data[l.key] || []) if (v != null && v > max) max = v;
      }
      max = niceCeil(Math.max(max * 1.12, spec.floor));
      if (spec.cap != null) max = Math.min(max, spec.cap);
      const top = 3;
      const bottom = h - 1;
      const X = (tt) => ((tt - start) / SPAN_MS) * w;
      const Y = (v) => bottom - (Math.min(v, max) / max) * (bottom - top);

      // Grid: the top and the middle, labelled; the baseline.
      g.lineWidth = 1;
      g.strokeStyle = colors.grid;
      g.beginPath();
      for (const f of [0, 0.5, 1]) {
        const y = Math.round(Y(max * f)) + 0.5;
        g.moveTo(0, y);
        g.lineTo(w, y);
      }
      g.stroke();

      for (const l of spec.lines) {
        const vals = data[l.key] || [];
        const color = colors[l.color];
        // Runs of points without a gap.
        const runs = [];
        let run = null;
        let prevT = null;
        for (let i = 0; i < t.length; i++) {
          const v = vals[i];
          if (v == null || t[i] < start) continue;
          if (run && t[i] - prevT > (l.bridge ? GAP_MS : 2500)) run = null;
          if (!run) {
            run = [];
            runs.push(run);
          }
          run.push([X(t[i]), Y(v)]);
          prevT = t[i];
        }
        g.strokeStyle = color;
        g.fillStyle = color;
        g.lineWidth = 1.5;
        g.lineJoin = 'round';
        for (const r of runs) {
          if (r.length === 1) {
            g.beginPath();
            g.arc(r[0][0], r[0][1], 1.6, 0, Math.PI * 2);
            g.fill();
            continue;
          }
          if (l.fill) {
            g.globalAlpha = 0.13;
            g.beginPath();
            g.moveTo(r[0][0], bottom);
            for (const p of r) g.lineTo(p[0], p[1]);
            g.lineTo(r[r.length - 1][0], bottom);
            g.closePath();
            g.fill();
            g.globalAlpha = 1;
          }
          g.beginPath();
          g.moveTo(r[0][0], r[0][1]);
          for (let i = 1; i < r.length; i++) g.lineTo(r[i][0], r[i][1]);
          g.stroke();
        }
      }

      // Axis labels over the lines, on a veil of the card's colour.
      g.font = '10px ' + colors.font;
      g.textBaseline = 'middle';
      for (const [v, y] of [
        [max, top + 6],
        [max / 2, Y(max / 2) - 6],
      ]) {
        const text = spec.fmt(v);
        const tw = g.measureText(text).width;
        g.globalAlpha = 0.8;
        g.fillStyle = colors.panel;
        g.fillRect(1, y - 6, tw + 5, 12);
        g.globalAlpha = 1;
        g.fillStyle = colors.faint;
        g.fillText(text, 3, y);
      }

      // The legend shows the hovered point, else the latest one.
      let idx = t.length - 1;
      if (hover != null && t.length) {
        idx = nearest(t, hover);
        const x = Math.round(X(t[idx])) + 0.5;
        g.strokeStyle = colors.faint;
        g.lineWidth = 1;
        g.beginPath();
        g.moveTo(x, top);
        g.lineTo(x, bottom);
        g.stroke();
        for (const l of spec.lines) {
          const v = (data[l.key] || [])[idx];
          if (v == null) continue;
          g.fillStyle = colors[l.color];
          g.beginPath();
          g.arc(x, Y(v), 3, 0, Math.PI * 2);
          g.fill();
        }
      }
      spec.lines.forEach((l, i) => {
        const v = idx >= 0 ? (data[l.key] || [])[idx] : null;
        setText(this.values[i], spec.fmt(v == null ? null : v));
      });
    }
  }

  function nearest(t, at) {
    let lo = 0;
    let hi = t.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (t[mid] < at) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0 && at - t[lo - 1] < t[lo] - at) lo -= 1;
    return lo;
  }

  // A one-line sparkline (connection counts).
  function sparkline(canvas, t, vals) {
    const w = canvas.clientWidth;
    const h = canvas.clientHeight;
    if (!w || !h) return;
    const dpr = window.devicePixelRatio || 1;
    const W = Math.round(w * dpr);
    const H = Math.round(h * dpr);
    if (canvas.width !== W || canvas.height !== H) {
      canvas.width = W;
      canvas.height = H;
    }
    const g = canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const end = t.length ? t[t.length - 1] : Date.now();
    const start = end - SPAN_MS;
    let max = 0;
    for (const v of vals) if (v != null && v > max) max = v;
    max = niceCeil(Math.max(max, 1));
    const X = (tt) => ((tt - start) / SPAN_MS) * w;
    const Y = (v) => h - 1 - (v / max) * (h - 3);
    const pts = [];
    for (let i = 0; i < t.length; i++) if (vals[i] != null && t[i] >= start) pts.push([X(t[i]), Y(vals[i])]);
    g.strokeStyle = colors.grid;
    g.beginPath();
    g.moveTo(0, h - 0.5);
    g.lineTo(w, h - 0.5);
    g.stroke();
    if (pts.length < 2) return;
    g.fillStyle = colors['c-conn'];
    g.globalAlpha = 0.15;
    g.beginPath();
    g.moveTo(pts[0][0], h);
    for (const p of pts) g.lineTo(p[0], p[1]);
    g.lineTo(pts[pts.length - 1][0], h);
    g.fill();
    g.globalAlpha = 1;
    g.strokeStyle = colors['c-conn'];
    g.lineWidth = 1.25;
    g.beginPath();
    g.moveTo(pts[0][0], pts[0][1]);
    for (const p of pts) g.lineTo(p[0], p[1]);
    g.stroke();
  }

  // ------------------------------------------------------------ the store

  // Every series aligned with store.t (sample times), at most MAX_POINTS.
  const store = {
    t: [],
    routes: new Map(),
    upstreams: new Map(),
    listeners: new Map(),
    lastT: null,
    uptime: null,
  };

  function blank(n) {
    return new Array(n).fill(null);
  }

  function merge(api, full) {
    if (full) {
      store.t = [];
      store.routes.clear();
      store.upstreams.clear();
      store.listeners.clear();
    }
    const before = store.t.length;
    const n = api.t.length;
    for (const x of api.t) store.t.push(x);
    const kinds = [
      ['routes', SERIES],
      ['upstreams', SERIES.concat(['connections'])],
      ['listeners', LISTENER_SERIES],
    ];
    for (const [kind, keys] of kinds) {
      const map = store[kind];
      const seen = new Set();
      for (const item of api[kind]) {
        let s = map.get(item.name);
        if (!s) {
          s = { name: item.name };
          for (const k of keys) s[k] = blank(before);
          map.set(item.name, s);
        }
        for (const k of keys) {
          const a = s[k];
          for (const v of item[k] || blank(n)) a.push(v);
        }
        s.meta = item;
        seen.add(item.name);
      }
      // Gone from the configuration.
      for (const name of Array.from(map.keys())) if (!seen.has(name)) map.delete(name);
      // The order of the API (configuration order).
      store[kind + 'Order'] = api[kind].map((i) => i.name);
    }
    const cut = store.t.length - MAX_POINTS;
    if (cut > 0) {
      store.t.splice(0, cut);
      for (const kind of ['routes', 'upstreams', 'listeners']) {
        for (const s of store[kind].values()) {
          for (const k of Object.keys(s)) if (Array.isArray(s[k])) s[k].splice(0, cut);
        }
      }
    }
    if (n) store.lastT = store.t[store.t.length - 1];
    store.uptime = api.uptime_seconds;
  }

  // ----------------------------------------------------------- the cards

  const CHARTS = [
    {
      title: 'Requests / s',
      lines: [{ key: 'rps', label: 'req/s', color: 'c-rps', fill: true }],
      fmt: fmt.rps,
      floor: 1,
    },
    {
      title: 'Errors (share of requests)',
      lines: [
        { key: 'error_rate', label: '5xx', color: 'c-5xx', bridge: true },
        { key: 'client_error_rate', label: '4xx', color: 'c-4xx', bridge: true },
      ],
      fmt: fmt.pct,
      floor: 0.01,
      cap: 1,
    },
    {
      title: 'Latency',
      lines: [
        { key: 'p50_ms', label: 'p50', color: 'c-p50', bridge: true },
        { key: 'p99_ms', label: 'p99', color: 'c-p99', bridge: true },
      ],
      fmt: fmt.ms,
      floor: 1,
    },
  ];

  // The attribute naming each kind of card (listener rows of the
  // connections table already use data-listener).
  const CARD_ATTR = { route: 'data-route', upstream: 'data-upstream', listener: 'data-listener-card' };

  class SeriesCard {
    constructor(kind, name) {
      this.kind = kind; // 'route' | 'upstream' | 'listener'
      this.hover = null;
      const root = (this.root = el('article', 'card'));
      root.setAttribute(CARD_ATTR[kind], name);
      const head = el('header', 'card-head');
      const title = el('div', 'card-title');
      const h3 = el('h3', null, name);
      this.badge = el('span', 'badge bad', 'panic');
      this.badge.hidden = true;
      h3.append(this.badge);
      this.sub = el('div', 'sub', '');
      title.append(h3, this.sub);
      const stats = el('div', 'stats');
      const stat = (k) => {
        const s = el('div', 'stat');
        const v = el('span', 'v', '–');
        s.append(v, el('span', 'k', k));
        stats.append(s);
        return { box: s, v };
      };
      this.rps = stat('req/s');
      this.err = stat('5xx');
      this.cerr = stat('4xx');
      // A listener has no latency of its own: its client connections.
      this.p99 = stat(kind === 'listener' ? 'conns' : 'p99');
      head.append(title, stats);
      root.append(head);
      this.extra = el('div', 'extra');
      this.extra.hidden = true;
      root.append(this.extra);
      const onHover = (frac) => {
        if (frac == null || !this.t || !this.t.length) this.hover = null;
        else this.hover = this.t[this.t.length - 1] - SPAN_MS + frac * SPAN_MS;
        this.draw();
      };
      const specs = kind === 'listener' ? CHARTS.slice(0, 2) : CHARTS;
      this.charts = specs.map((spec) => new Chart(root, spec, onHover));
      const axis = el('div', 'axis');
      axis.append(el('span', null, '−5 min'), el('span', null, '−2.5 min'), el('span', null, 'now'));
      root.append(axis);
    }

    update(s, t) {
      this.s = s;
      this.t = t;
      const rps = last(s.rps);
      const err = last(s.error_rate);
      const cerr = last(s.client_error_rate);
      const p50 = last(s.p50_ms);
      const p99 = last(s.p99_ms);
      setText(this.rps.v, fmt.rps(rps));
      setText(this.err.v, fmt.pct(err));
      setText(this.cerr.v, fmt.pct(cerr));
      if (this.kind === 'listener') setText(this.p99.v, fmt.int(last(s.connections)));
      else setText(this.p99.v, fmt.ms(p99));
      setClass(this.err.box, 'bad', err != null && err >= 0.01);
      setClass(this.err.box, 'warn', err != null && err > 0 && err < 0.01);
      setClass(this.cerr.box, 'warn', cerr != null && cerr >= 0.05);
      setClass(this.root, 'alert', err != null && err >= 0.05);
      const r = this.root;
      setAttr(r, 'data-rps', rps == null ? '' : rps);
      setAttr(r, 'data-error-rate', err);
      setAttr(r, 'data-client-error-rate', cerr);
      setAttr(r, 'data-p50-ms', p50);
      setAttr(r, 'data-p99-ms', p99);
      setAttr(r, 'data-requests-total', s.meta.requests_total);
    }

    draw() {
      if (!this.s) return;
      for (const c of this.charts) c.draw(this.t, this.s, this.hover);
    }
  }

  function routeSubtitle(target) {
    if (!target) return '';
    switch (target.kind) {
      case 'upstream':
        return '→ ' + target.upstreams.join(', ');
      case 'split':
        return 'split → ' + target.upstreams.join(', ');
      case 'respond':
        return 'responds ' + target.status;
      case 'redirect':
        return 'redirects ' + target.status + ' → ' + target.location;
      default:
        return '';
    }
  }

  const cards = { listener: new Map(), route: new Map(), upstream: new Map() };

  // Keeps `container`'s children in `order` (moving nodes only when the
  // order changed) and drops the ones no longer listed.
  function reconcile(container, map, order, make) {
    const empty = container.querySelector(':scope > .empty');
    for (const [name, item] of map) {
      if (!order.includes(name)) {
        item.root.remove();
        map.delete(name);
      }
    }
    let prev = null;
    for (const name of order) {
      let item = map.get(name);
      if (!item) {
        item = make(name);
        map.set(name, item);
      }
      const want = prev ? prev.nextSibling : container.firstChild;
      if (want !== item.root) container.insertBefore(item.root, want);
      prev = item.root;
    }
    if (empty) empty.hidden = order.length > 0;
    if (empty && order.length > 0 && container.lastChild !== empty) container.append(empty);
  }

  let upstreamInfo = new Map(); // name -> /upstreams entry

  function renderCards() {
    const t = store.t;
    reconcile($('listener-cards'), cards.listener, store.listenersOrder || [], (n) => new SeriesCard('listener', n));
    for (const [name, card] of cards.listener) {
      const s = store.listeners.get(name);
      if (!s) continue;
      setText(card.sub, listenerAddrs.get(name) || '');
      card.update(s, t);
    }
    reconcile($('routes'), cards.route, store.routesOrder || [], (n) => new SeriesCard('route', n));
    for (const [name, card] of cards.route) {
      const s = store.routes.get(name);
      if (!s) continue;
      setText(card.sub, routeSubtitle(s.meta.target));
      card.update(s, t);
    }
    reconcile($('upstreams'), cards.upstream, store.upstreamsOrder || [], (n) => new SeriesCard('upstream', n));
    for (const [name, card] of cards.upstream) {
      const s = store.upstreams.get(name);
      if (!s) continue;
      const u = upstreamInfo.get(name);
      if (u) {
        const avail = u.servers.filter((x) => serverState(x) === 'healthy').length;
        setText(card.sub, u.balancer);
        card.badge.hidden = !u.panic;
        card.extra.hidden = false;
        setExtra(card, [
          ['servers up', avail + '/' + u.servers.length],
          ['in flight', fmt.int(u.requests_in_flight)],
          ['connections', fmt.int(u.connections)],
          ['pending', fmt.int(u.pending_requests)],
          ['p95', fmt.ms(u.latency_p95_ms)],
        ]);
      }
      card.update(s, t);
    }
  }

  function setExtra(card, pairs) {
    if (!card.extraVals) {
      card.extraVals = pairs.map(([k]) => {
        const span = el('span', null, k + ' ');
        const b = el('b', null, '–');
        span.append(b);
        card.extra.append(span);
        return b;
      });
    }
    pairs.forEach(([, v], i) => setText(card.extraVals[i], v));
  }

  // -------------------------------------------------------------- summary

  const tiles = new Map();
  function tile(key, label) {
    let x = tiles.get(key);
    if (!x) {
      const root = el('div', 'tile');
      root.setAttribute('data-tile', key);
      const v = el('div', 'v', '–');
      const s = el('div', 's', '');
      root.append(el('div', 'k', label), v, s);
      $('summary').append(root);
      x = { root, v, s };
      tiles.set(key, x);
    }
    return x;
  }

  function renderSummary() {
    // Totals over the listeners: every request answered, routed or not
    // (a 404 "no route" counts; a route's series would miss it).
    let rps = 0;
    let errs = 0;
    let cerrs = 0;
    for (const s of store.listeners.values()) {
      const r = last(s.rps) || 0;
      rps += r;
      errs += r * (last(s.error_rate) || 0);
      cerrs += r * (last(s.client_error_rate) || 0);
    }
    let worst = null;
    let worstName = '';
    for (const s of store.routes.values()) {
      const p = last(s.p99_ms);
      if (p != null && (worst == null || p > worst)) {
        worst = p;
        worstName = s.name;
      }
    }
    const a = tile('rps', 'Requests / s');
    setText(a.v, fmt.rps(rps));
    setText(a.s, 'all listeners, routed or not');
    setAttr(a.root, 'data-value', rps);
    const e = tile('5xx', '5xx rate');
    const er = rps > 0 ? errs / rps : null;
    setText(e.v, fmt.pct(er));
    setText(e.s, 'of requests answered');
    setAttr(e.root, 'data-value', er);
    setClass(e.root, 'bad', er != null && er >= 0.01);
    setClass(e.root, 'warn', er != null && er > 0 && er < 0.01);
    const c = tile('4xx', '4xx rate');
    const cr = rps > 0 ? cerrs / rps : null;
    setText(c.v, fmt.pct(cr));
    setText(c.s, 'incl. no-route 404s');
    setAttr(c.root, 'data-value', cr);
    const p = tile('p99', 'Slowest p99');
    setText(p.v, fmt.ms(worst));
    setText(p.s, worstName ? 'route ' + worstName : 'no requests');
    let down = 0;
    for (const s of store.listeners.values()) down += last(s.connections) || 0;
    const d = tile('client-conns', 'Client connections');
    setText(d.v, fmt.int(down));
    setText(d.s, store.listeners.size + (store.listeners.size === 1 ? ' listener' : ' listeners'));
    let up = 0;
    for (const s of store.upstreams.values()) up += last(s.connections) || 0;
    const u = tile('upstream-conns', 'Upstream connections');
    setText(u.v, fmt.int(up));
    setText(u.s, 'open to ' + store.upstreams.size + (store.upstreams.size === 1 ? ' upstream' : ' upstreams'));
    let total = 0;
    let avail = 0;
    for (const x of upstreamInfo.values()) {
      for (const s of x.servers) {
        total++;
        if (serverState(s) === 'healthy') avail++;
      }
    }
    const sv = tile('servers', 'Servers available');
    setText(sv.v, total ? avail + ' / ' + total : '–');
    setText(sv.s, total - avail ? total - avail + ' out of rotation' : 'all in rotation');
    setClass(sv.root, 'bad', total > 0 && avail < total);
    setClass(sv.root, 'good', total > 0 && avail === total);
  }

  // -------------------------------------------------------------- servers

  // One word per server: unhealthy (active health check), ejected
  // (outlier detection), draining (admin API), else healthy.
  function serverState(s) {
    if (s.health === 'unhealthy') return 'unhealthy';
    if (s.ejected) return 'ejected';
    if (s.draining) return 'draining';
    return 'healthy';
  }

  const groups = new Map();

  function makeGroup(name) {
    const root = el('div', 'group');
    root.setAttribute('data-upstream-group', name);
    const head = el('div', 'group-head');
    head.append(el('h3', null, name));
    const sub = el('span', 'sub', '');
    head.append(sub);
    const grid = el('div', 'servers');
    root.append(head, grid);
    return { root, sub, grid, tiles: new Map() };
  }

  function makeServer(addr) {
    const root = el('div', 'server');
    root.setAttribute('data-server', addr);
    const top = el('div', 'server-top');
    top.append(el('span', 'addr', addr));
    const state = el('span', 'state', '');
    top.append(state);
    const dl = el('dl');
    const field = (k) => {
      dl.append(el('dt', null, k));
      const dd = el('dd', null, '–');
      dl.append(dd);
      return dd;
    };
    const weight = field('weight');
    const active = field('active');
    const ewma = field('ewma');
    const ejections = field('ejections');
    // dt/dd pairs laid out as a 4-column grid: labels row, values row.
    const dts = Array.from(dl.querySelectorAll('dt'));
    const dds = Array.from(dl.querySelectorAll('dd'));
    dl.replaceChildren(...dts, ...dds);
    const note = el('div', 'note', '');
    note.hidden = true;
    const ramp = el('div', 'ramp');
    const bar = el('i');
    ramp.append(bar);
    ramp.hidden = true;
    root.append(top, dl, note, ramp);
    return { root, state, weight, active, ewma, ejections, note, ramp, bar };
  }

  function renderServers(ups) {
    const container = $('servers');
    reconcile(container, groups, ups.map((u) => u.name), makeGroup);
    for (const u of ups) {
      const g = groups.get(u.name);
      const avail = u.servers.filter((x) => serverState(x) === 'healthy').length;
      const hc = u.health_check ? u.health_check.type + ' check every ' + u.health_check.interval_ms + ' ms' : 'no active health check';
      setText(g.sub, avail + '/' + u.servers.length + ' available · ' + u.balancer + ' · ' + hc + (u.panic ? ' · PANIC: balancing over all servers' : ''));
      reconcile(g.grid, g.tiles, u.servers.map((s) => s.address), makeServer);
      for (const s of u.servers) {
        const x = g.tiles.get(s.address);
        const st = serverState(s);
        setAttr(x.root, 'data-upstream', u.name);
        setAttr(x.root, 'data-health', st);
        setAttr(x.root, 'data-ejected', s.ejected);
        setAttr(x.root, 'data-draining', s.draining);
        setAttr(x.root, 'data-active', s.active_requests);
        setAttr(x.root, 'data-weight', s.weight);
        setText(x.state, st === 'ejected' ? 'ejected ' + fmt.dur(Math.ceil(s.ejected_for_ms / 1000)) : st);
        setText(x.weight, s.weight);
        setText(x.active, fmt.int(s.active_requests));
        setText(x.ewma, s.ewma_latency_ms > 0 ? fmt.ms(s.ewma_latency_ms) : '–');
        setText(x.ejections, s.ejections);
        // Other conditions than the one shown.
        const also = [];
        if (st !== 'ejected' && s.ejected) also.push('ejected');
        if (st !== 'draining' && s.draining) also.push('draining');
        x.note.hidden = also.length === 0;
        setText(x.note, also.length ? 'also ' + also.join(', ') : '');
        const ramping = s.slow_start_factor < 1;
        x.ramp.hidden = !ramping;
        if (ramping) {
          const w = Math.round(s.slow_start_factor * 100) + '%';
          if (x.bar.style.width !== w) x.bar.style.width = w;
          x.ramp.title = 'slow start: ' + w + ' of its weight';
        }
      }
    }
  }

  // ---------------------------------------------------------- connections

  const connRows = { listener: new Map(), upstream: new Map() };

  function makeConnRow(kind, name) {
    const root = el('tr');
    root.setAttribute('data-' + kind, name);
    const addr = el('td', 'mono', '');
    const now = el('td', 'num', '–');
    const td = el('td');
    const canvas = el('canvas');
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', name + ' connections, last 5 minutes');
    td.append(canvas);
    root.append(el('td', null, name), addr, now, td);
    return { root, addr, now, canvas };
  }

  let listenerAddrs = new Map();

  function renderConnections() {
    for (const [kind, map, tbody, order] of [
      ['listener', store.listeners, $('listeners'), store.listenersOrder || []],
      ['upstream', store.upstreams, $('upstream-conns'), store.upstreamsOrder || []],
    ]) {
      const rows = connRows[kind];
      reconcile(tbody, rows, order, (n) => makeConnRow(kind, n));
      for (const [name, row] of rows) {
        const s = map.get(name);
        if (!s) continue;
        const v = last(s.connections);
        setText(row.now, fmt.int(v));
        setAttr(row.root, 'data-connections', v);
        if (kind === 'listener') setText(row.addr, listenerAddrs.get(name) || '');
        sparkline(row.canvas, store.t, s.connections);
      }
    }
  }

  // -------------------------------------------------------------- reloads

  let reloadsKey = '';

  function renderReloads(list) {
    const ol = $('reloads');
    const key = JSON.stringify(list);
    if (key !== reloadsKey) {
      reloadsKey = key;
      ol.replaceChildren();
      if (!list.length) ol.append(el('li', 'empty', 'No reload since start.'));
      for (const r of list.slice().reverse()) {
        const li = el('li');
        li.setAttribute('data-version', r.version);
        li.setAttribute('data-ok', r.ok);
        const row = el('div', 'reload-row');
        row.append(el('span', 'badge ' + (r.ok ? 'ok' : 'bad'), r.ok ? 'applied' : 'rejected'));
        row.append(el('span', 'when', fmt.clock(r.at_unix * 1000)));
        const ago = el('span', 'ago', '');
        ago.setAttribute('data-at', r.at_unix * 1000);
        row.append(ago);
        row.append(el('span', 'trigger', 'by ' + r.trigger));
        row.append(el('span', null, r.ok ? '→ config ' + r.version : 'kept config ' + r.version));
        li.append(row);
        if (r.message) {
          const d = el('details');
          d.append(el('summary', null, 'errors'), el('pre', null, r.message));
          li.append(d);
        }
        ol.append(li);
      }
    }
    for (const a of ol.querySelectorAll('.ago')) setText(a, fmt.ago(Number(a.getAttribute('data-at'))));
  }

  // ----------------------------------------------------------------- polling

  function token() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch (e) {
      return null;
    }
  }

  class HttpError extends Error {
    constructor(status, path) {
      super(path + ' answered ' + status);
      this.status = status;
    }
  }

  async function api(path) {
    const headers = {};
    const tk = token();
    if (tk) headers.Authorization = 'Bearer ' + tk;
    const r = await fetch(path, { headers, cache: 'no-store' });
    if (!r.ok) throw new HttpError(r.status, path);
    return r.json();
  }

  function setState(s) {
    setAttr(document.body, 'data-state', s);
    setText($('live-text'), { live: 'live', stale: 'stale', error: 'offline', auth: 'token needed', loading: 'connecting' }[s] || s);
  }

  let tickNo = 0;
  let lastOk = 0;
  let lastVersion = null;
  let timer = null;
  let busy = false;

  async function tick() {
    if (busy) return;
    busy = true;
    clearTimeout(timer);
    const began = Date.now();
    try {
      const full = store.lastT == null;
      const statsPath = full ? '/api/stats' : '/api/stats?since=' + store.lastT;
      const [stats, ups, status] = await Promise.all([api(statsPath), api('/upstreams'), api('/status')]);
      // A restarted process: start over.
      if (!full && store.uptime != null && stats.uptime_seconds < store.uptime) {
        store.lastT = null;
        busy = false;
        return tick();
      }
      merge(stats, full);
      upstreamInfo = new Map(ups.upstreams.map((u) => [u.name, u]));
      listenerAddrs = new Map((status.listeners || []).map((l) => [l.name, l.address]));
      const v = status.config_version;
      if (tickNo % 5 === 0 || v !== lastVersion) {
        const r = await api('/reloads');
        renderReloads(r.reloads || []);
      }
      lastVersion = v;
      tickNo++;
      renderStatus(status);
      render(ups.upstreams);
      lastOk = Date.now();
      setState('live');
      setText($('error-text'), '');
      setText($('updated'), fmt.clock(lastOk));
    } catch (e) {
      if (e instanceof HttpError && e.status === 401) {
        askToken(token() ? 'The token was not accepted. Enter the admin token.' : 'This admin API asks for a bearer token.');
        setState('auth');
        busy = false;
        return; // polling resumes once a token is entered
      }
      setState(Date.now() - lastOk < 5000 ? 'stale' : 'error');
      setText($('error-text'), String(e.message || e));
    }
    busy = false;
    timer = setTimeout(tick, Math.max(100, POLL_MS - (Date.now() - began)));
  }

  function renderStatus(s) {
    const cv = $('config-version');
    setText(cv, s.config_version);
    setAttr(cv, 'data-value', s.config_version);
    setText($('uptime'), fmt.dur(s.uptime_seconds));
    setText($('version'), s.version);
    setText($('workers'), s.workers);
  }

  let hidden = false;
  let lastUps = [];

  function render(ups) {
    lastUps = ups;
    // Values and data attributes always; drawing only while visible.
    renderCards();
    renderServers(ups);
    renderSummary();
    if (!hidden) redrawAll();
  }

  let rafPending = false;
  function redrawAll() {
    if (rafPending) return;
    rafPending = true;
    requestAnimationFrame(() => {
      rafPending = false;
      for (const c of cards.listener.values()) c.draw();
      for (const c of cards.route.values()) c.draw();
      for (const c of cards.upstream.values()) c.draw();
      renderConnections();
    });
  }

  // ------------------------------------------------------------------ auth

  function askToken(why) {
    setText($('auth-why'), why);
    $('auth').hidden = false;
    $('token-input').value = '';
    $('token-input').focus();
  }

  function setupAuth() {
    $('auth-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const v = $('token-input').value.trim();
      if (!v) return;
      try {
        sessionStorage.setItem(TOKEN_KEY, v);
      } catch (e) { /* kept nowhere: every call will ask again */ }
      $('auth').hidden = true;
      $('forget-token').hidden = false;
      tick();
    });
    const forget = $('forget-token');
    forget.hidden = !token();
    forget.addEventListener('click', () => {
      try {
        sessionStorage.removeItem(TOKEN_KEY);
      } catch (e) { /* nothing kept */ }
      forget.hidden = true;
      tick();
    });
  }

  // ------------------------------------------------------------------ start

  function start() {
    readColors();
    let mode = storedTheme();
    applyTheme(mode);
    $('theme').addEventListener('click', () => {
      mode = { auto: 'dark', dark: 'light', light: 'auto' }[mode];
      applyTheme(mode);
    });
    const mq = window.matchMedia('(prefers-color-scheme: dark)');
    const onScheme = () => {
      readColors();
      redrawAll();
    };
    if (mq.addEventListener) mq.addEventListener('change', onScheme);
    window.addEventListener('resize', redrawAll);
    document.addEventListener('visibilitychange', () => {
      hidden = document.hidden;
      if (!hidden) {
        render(lastUps);
        tick();
      }
    });
    setupAuth();
    tick();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
