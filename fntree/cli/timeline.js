// fntree's timeline page: draws the run held in #fntree-data as SVG, with zoom and pan.
// Plain JavaScript, nothing loaded from elsewhere (the page works offline).
//
// Time has two coordinates: "real" seconds from the run's first start, and "display"
// seconds, where each idle gap between segments is collapsed to GAP display seconds.
// The view is a window [v0, v1] of display time; at every scale, jobs narrower than
// MIN_BAR pixels that touch are drawn as one aggregate bar, so none is lost.
(function () {
  "use strict";
  var body = document.body;
  function fail(message) {
    body.setAttribute("data-error", String(message));
    var chart = document.getElementById("chart");
    if (chart) {
      var p = document.createElement("p");
      p.className = "error";
      p.textContent = "The timeline could not be drawn: " + message;
      chart.appendChild(p);
    }
  }
  window.addEventListener("error", function (e) { fail(e.message); });

  var D = JSON.parse(document.getElementById("fntree-data").textContent);
  var J = D.jobs, N = J.s.length, SEG = D.segments;
  var LEFT = 64, RIGHT = 16, TOP = 34, MIN_BAR = 1.5, SVGNS = "http://www.w3.org/2000/svg";
  var chart = document.getElementById("chart");
  var viewText = document.getElementById("view");

  // -- segments: real time <-> display time --------------------------------------------
  var active = 0;
  SEG.forEach(function (s) { active += s[1] - s[0]; });
  var GAP = SEG.length > 1 ? Math.max(active * 0.03, 1e-3) : 0;
  var OFF = [], off = 0;
  SEG.forEach(function (s) { OFF.push(off); off += s[1] - s[0] + GAP; });
  var TOTAL = Math.max(off - GAP, 1e-3);
  function segmentOf(t) {
    var lo = 0, hi = SEG.length - 1;
    while (lo < hi) {
      var mid = (lo + hi + 1) >> 1;
      if (SEG[mid][0] <= t) { lo = mid; } else { hi = mid - 1; }
    }
    return lo;
  }
  function disp(t) {
    var k = segmentOf(t);
    return OFF[k] + Math.min(Math.max(t - SEG[k][0], 0), SEG[k][1] - SEG[k][0]);
  }

  // -- lanes: where each lane's jobs start in the (lane, start)-sorted columns -----------
  var LANES = D.lanes, laneStart = new Array(LANES + 1).fill(N);
  for (var i = N - 1; i >= 0; i--) { laneStart[J.l[i]] = i; }
  for (var l = LANES - 1; l >= 0; l--) { laneStart[l] = Math.min(laneStart[l], laneStart[l + 1]); }
  var DS = new Float64Array(N), DE = new Float64Array(N);  // display start and end of each job
  for (i = 0; i < N; i++) { DS[i] = disp(J.s[i]); DE[i] = disp(J.s[i] + J.w[i]); }

  var laneH = Math.max(6, Math.min(24, Math.floor(480 / Math.max(LANES + 1, 1))));
  var HEIGHT = TOP + (LANES + 1) * laneH + 30;
  var view = [0, TOTAL];

  // -- formatting ------------------------------------------------------------------------
  function secs(v) {
    if (v >= 120) { return Math.floor(v / 60) + "m" + pad(Math.floor(v % 60)) + "s"; }
    if (v >= 1) { return v.toFixed(1) + "s"; }
    return (v * 1000).toFixed(v >= 0.001 ? 0 : 2) + "ms";
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function memory(kib) {
    var v = kib * 1024, units = ["B", "KiB", "MiB", "GiB", "TiB"], u = 0;
    while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
    return (u ? v.toFixed(1) : v.toFixed(0)) + " " + units[u];
  }
  // One label format for the whole view, chosen by the tick step and the largest time shown.
  function labeller(step, largest) {
    var digits = step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step) - 1e-9));
    return function (t) {
      var whole = Math.floor(t + 1e-9), frac = digits ? (t - whole).toFixed(digits).slice(1) : "";
      if (largest >= 3600) {
        return Math.floor(whole / 3600) + ":" + pad(Math.floor(whole % 3600 / 60)) + ":" +
          pad(whole % 60) + frac;
      }
      if (largest >= 60) { return Math.floor(whole / 60) + ":" + pad(whole % 60) + frac; }
      return (digits ? t.toFixed(digits) : String(whole)) + "s";
    };
  }
  function niceStep(raw) {
    var p = Math.pow(10, Math.floor(Math.log10(raw))), steps = [1, 2, 5, 10];
    for (var k = 0; k < steps.length; k++) { if (p * steps[k] >= raw) { return p * steps[k]; } }
    return p * 10;
  }
  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  // -- drawing ---------------------------------------------------------------------------
  function draw() {
    var width = Math.max(600, (chart.clientWidth || 1200) - 4);
    var plot = width - LEFT - RIGHT, scale = plot / (view[1] - view[0]);
    function X(d) { return LEFT + (d - view[0]) * scale; }
    var out = [], bars = 0, aggregated = 0;
    out.push('<svg xmlns="' + SVGNS + '" width="' + width + '" height="' + HEIGHT +
      '" font-family="sans-serif" font-size="11" shape-rendering="crispEdges">');
    out.push('<defs><pattern id="agg" width="4" height="4" patternUnits="userSpaceOnUse" ' +
      'patternTransform="rotate(45)"><rect width="2" height="4" fill="#fff" ' +
      'fill-opacity="0.45"/></pattern><clipPath id="plot"><rect x="' + LEFT + '" y="0" width="' +
      plot + '" height="' + HEIGHT + '"/></clipPath></defs>');
    drawAxis(out, X, scale);
    out.push('<text x="4" y="' + (TOP + laneH * 0.75) + '" fill="#c00">failures</text>');
    var every = Math.max(1, Math.ceil(12 / laneH));
    for (var lane = 0; lane < LANES; lane += every) {
      out.push('<text x="4" y="' + (TOP + (lane + 1) * laneH + laneH * 0.75) +
        '" fill="#555">slot ' + (lane + 1) + '</text>');
    }
    out.push('<g clip-path="url(#plot)">');
    for (lane = 0; lane < LANES; lane++) {
      var y = TOP + (lane + 1) * laneH + 1, h = laneH - 3;
      var from = firstVisible(laneStart[lane], laneStart[lane + 1]), pending = null;
      for (var j = from; j < laneStart[lane + 1] && DS[j] <= view[1]; j++) {
        var x0 = X(DS[j]), x1 = X(DE[j]);
        if (x1 - x0 >= MIN_BAR) {
          if (pending) { aggregated += flush(out, pending, y, h); bars++; pending = null; }
          out.push(bar(j, x0, x1 - x0, y, h));
          bars++;
        } else if (pending && x0 - pending.x1 <= 1) {
          pending.x1 = Math.max(pending.x1, x1); pending.jobs.push(j);
        } else {
          if (pending) { aggregated += flush(out, pending, y, h); bars++; }
          pending = {x0: x0, x1: x1, jobs: [j]};
        }
      }
      if (pending) { aggregated += flush(out, pending, y, h); bars++; }
    }
    drawGaps(out, X);
    out.push("</g>");
    drawFailures(out, X, width);  // unclipped: a mark at either end of the run shows whole
    D.leaders.forEach(function (t, k) {
      var x = X(disp(t));
      if (x < LEFT - 1 || x > width - RIGHT + 1) { return; }
      out.push('<line class="leader" x1="' + x.toFixed(1) + '" y1="' + TOP + '" x2="' +
        x.toFixed(1) + '" y2="' + (HEIGHT - 24) + '" stroke="#333" stroke-dasharray="4,3"/>' +
        '<text x="' + (x + 3).toFixed(1) + '" y="' + (HEIGHT - 12) + '" fill="#333">leader ' +
        (k + 1) + '</text>');
    });
    out.push("</svg>");
    chart.innerHTML = out.join("");
    viewText.textContent = "showing " + secs(view[1] - view[0]) + " of " + secs(TOTAL) +
      " active · " + bars.toLocaleString() + " bars, " + aggregated.toLocaleString() +
      " jobs drawn together" + (SEG.length > 1 ? " · " + SEG.length + " segments" : "");
    body.setAttribute("data-bars", String(bars));
    body.setAttribute("data-aggregated", String(aggregated));
    body.setAttribute("data-segments", String(SEG.length));
    body.setAttribute("data-view", view[0].toFixed(6) + "," + view[1].toFixed(6));
    body.setAttribute("data-rendered", String(Number(body.getAttribute("data-rendered") || 0) + 1));
  }

  function firstVisible(lo, hi) {  // the first job of a lane that ends at or after v0
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (DE[mid] < view[0]) { lo = mid + 1; } else { hi = mid; }
    }
    return lo;
  }

  function bar(j, x, w, y, h) {
    var t = D.targets[J.k[j]] || ["?", "#888"];
    var tip = t[0] + " " + J.id[j] + " attempt " + J.a[j] + ": " + secs(J.w[j]) + " wall, " +
      secs(J.c[j]) + " cpu, " + memory(J.m[j]) + " peak memory";
    return '<rect class="job" x="' + x.toFixed(2) + '" y="' + y + '" width="' + w.toFixed(2) +
      '" height="' + h + '" fill="' + t[1] + (w >= 3 ? '" stroke="white" stroke-width="0.3' : "") +
      '"><title>' +
      esc(tip) + "</title></rect>";
  }

  function flush(out, p, y, h) {  // one bar for jobs too narrow to draw apart; how many it holds
    if (p.jobs.length === 1) {
      out.push(bar(p.jobs[0], p.x0, Math.max(p.x1 - p.x0, 1), y, h));
      return 0;
    }
    var counts = {}, wall = 0, top = null;
    p.jobs.forEach(function (j) {
      counts[J.k[j]] = (counts[J.k[j]] || 0) + 1; wall += J.w[j];
      if (top === null || counts[J.k[j]] > counts[top]) { top = J.k[j]; }
    });
    var parts = Object.keys(counts).sort(function (a, b) { return counts[b] - counts[a]; })
      .map(function (k) { return D.targets[k][0] + " × " + counts[k]; });
    var tip = p.jobs.length + " jobs too short to draw apart at this zoom (" + parts.join(", ") +
      "), " + secs(wall) + " of wall time; zoom in to see them";
    var width = Math.max(p.x1 - p.x0, 1), w = width.toFixed(2), x = p.x0.toFixed(2);
    var hatch = width >= 4 ? '<rect x="' + x + '" y="' + y + '" width="' + w + '" height="' + h +
      '" fill="url(#agg)"/>' : "";  // too narrow to show a pattern: the plain colour
    out.push('<g class="agg" data-jobs="' + p.jobs.length + '"><rect x="' + x + '" y="' + y +
      '" width="' + w + '" height="' + h + '" fill="' + D.targets[top][1] + '"/>' + hatch +
      "<title>" + esc(tip) + "</title></g>");
    return p.jobs.length;
  }

  function drawFailures(out, X, width) {
    var groups = [];
    D.failures.forEach(function (f) {
      var x = X(disp(f[0])), last = groups[groups.length - 1];
      if (x < LEFT - 1 || x > width - RIGHT + 1) { return; }  // outside the view
      if (last && x - last.x < 8) { last.items.push(f); } else { groups.push({x: x, items: [f]}); }
    });
    groups.forEach(function (g) {
      var f = g.items[0], tip = g.items.length > 1 ? g.items.length + " failed attempts, e.g. " : "";
      tip += f[1] + " " + f[2] + " attempt " + f[3] + ": " + f[4];
      out.push('<path class="failure" d="M' + (g.x - 5).toFixed(1) + "," + (TOP + 2) + " L" +
        (g.x + 5).toFixed(1) + "," + (TOP + 2) + " L" + g.x.toFixed(1) + "," +
        (TOP + laneH - 2) + ' Z" fill="#d62728"><title>' + esc(tip) + "</title></path>");
      if (g.items.length > 1) {
        out.push('<text x="' + (g.x + 6).toFixed(1) + '" y="' + (TOP + laneH - 3) +
          '" fill="#d62728" font-size="10">' + g.items.length + "</text>");
      }
    });
  }

  function drawGaps(out, X) {  // the collapsed idle time between segments
    for (var k = 1; k < SEG.length; k++) {
      var a = X(OFF[k] - GAP), b = X(OFF[k]), idle = SEG[k][0] - SEG[k - 1][1];
      out.push('<g class="gap"><rect x="' + a.toFixed(1) + '" y="' + (TOP - 4) + '" width="' +
        Math.max(b - a, 2).toFixed(1) + '" height="' + (HEIGHT - TOP - 20) + '" fill="#f3f3f3"' +
        ' stroke="#bbb" stroke-dasharray="2,2"/><text x="' + ((a + b) / 2).toFixed(1) +
        '" y="' + (HEIGHT - 26) + '" text-anchor="middle" fill="#777" font-size="10">' +
        esc(secs(idle)) + " idle</text><title>" + esc(secs(idle)) +
        " with no leader running, not drawn to scale</title></g>");
    }
  }

  function drawAxis(out, X, scale) {
    var lo = view[0], hi = view[1], step = niceStep(90 / scale), ticks = [], largest = 0;
    for (var k = 0; k < SEG.length; k++) {
      var a = Math.max(SEG[k][0], SEG[k][0] + lo - OFF[k]);
      var b = Math.min(SEG[k][1], SEG[k][0] + hi - OFF[k]);
      if (b < a) { continue; }
      largest = Math.max(largest, b);
      for (var t = Math.ceil(a / step - 1e-9) * step; t <= b + 1e-9; t += step) { ticks.push(t); }
    }
    var label = labeller(step, largest), lastX = -1e9;
    ticks.forEach(function (t) {
      var x = X(disp(t));
      if (x - lastX < 40) { return; }  // two segments' ticks side by side: keep them apart
      lastX = x;
      out.push('<line x1="' + x.toFixed(1) + '" y1="' + (TOP - 6) + '" x2="' + x.toFixed(1) +
        '" y2="' + (HEIGHT - 24) + '" stroke="#e4e4e4"/><text class="tick" x="' + x.toFixed(1) +
        '" y="' + (TOP - 10) + '" text-anchor="middle" fill="#555">' + label(t) + "</text>");
    });
  }

  // -- zoom and pan ----------------------------------------------------------------------
  function setView(a, b) {
    var span = Math.min(Math.max(b - a, TOTAL * 1e-7, 1e-6), TOTAL);
    a = Math.min(Math.max(a, 0), TOTAL - span);
    view = [a, a + span];
    draw();
  }
  function zoom(factor, at) {  // at: the fraction of the plot's width that stays put
    if (at === undefined) { at = 0.5; }
    var span = view[1] - view[0], centre = view[0] + at * span, next = span / factor;
    setView(centre - at * next, centre - at * next + next);
  }
  function pan(fraction) { var s = view[1] - view[0]; setView(view[0] + fraction * s, view[1] + fraction * s); }
  function plotFraction(clientX) {
    var r = chart.getBoundingClientRect(), width = Math.max(600, (chart.clientWidth || 1200) - 4);
    return Math.min(Math.max((clientX - r.left - LEFT) / (width - LEFT - RIGHT), 0), 1);
  }
  chart.addEventListener("wheel", function (e) {
    e.preventDefault();
    zoom(Math.pow(1.2, -e.deltaY / 100), plotFraction(e.clientX));
  }, {passive: false});
  chart.addEventListener("dblclick", function (e) { zoom(2, plotFraction(e.clientX)); });
  var drag = null;
  chart.addEventListener("mousedown", function (e) {
    drag = {x: e.clientX, view: view.slice()}; chart.classList.add("dragging");
  });
  window.addEventListener("mousemove", function (e) {
    if (!drag) { return; }
    var width = Math.max(600, (chart.clientWidth || 1200) - 4) - LEFT - RIGHT;
    var shift = (drag.x - e.clientX) / width * (drag.view[1] - drag.view[0]);
    setView(drag.view[0] + shift, drag.view[1] + shift);
  });
  window.addEventListener("mouseup", function () { drag = null; chart.classList.remove("dragging"); });
  window.addEventListener("keydown", function (e) {
    var keys = {"+": function () { zoom(2); }, "=": function () { zoom(2); },
      "-": function () { zoom(0.5); }, "0": function () { setView(0, TOTAL); },
      "ArrowLeft": function () { pan(-0.25); }, "ArrowRight": function () { pan(0.25); }};
    if (keys[e.key]) { keys[e.key](); e.preventDefault(); }
  });
  document.getElementById("zoom-in").onclick = function () { zoom(2); };
  document.getElementById("zoom-out").onclick = function () { zoom(0.5); };
  document.getElementById("reset").onclick = function () { setView(0, TOTAL); };
  window.addEventListener("resize", draw);
  window.fntreeTimeline = {zoom: zoom, pan: pan, reset: function () { setView(0, TOTAL); },
    view: function () { return view.slice(); }, total: TOTAL};

  try {
    var wanted = /view=([0-9.]+),([0-9.]+)/.exec(window.location.hash);
    if (wanted) {
      setView(Number(wanted[1]) * TOTAL, Number(wanted[2]) * TOTAL);
    } else {
      draw();
    }
  } catch (e) {
    fail(e && e.message ? e.message : e);
  }
}());
