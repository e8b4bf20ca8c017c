"""The page's stylesheet and its small script (filters, sorting, counts), inlined."""

from __future__ import annotations

__all__ = ["SCRIPT", "STYLE"]

STYLE = """
:root{--fg:#111827;--muted:#6b7280;--line:#e5e7eb;--bg:#f8fafc;--card:#fff;--accent:#6366f1}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1280px;margin:0 auto;padding:20px 24px 60px}
h1{font-size:22px;margin:0 0 2px}h2{font-size:17px;margin:28px 0 10px}h3{font-size:14px;margin:14px 0 6px}
h4{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);margin:10px 0 4px}
.muted{color:var(--muted)}.bad{color:#b91c1c}
.panel{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px;margin:10px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(360px,1fr));gap:12px}
table.t{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
table.t th,table.t td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
table.t th:first-child,table.t td:first-child{text-align:left}
table.t th{font-weight:600;color:var(--muted);font-size:12px}
table.t tr.all td{font-weight:600;background:#eef2ff}
.kv{display:flex;flex-wrap:wrap;gap:6px}
.chip{display:inline-block;padding:1px 8px;border-radius:999px;background:#f1f5f9;color:#334155;font-size:12px;margin-right:4px}
.filters{position:sticky;top:0;z-index:5;background:rgba(248,250,252,.96);backdrop-filter:blur(4px);
 border-bottom:1px solid var(--line);padding:8px 0;display:flex;flex-wrap:wrap;gap:8px;align-items:center}
.filters label{font-size:12px;color:var(--muted)}
.filters select,.filters input{font:inherit;font-size:13px;padding:3px 6px;border:1px solid #cbd5e1;border-radius:6px;background:#fff}
.filters input[type=number]{width:68px}
.filters select{max-width:190px}
#shown{margin-left:auto;font-weight:600}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px;margin:12px 0;
 content-visibility:auto;contain-intrinsic-size:auto 420px}
.card header{display:flex;align-items:center;gap:4px;flex-wrap:wrap}
.iid{font-weight:700;margin-right:8px;font-family:ui-monospace,monospace}
.grow{flex:1}
.badge{font-weight:700;font-size:15px;padding:2px 10px;border-radius:8px;background:#eef2ff;color:#3730a3}
.best{color:#b45309;font-weight:600;font-size:12px}
.delta{font-weight:600;font-size:12px;margin-right:8px}.delta.up{color:#047857}.delta.down{color:#b91c1c}
.request{margin:8px 0;font-size:15px}
.row{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}
.shots{display:flex;gap:10px}
figure{margin:0;text-align:center}
figure img{display:block;border-radius:6px;border:1px solid var(--line);background:#f1f5f9;object-fit:contain}
figure.shot img,figure.shot .noimg{width:220px;height:220px}
figure.ref img,figure.ref .noimg{width:110px;height:110px}
figure.hit img,figure.hit .noimg{width:64px;height:64px}
figcaption{font-size:11px;color:var(--muted);max-width:220px;overflow:hidden;text-overflow:ellipsis}
figure.ref figcaption{max-width:110px;white-space:normal}
.noimg{display:flex;align-items:center;justify-content:center;border:1px dashed #cbd5e1;border-radius:6px;color:var(--muted);font-size:11px;padding:6px}
.scores{flex:1;min-width:260px}
table.sc{border-collapse:separate;border-spacing:6px 0}
table.sc td{background:#f8fafc;border:1px solid var(--line);border-radius:6px;padding:3px 8px;font-size:11px;color:var(--muted);text-align:center}
table.sc td b{display:block;font-size:15px;color:var(--fg)}
.rationale{white-space:pre-wrap;margin:8px 0 0;color:#374151}
.program .gen{margin:2px 0 6px;padding:8px 10px;background:#f8fafc;border-left:3px solid var(--accent);border-radius:4px}
.refs,.hits{display:flex;gap:8px;flex-wrap:wrap}
details.traj{margin-top:10px;border-top:1px solid var(--line);padding-top:6px}
details>summary{cursor:pointer;color:#334155;font-weight:600}
details.think>summary{font-weight:400;color:var(--muted);font-style:italic}
ol.steps{list-style:none;padding:0;margin:6px 0}
.step{display:flex;gap:10px;padding:6px 0;border-bottom:1px dashed var(--line)}
.step .n{flex:none;width:24px;height:24px;border-radius:50%;background:#eef2ff;color:#3730a3;font-weight:700;font-size:12px;display:flex;align-items:center;justify-content:center}
.step .body{flex:1;min-width:0}
.call{margin:4px 0}.call code{font-size:12px;word-break:break-word}
.tool{display:inline-block;font-weight:700;font-size:12px;color:#fff;background:#0ea5e9;border-radius:4px;padding:0 6px;margin-right:6px}
.tool.answer{background:#10b981}
pre{white-space:pre-wrap;word-break:break-word;font-size:12px;margin:4px 0;background:#f8fafc;padding:6px 8px;border-radius:4px;max-height:240px;overflow:auto}
.obs{margin-left:12px}
.groups .g{display:flex;gap:10px;align-items:flex-start;padding:8px 0;border-bottom:1px solid var(--line)}
.groups .g .req{width:260px;flex:none;font-size:13px}
.groups .s{text-align:center;font-size:12px}
.groups .s img,.groups .s .noimg{width:96px;height:96px}
.groups .s.best img{outline:3px solid #f59e0b}
.groups a{color:inherit;text-decoration:none}
a{color:#4f46e5}
.src{font-size:11px;text-align:center}
.panel>h3:first-child{margin-top:0}
.card{scroll-margin-top:64px}
svg.chart{width:100%;height:auto;display:block}
table.stages td:nth-child(n+4){text-align:left;white-space:normal}
"""

