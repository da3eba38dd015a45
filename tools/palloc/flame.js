// flame.js - the interactive part of `palloc flame` SVGs (embedded by cmd_flame.c at build
// time). Frames are <g class="f"> with data-x/data-w (position and width as fractions of the
// root), data-d (depth), data-n (full name), data-v (total value), data-s (self value) and, in a
// diff (--base), data-b (the same stack's total in the base profile).
//
// The graph fills the window's width and is laid out again when the window is resized: every
// position is computed here from the fractions (the x/width written by cmd_flame.c are for
// viewers without scripts). Labels are fitted with the browser's own text measurement: the full
// name if it fits, else the name without parameters and template arguments
// (foo::Cache<int>::insert(int) -> foo::Cache::insert), else that cut with "..";
// data-drawn="full" or "cut" marks the labels drawn. The full name is always in the hover line
// and the frame's <title>.
//
// Hover: the status line shows name, value, percent (and the change against the base). Click:
// zoom to that frame (its ancestors stay, dimmed); click the root or "Reset zoom" to go back.
// Search (the box, or #search=REGEX): matching frames turn magenta and the status line shows
// their share of the total, each stack counted once (a match inside a match is not added
// again). "Icicle" turns the graph upside down (root at the top: who allocates through a
// wrapper reads downwards). URL fragments, for links and for headless tests: #zoom=NAME,
// #hover=NAME, #search=REGEX, #icicle.
(function () {
  var svg = document.documentElement;
  var X0 = +svg.getAttribute('data-plot-x'), W = +svg.getAttribute('data-plot-width');
  var total = +svg.getAttribute('data-total'), unit = svg.getAttribute('data-unit');
  var FH = +svg.getAttribute('data-frame-height'), TOP = +svg.getAttribute('data-top');
  var H = +svg.getAttribute('height');
  var diff = svg.getAttribute('data-diff') === '1';
  var icicle = svg.getAttribute('data-icicle') === '1';
  var frames = Array.prototype.slice.call(document.querySelectorAll('g.f'));
  var status = document.getElementById('status'), reset = document.getElementById('reset');
  var flip = document.getElementById('flip'), box = document.getElementById('search');
  var boxHolder = document.getElementById('searchbox');
  var base = status.textContent, current = null, matchText = '';

  function human(v) {
    if (unit !== 'bytes') return String(v);
    var u = ['B', 'kB', 'MB', 'GB', 'TB'], i = 0, a = Math.abs(v);
    while (i < u.length - 1 && a >= 1024) { a /= 1024; v /= 1024; i++; }
    return (i ? v.toFixed(2).replace(/\.00$/, '') : String(v)) + u[i];
  }
  function pct(v) { return total ? (100 * v / total).toFixed(2) + '%' : '0%'; }
  function describe(g) {
    var v = +g.getAttribute('data-v'), s = +g.getAttribute('data-s');
    var t = g.getAttribute('data-n') + ': ' + human(v) + ' (' + pct(v) + '), self ' +
      human(s) + ' (' + pct(s) + ')';
    if (diff) {
      var b = +g.getAttribute('data-b'), d = v - b;
      t += '; base ' + human(b) + ', change ' + (d > 0 ? '+' : '') + human(d) +
        (b ? ' (' + (d > 0 ? '+' : '') + (100 * d / b).toFixed(1) + '%)' : ' (new)');
    }
    return t;
  }
  // pprof's simplification of a C++ name: without (...) and <...>, nested.
  function removeMatching(s, open, close) {
    var out = '', depth = 0;
    for (var i = 0; i < s.length; i++) {
      var c = s[i];
      if (c === open) depth++;
      else if (c === close && depth > 0) depth--;
      else if (depth === 0) out += c;
    }
    return depth === 0 ? out : s;
  }
  function shortName(name) {
    if (name.indexOf('::') < 0 && name.indexOf('<') < 0) return name.replace(/\(.*\)( const)?$/, '');
    if (/^operator/.test(name)) return name;
    return removeMatching(removeMatching(name, '(', ')'), '<', '>').replace(/ const$/, '');
  }
  function fitLabel(t, name, w) {
    t.textContent = '';
    t.removeAttribute('data-drawn');
    if (w < 24) return;
    var room = w - 6;
    t.textContent = name;
    if (t.getComputedTextLength() <= room) { t.setAttribute('data-drawn', 'full'); return; }
    var s = shortName(name);
    t.textContent = s;
    if (s !== name && t.getComputedTextLength() <= room) { t.setAttribute('data-drawn', 'cut'); return; }
    // binary search on the short name's prefix; keeps this fast for long C++ names
    var lo = 0, hi = s.length;
    while (lo < hi) {
      var mid = (lo + hi + 1) >> 1;
      t.textContent = s.slice(0, mid) + '..';
      if (t.getComputedTextLength() <= room) lo = mid; else hi = mid - 1;
    }
    if (lo < 2) { t.textContent = ''; return; }
    t.textContent = s.slice(0, lo) + '..';
    t.setAttribute('data-drawn', 'cut');
  }
  function yOf(d) { return icicle ? TOP + d * FH : H - X0 - (d + 1) * FH; }
  function place(g, x, w, dim) {
    var r = g.querySelector('rect'), t = g.querySelector('text'), d = +g.getAttribute('data-d');
    g.style.display = '';
    g.style.opacity = dim ? 0.5 : 1;
    r.setAttribute('x', (X0 + x).toFixed(2));
    r.setAttribute('width', Math.max(w - 0.5, 0.1).toFixed(2));
    r.setAttribute('y', yOf(d).toFixed(1));
    t.setAttribute('x', (X0 + x + 3).toFixed(2));
    t.setAttribute('y', (yOf(d) + FH - 5).toFixed(1));
    fitLabel(t, g.getAttribute('data-n'), w);
  }
  function hide(g) {
    g.style.display = 'none';
    var t = g.querySelector('text');
    t.textContent = '';
    t.removeAttribute('data-drawn');
  }
  function zoom(z) {
    current = z;
    var zx = z ? +z.getAttribute('data-x') : 0, zw = z ? +z.getAttribute('data-w') : 1;
    var zd = z ? +z.getAttribute('data-d') : 0, eps = 1e-12;
    frames.forEach(function (g) {
      var x = +g.getAttribute('data-x'), w = +g.getAttribute('data-w');
      var d = +g.getAttribute('data-d');
      if (d < zd) {
        if (x <= zx + eps && x + w >= zx + zw - eps) place(g, 0, W, true);
        else hide(g);
      } else if (x >= zx - eps && x + w <= zx + zw + eps) {
        place(g, (x - zx) / zw * W, w / zw * W, false);
      } else {
        hide(g);
      }
    });
    reset.style.display = z ? '' : 'none';
    svg.setAttribute('data-zoom', z ? z.getAttribute('data-n') : '');
  }
  // The width of the window: the plot is what is left of it after the margins.
  function layout() {
    var ww = svg.getBoundingClientRect().width || window.innerWidth || (W + 2 * X0);
    W = Math.max(ww - 2 * X0, 100);
    svg.setAttribute('data-plot-width', String(W));
    var right = (X0 + W).toFixed(0);
    // right to left: [search box] Icicle  Reset zoom
    reset.setAttribute('x', right);
    flip.setAttribute('x', (X0 + W - 95).toFixed(0));
    boxHolder.setAttribute('x', (X0 + W - 395).toFixed(0));
    zoom(current);
  }
  // parent of each frame (the frame one level down whose span contains it), for search shares
  var parents = new Map();
  (function () {
    var byDepth = [];
    frames.forEach(function (g) {
      var d = +g.getAttribute('data-d');
      (byDepth[d] = byDepth[d] || []).push(g);
    });
    byDepth.forEach(function (list) {
      list.sort(function (a, b) { return +a.getAttribute('data-x') - +b.getAttribute('data-x'); });
    });
    frames.forEach(function (g) {
      var d = +g.getAttribute('data-d'), x = +g.getAttribute('data-x') + 1e-13;
      var up = byDepth[d - 1];
      if (!up) return;
      var lo = 0, hi = up.length - 1, found = null;
      while (lo <= hi) {
        var mid = (lo + hi) >> 1, px = +up[mid].getAttribute('data-x');
        if (px <= x) { found = up[mid]; lo = mid + 1; } else hi = mid - 1;
      }
      if (found) parents.set(g, found);
    });
  })();
  function search(text) {
    var re = null;
    if (text) {
      try { re = new RegExp(text); } catch (e) {
        re = new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
      }
    }
    var matched = new Set(), sum = 0, n = 0;
    frames.forEach(function (g) {
      var r = g.querySelector('rect');
      if (re && +g.getAttribute('data-d') > 0 && re.test(g.getAttribute('data-n'))) {
        matched.add(g);
        r.setAttribute('fill', '#e040fb');
        g.setAttribute('data-match', '1');
        n++;
      } else {
        r.setAttribute('fill', r.getAttribute('data-fill'));
        g.removeAttribute('data-match');
      }
    });
    matched.forEach(function (g) {
      for (var p = parents.get(g); p; p = parents.get(p)) if (matched.has(p)) return;
      sum += +g.getAttribute('data-v');
    });
    svg.setAttribute('data-search-share', re ? (total ? sum / total : 0).toFixed(6) : '');
    matchText = re ? 'Matched "' + text + '": ' + human(sum) + ' (' + pct(sum) + ') in ' + n +
      ' frame' + (n === 1 ? '' : 's') : '';
    status.textContent = matchText || base;
  }
  frames.forEach(function (g) {
    var r = g.querySelector('rect');
    r.setAttribute('data-fill', r.getAttribute('fill'));
    g.addEventListener('mouseover', function () { status.textContent = describe(g); });
    g.addEventListener('mouseout', function () { status.textContent = matchText || base; });
    g.addEventListener('click', function () {
      zoom(+g.getAttribute('data-d') === 0 ? null : g);
    });
  });
  reset.addEventListener('click', function () { zoom(null); });
  flip.addEventListener('click', function () {
    icicle = !icicle;
    svg.setAttribute('data-icicle', icicle ? '1' : '0');
    flip.textContent = icicle ? 'Flame' : 'Icicle';
    zoom(current);
  });
  if (box) {
    box.addEventListener('input', function () { search(box.value); });
  }
  // relayout when the window (or the frame the SVG is embedded in) changes width
  var timer = null, lastWidth = -1;
  function resized() {
    if (timer) clearTimeout(timer);
    timer = setTimeout(function () {
      var w = svg.getBoundingClientRect().width;
      if (w !== lastWidth) { lastWidth = w; layout(); }
    }, 30);
  }
  window.addEventListener('resize', resized);
  if (window.ResizeObserver) new ResizeObserver(resized).observe(svg);

  var href = location.href || '';
  function fragment(key) {
    var m = new RegExp('[#&]' + key + '=([^#&]*)').exec(href);
    return m ? decodeURIComponent(m[1]) : null;
  }
  if (/[#&]icicle\b/.test(href)) { icicle = true; svg.setAttribute('data-icicle', '1'); }
  flip.textContent = icicle ? 'Flame' : 'Icicle';
  layout();
  // "#zoom=NAME" opens zoomed on the widest frame of that name, through a real click event
  var want = fragment('zoom'), start = null;
  if (want !== null) {
    frames.forEach(function (g) {
      if (g.getAttribute('data-n') === want &&
          (!start || +g.getAttribute('data-w') > +start.getAttribute('data-w'))) start = g;
    });
  }
  if (start) start.dispatchEvent(new MouseEvent('click', {bubbles: true}));
  var s = fragment('search');
  if (s !== null) {
    if (box) box.value = s;
    search(s);
  }
  // "#hover=NAME" sends a real mouseover to that frame (a headless browser has no mouse)
  var hw = fragment('hover');
  if (hw !== null) {
    frames.some(function (g) {
      if (g.getAttribute('data-n') !== hw) return false;
      g.dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));
      return true;
    });
  }
  svg.setAttribute('data-rendered', String(frames.length));
})();
