// flame.js - the interactive part of `palloc flame` SVGs (embedded by cmd_flame.c at build
// time). Frames are <g class="f"> with data-x/data-w (position and width as fractions of the
// root), data-d (depth), data-n (name), data-v (total value), data-s (self value). Labels are
// fitted here with the browser's own text measurement, so a frame's label is only drawn when it
// fits; data-drawn marks the labels that were. Hover: the status line shows name, value and
// percent of the total. Click: zoom to that frame (its ancestors stay, dimmed); click the root
// or "Reset zoom" to go back.
(function () {
  var svg = document.documentElement;
  var W = +svg.getAttribute('data-plot-width'), X0 = +svg.getAttribute('data-plot-x');
  var total = +svg.getAttribute('data-total'), unit = svg.getAttribute('data-unit');
  var frames = Array.prototype.slice.call(document.querySelectorAll('g.f'));
  var status = document.getElementById('status'), reset = document.getElementById('reset');
  var base = status.textContent;

  function human(v) {
    if (unit !== 'bytes') return String(v);
    var u = ['B', 'kB', 'MB', 'GB', 'TB'], i = 0;
    while (i < u.length - 1 && Math.abs(v) >= 1024) { v /= 1024; i++; }
    return (i ? v.toFixed(2).replace(/\.00$/, '') : String(v)) + u[i];
  }
  function pct(v) { return total ? (100 * v / total).toFixed(2) + '%' : '0%'; }
  function describe(g) {
    var v = +g.getAttribute('data-v'), s = +g.getAttribute('data-s');
    return g.getAttribute('data-n') + ': ' + human(v) + ' (' + pct(v) + '), self ' +
      human(s) + ' (' + pct(s) + ')';
  }
  function fitLabel(t, name, w) {
    t.textContent = '';
    t.removeAttribute('data-drawn');
    if (w < 24) return;
    t.textContent = name;
    if (t.getComputedTextLength() > w - 6) {
      var n = name.length;
      // shrink until it fits; binary search keeps this fast for long C++ names
      var lo = 0, hi = n;
      while (lo < hi) {
        var mid = (lo + hi + 1) >> 1;
        t.textContent = name.slice(0, mid) + '..';
        if (t.getComputedTextLength() <= w - 6) lo = mid; else hi = mid - 1;
      }
      if (lo < 2) { t.textContent = ''; return; }
      t.textContent = name.slice(0, lo) + '..';
    }
    t.setAttribute('data-drawn', t.textContent === name ? 'full' : 'cut');
  }
  function place(g, x, w, dim) {
    var r = g.querySelector('rect'), t = g.querySelector('text');
    g.style.display = '';
    g.style.opacity = dim ? 0.5 : 1;
    r.setAttribute('x', (X0 + x).toFixed(2));
    r.setAttribute('width', Math.max(w - 0.5, 0.1).toFixed(2));
    t.setAttribute('x', (X0 + x + 3).toFixed(2));
    fitLabel(t, g.getAttribute('data-n'), w);
  }
  function hide(g) {
    g.style.display = 'none';
    var t = g.querySelector('text');
    t.textContent = '';
    t.removeAttribute('data-drawn');
  }
  function zoom(z) {
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
  frames.forEach(function (g) {
    g.addEventListener('mouseover', function () { status.textContent = describe(g); });
    g.addEventListener('mouseout', function () { status.textContent = base; });
    g.addEventListener('click', function () {
      zoom(+g.getAttribute('data-d') === 0 ? null : g);
    });
  });
  reset.addEventListener('click', function () { zoom(null); });
  // "file.svg#zoom=NAME" opens zoomed on the widest frame of that name (as if clicked).
  var m = /#zoom=([^#]*)/.exec(location.href || '');
  var start = null;
  if (m) {
    var want = decodeURIComponent(m[1]);
    frames.forEach(function (g) {
      if (g.getAttribute('data-n') === want &&
          (!start || +g.getAttribute('data-w') > +start.getAttribute('data-w'))) start = g;
    });
  }
  zoom(null);
  // the zoom goes through a real click event, so a headless test exercises the click handler
  if (start) start.dispatchEvent(new MouseEvent('click', {bubbles: true}));
  // "#hover=NAME" sends a real mouseover to that frame (lets a headless browser test the
  // hover handler without a mouse).
  var h = /#hover=(.*)$/.exec(location.href || '');
  if (h) {
    var hw = decodeURIComponent(h[1]);
    frames.some(function (g) {
      if (g.getAttribute('data-n') !== hw) return false;
      g.dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));
      return true;
    });
  }
  svg.setAttribute('data-rendered', String(frames.length));
})();