SCRIPT = """
(function(){
  'use strict';
  // A thumbnail shown in several places is embedded once (data-thumb-id);
  // its other <img>s name it (data-thumb) and take its source here.
  var thumbs = {};
  document.querySelectorAll('img[data-thumb-id]').forEach(function(i){ thumbs[i.dataset.thumbId] = i.getAttribute('src'); });
  document.querySelectorAll('img[data-thumb]').forEach(function(i){ var s = thumbs[i.dataset.thumb]; if (s) i.src = s; });
  var cards = Array.prototype.slice.call(document.querySelectorAll('article.card'));
  var list = document.getElementById('cards');
  var shown = document.getElementById('shown');
  var keys = {'eval-type': 'evalType', category: 'category', difficulty: 'difficulty', termination: 'termination'};
  function value(id){ var el = document.getElementById(id); return el ? el.value : ''; }
  function apply(){
    var want = {}; Object.keys(keys).forEach(function(k){ want[k] = value('f-' + k); });
    var lo = parseFloat(value('f-min')), hi = parseFloat(value('f-max'));
    var ranged = !isNaN(lo) || !isNaN(hi);
    var n = 0;
    cards.forEach(function(c){
      var ok = Object.keys(keys).every(function(k){ return !want[k] || c.dataset[keys[k]] === want[k]; });
      if (ok && ranged) {
        var s = parseFloat(c.dataset.score);
        ok = !isNaN(s) && (isNaN(lo) || s >= lo) && (isNaN(hi) || s <= hi);
      }
      c.hidden = !ok; if (ok) n++;
    });
    shown.textContent = n + ' of ' + cards.length + ' items';
    window.genevolveReport.visible = n;
  }
  function sort(){
    var how = value('f-sort');
    var field = how.indexOf('delta') === 0 ? 'delta' : how.indexOf('score') === 0 ? 'score' : 'index';
    var dir = /-desc$/.test(how) ? -1 : 1;
    var sorted = cards.slice().sort(function(a, b){
      var x = parseFloat(a.dataset[field]), y = parseFloat(b.dataset[field]);
      if (isNaN(x) && isNaN(y)) return a.dataset.index - b.dataset.index;
      if (isNaN(x)) return 1; if (isNaN(y)) return -1;
      return (x - y) * dir || a.dataset.index - b.dataset.index;
    });
    var frag = document.createDocumentFragment();
    sorted.forEach(function(c){ frag.appendChild(c); });
    list.appendChild(frag);
  }
  function expand(details){
    var t = details.querySelector(':scope > template');
    if (t) { details.appendChild(t.content.cloneNode(true)); t.remove(); }
  }
  // toggle does not bubble; catch it on its way down the tree.
  document.addEventListener('toggle', function(e){
    var d = e.target;
    if (d.classList && d.classList.contains('traj') && d.open) expand(d);
  }, true);
  window.genevolveReport = {apply: apply, sort: sort, expand: expand, total: cards.length,
                            visible: cards.length};
  document.querySelectorAll('.filters select, .filters input').forEach(function(el){
    el.addEventListener(el.tagName === 'INPUT' ? 'input' : 'change', function(){
      if (el.id === 'f-sort') sort(); else apply();
    });
  });
  apply();
  window.genevolveReport.ready = true;
})();
"""
