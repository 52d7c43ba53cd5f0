// "What sells": Printify's orders folded by the monitor (GET /sales, /sales/series, /stats).
// Best designs (with their thumbnails), themes and niches over a chosen period, and a chart of
// the best themes drawn with app.js's lineChart (the page's own SVG, nothing from elsewhere).
"use strict";

const SELLS_PERIODS = [
  ["24", "last 24 hours"],
  ["168", "last 7 days"],
  ["720", "last 30 days"],
  ["", "all time"],
];
const SELLS_COLORS = ["#3949ab", "#12805c", "#b54708", "#b42318", "#7a5af8"];

function sellsFigures(r) {
  return `<td>${r.orders}</td><td>${r.units}</td><td>${money(r.revenueCents)}</td>
    <td>${money(r.profitCents)}</td><td>${r.marginPercent == null ? "—" : `${r.marginPercent.toFixed(1)}%`}</td>`;
}

function sellsTable(id, first, rows, cell) {
  const head = `<thead><tr><th>${first}</th><th>Orders</th><th>Units</th><th>Revenue</th><th>Profit</th>
    <th>Margin</th></tr></thead>`;
  const body = rows.length
    ? rows.map((r) => `<tr data-key="${esc(r.key)}">${cell(r)}${sellsFigures(r)}</tr>`).join("")
    : `<tr><td colspan="6" class="muted">No sales in this period.</td></tr>`;
  return `<table id="${id}">${head}<tbody>${body}</tbody></table>`;
}

function sellsDesign(r) {
  if (r.jobId == null) return `<td class="muted">${esc(r.key)} (not made by the engine)</td>`;
  const job = `/ui/jobs/${encodeURIComponent(r.jobId)}`;
  return `<td><figure class="design" data-design="${esc(r.key)}"><img alt="design ${r.imageIndex + 1}">
    <figcaption><a href="${job}">${esc(r.jobId.slice(0, 8))}</a> · image ${r.imageIndex + 1}</figcaption></figure></td>`;
}

async function sellsThumb(r) {
  if (r.jobId == null) return;
  try {
    const path = `/jobs/${encodeURIComponent(r.jobId)}/images/${r.imageIndex}?size=320`;
    const response = await fetch(path, { headers: headers() });
    const img = document.querySelector(`figure[data-design="${CSS.escape(r.key)}"] img`);
    if (!response.ok || !img) return;
    img.src = URL.createObjectURL(await response.blob());
    img.dataset.loaded = "1";
  } catch (error) {
    showError(error);
  }
}

podPages.sells = async () => {
  const params = new URLSearchParams(location.search);
  $("#page").innerHTML = `
    <h2>What sells</h2>
    <div class="filters">
      <select id="s-hours">${SELLS_PERIODS.map(([h, label]) => `<option value="${h}">${label}</option>`).join("")}</select>
      <span class="muted">Printify's orders, canceled ones left out; margin = profit / revenue.</span>
    </div>
    <div id="s-totals" class="cards"></div>
    <div id="s-chart"></div>
    <h3>Best designs</h3><div id="s-designs"></div>
    <div class="grid2"><div><h3>Themes</h3><div id="s-themes"></div></div>
      <div><h3>Niches</h3><div id="s-niches"></div></div></div>`;
  $("#s-hours").value = params.has("hours") ? params.get("hours") : "168";
  window.__sells = { renders: 0 };
  const load = async () => {
    const hours = $("#s-hours").value;
    const window_ = hours ? `&hours=${hours}` : "";
    const [designs, themes, niches, series, stats] = await Promise.all([
      api(`/sales?by=design&limit=12${window_}`),
      api(`/sales?by=theme&limit=10${window_}`),
      api(`/sales?by=niche&limit=10${window_}`),
      api(`/sales/series?by=theme&top=5&hours=${hours || 24 * 365}`),
      api("/stats"),
    ]);
    const all = stats.sales;
    $("#s-totals").innerHTML = all
      ? [
          card("Orders", all.orders, "all time"),
          card("Units", all.units, "all time"),
          card("Revenue", money(all.revenueCents), `cost ${money(all.costCents)}`),
          card("Margin", all.marginPercent == null ? "—" : `${all.marginPercent.toFixed(1)}%`,
            `profit ${money(all.profitCents)}`),
        ].join("")
      : "";
    // Every bucket of the window is drawn, zero where nothing sold, so a line has a shape.
    const step = { minute: 60e3, hour: 3600e3, day: 86400e3 }[series.bucket];
    const end = Math.floor(Date.now() / step) * step;
    const start = Math.max(end - series.hours * 3600e3, end - 400 * step);
    const lines = series.keys.map((key, i) => {
      const points = new Map();
      for (let t = start; t <= end; t += step) points.set(t, 0);
      for (const p of series.points.filter((p) => p.key === key)) {
        points.set(new Date(p.at).getTime(), p.revenueCents / 100);
      }
      return { label: esc(key), color: SELLS_COLORS[i % SELLS_COLORS.length], points };
    });
    $("#s-chart").innerHTML = lineChart(`Revenue of the best themes, per ${esc(series.bucket)}`, lines, " $");
    $("#s-designs").innerHTML = sellsTable("sells-designs", "Design", designs.rows, sellsDesign);
    $("#s-themes").innerHTML = sellsTable("sells-themes", "Theme", themes.rows, (r) => `<td>${esc(r.key)}</td>`);
    $("#s-niches").innerHTML = sellsTable("sells-niches", "Niche", niches.rows, (r) => `<td>${esc(r.key)}</td>`);
    designs.rows.forEach(sellsThumb);
    window.__sells.renders += 1;
    window.__sells.top = designs.rows.length ? designs.rows[0].key : null;
  };
  $("#s-hours").addEventListener("change", () => {
    const hours = $("#s-hours").value;
    history.replaceState(null, "", `/ui/sells${hours === "168" ? "" : `?hours=${hours}`}`);
    load().catch(showError);
  });
  await load();
  every(30000, load);
};
