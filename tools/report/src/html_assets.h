// tools/report/src/html_assets.h — the stylesheet and the script embedded in
// the HTML report (html.cc), kept apart from its layout. Internal to the
// report library.
//
//   out += fmt::format("<style>{}</style>", html_internal::kStyle);
#pragma once

#include <string_view>

namespace modgraph::report::html_internal {

inline constexpr std::string_view kStyle = R"css(
:root { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
  color: #263238; background: #ffffff; }
body { margin: 20px 28px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 22px 0 8px; }
p.summary { margin: 4px 0 12px; font-size: 15px; }
p.summary.findings, p.summary.error { color: #b71c1c; }
p.summary.clean { color: #1b5e20; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #b0bec5; padding: 5px 9px; text-align: left; vertical-align: top; }
th { background: #eceff1; }
#findings tr.finding td { background: #ffcdd2; }
#findings tr.clean td { background: #c8e6c9; }
#findings tr.finding:hover td { background: #ef9a9a; }
#instances tr.unregistered td:first-child { border-left: 4px solid #c62828; }
#instances tr.flash td { outline: 2px solid #1565c0; }
#instances td.path { font-family: ui-monospace, monospace; font-size: 11px; color: #546e7a; }
.badge { color: #c62828; font-weight: 600; }
.graph-box { overflow-x: auto; border: 1px solid #cfd8dc; border-radius: 8px; padding: 6px; }
svg text { font-family: inherit; }
g.env rect { fill: #fafafa; stroke: #90a4ae; stroke-width: 1.5; }
.env-label { font-size: 13px; font-weight: 600; fill: #37474f; }
g.node rect { stroke-width: 1.5; }
g.node.plain rect { fill: #eceff1; stroke: #78909c; }
g.node.registered rect { fill: #e8f5e9; stroke: #2e7d32; }
g.node.finding rect { fill: #ffebee; stroke: #c62828; stroke-width: 2.5; }
g.node.highlight rect { stroke: #1565c0; stroke-width: 4; }
g.node { cursor: pointer; }
g.node text { text-anchor: middle; }
g.node text.name { font-size: 12px; font-weight: 600; fill: #263238; }
g.node text.detail { font-size: 10px; fill: #546e7a; }
g.node.finding text.detail { fill: #b71c1c; }
path.import { fill: none; stroke: #455a64; stroke-width: 1.3; }
path.registration { fill: none; stroke: #2e7d32; stroke-width: 1.3; stroke-dasharray: 5 3; }
path.twin { fill: none; stroke: #c62828; stroke-width: 1.5; stroke-dasharray: 2 3; }
.legend span { margin-right: 16px; font-size: 12px; }
ul.errors li { color: #b71c1c; }
label { font-size: 13px; }
)css";

inline constexpr std::string_view kScript = R"js(
(function () {
  'use strict';
  var root = document.documentElement;
  try {
    var data = JSON.parse(document.getElementById('modgraph-data').textContent);
    var rows = document.querySelectorAll('#findings tbody tr.finding');
    if (rows.length !== data.findings.length) {
      throw new Error('findings table has ' + rows.length + ' rows, the report ' +
                      data.findings.length);
    }
    var nodes = {};
    document.querySelectorAll('#graph g.node').forEach(function (g) {
      nodes[g.getAttribute('data-instance')] = g;
    });
    data.instances.forEach(function (instance) {
      if (!nodes[instance.instance]) throw new Error('no graph node for ' + instance.instance);
    });
    function highlight(name, on) {
      if (nodes[name]) nodes[name].classList.toggle('highlight', on);
    }
    rows.forEach(function (row) {
      var name = row.getAttribute('data-instance');
      row.addEventListener('mouseenter', function () { highlight(name, true); });
      row.addEventListener('mouseleave', function () { highlight(name, false); });
    });
    var instanceRows = document.querySelectorAll('#instances tbody tr');
    Object.keys(nodes).forEach(function (name) {
      nodes[name].addEventListener('click', function () {
        instanceRows.forEach(function (row) {
          if (row.getAttribute('data-instance') !== name) return;
          row.scrollIntoView({block: 'center'});
          row.classList.add('flash');
          setTimeout(function () { row.classList.remove('flash'); }, 1500);
        });
      });
    });
    var only = document.getElementById('only-unregistered');
    only.addEventListener('change', function () {
      instanceRows.forEach(function (row) {
        row.style.display = only.checked && !row.classList.contains('unregistered') ? 'none' : '';
      });
    });
    root.setAttribute('data-modgraph-page', 'ok');
  } catch (error) {
    root.setAttribute('data-modgraph-page', 'error');
    console.error('modgraph page: ' + error.message);
  }
})();
)js";

}  // namespace modgraph::report::html_internal
