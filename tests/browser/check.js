// Run by tests/browser/mod.rs inside Chromium after the page has rendered: measures every
// architecture drawing (svg.arch-drawing) with the browser's own layout boxes and appends what it
// found as JSON in a pre element (id pwsnas-check), which `--dump-dom` then prints.
(function () {
  function box(el) {
    const r = el.getBoundingClientRect();
    return { l: r.left, t: r.top, r: r.right, b: r.bottom };
  }
  function inside(a, b) {
    const tol = 0.5;
    return a.l >= b.l - tol && a.t >= b.t - tol && a.r <= b.r + tol && a.b <= b.b + tol;
  }
  function meet(a, b) {
    const tol = 0.5;
    return a.l < b.r - tol && b.l < a.r - tol && a.t < b.b - tol && b.t < a.b - tol;
  }
  const out = [];
  document.querySelectorAll('svg.arch-drawing').forEach(function (svg) {
    const frame = box(svg);
    const d = { kind: svg.getAttribute('data-kind'), width: frame.r - frame.l, height: frame.b - frame.t,
                cells: [], blocks: [], problems: [] };
    svg.querySelectorAll('text').forEach(function (t) {
      const b = box(t);
      if (b.r - b.l <= 0) d.problems.push('text "' + t.textContent + '" is not rendered');
      if (!inside(b, frame)) d.problems.push('text "' + t.textContent + '" leaves the picture');
    });
    svg.querySelectorAll('g.cell').forEach(function (cell) {
      const labels = Array.from(cell.querySelectorAll('g.edge-label'));
      const nodes = Array.from(cell.querySelectorAll('g.node'));
      labels.forEach(function (a, i) {
        const ra = box(a.querySelector('rect'));
        if (!inside(box(a.querySelector('text')), ra)) d.problems.push('label ' + a.dataset.op + ' overflows its box');
        labels.forEach(function (b, j) {
          if (j > i && meet(ra, box(b.querySelector('rect')))) {
            d.problems.push('labels ' + a.dataset.op + ' and ' + b.dataset.op + ' overlap');
          }
        });
        nodes.forEach(function (n) {
          if (meet(ra, box(n.querySelector('rect')))) d.problems.push('label ' + a.dataset.op + ' covers node ' + n.dataset.label);
        });
      });
      nodes.forEach(function (n, i) {
        const rn = box(n.querySelector('rect'));
        if (!inside(box(n.querySelector('text')), rn)) d.problems.push('node ' + n.dataset.label + ' overflows its box');
        nodes.forEach(function (m, j) {
          if (j > i && meet(rn, box(m.querySelector('rect')))) d.problems.push('nodes ' + n.dataset.label + ' and ' + m.dataset.label + ' overlap');
        });
      });
      d.cells.push({
        title: cell.dataset.title,
        nodes: nodes.map(function (n) { return [n.dataset.label, n.dataset.role]; }),
        edges: Array.from(cell.querySelectorAll('g.edge')).map(function (e) { return [e.dataset.from, e.dataset.to, e.dataset.op]; }),
      });
    });
    const blocks = Array.from(svg.querySelectorAll('g.block'));
    blocks.forEach(function (b, i) {
      const r = box(b.querySelector('rect'));
      b.querySelectorAll('text').forEach(function (t) {
        if (!inside(box(t), r)) d.problems.push('text "' + t.textContent + '" overflows block ' + b.dataset.name);
      });
      if (i > 0 && box(blocks[i - 1].querySelector('rect')).b >= r.t) d.problems.push('block ' + b.dataset.name + ' is not below the one before');
      d.blocks.push([b.dataset.name, b.dataset.label, b.dataset.role]);
    });
    out.push(d);
  });
  const pre = document.createElement('pre');
  pre.id = 'pwsnas-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
