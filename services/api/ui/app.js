// POD Engine's dashboard: one page of plain JavaScript over the JSON API (no build step, nothing
// loaded from elsewhere). The API key, when the API asks for one, is kept in localStorage and
// sent as a bearer header; live progress reads the API's server-sent events with fetch, so the
// header goes there too.
"use strict";

const STATUSES = ["queued", "processing", "retrying", "awaiting_review", "completed", "partial", "failed", "cancelled"];
// The pages kept in files of their own (services/api/ui/<name>.js, each loaded by index.html after
// this file): podPages.<name> = async () => ... draws /ui/<name>; podPages["jobs/<view>"] =
// async (jobId) => ... draws /ui/jobs/<id>/<view>. They use this file's helpers ($, esc, api,
// every, onLeave, follow, card, money, lineChart, screeningOf), which classic scripts share.
const podPages = {};
const $ = (selector, root = document) => root.querySelector(selector);
const esc = (value) =>
  String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString() : "");
const money = (cents) => (cents == null ? "" : `$${(cents / 100).toFixed(2)}`);
// A listing's URL comes from the vendor: only a web address becomes a link (never javascript:).
const webUrl = (value) => {
  try {
    const url = new URL(value);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch {
    return null;
  }
};
// A product on one channel: a link to the listing when there is one, the reason when it failed.
const listing = (l) => {
  const label = `${esc(l.channel)}: ${esc(l.status)}`;
  const url = l.url ? webUrl(l.url) : null;
  const badge = url
    ? `<a class="status ${esc(l.status)}" data-listing="${esc(l.channel)}" href="${esc(url)}" target="_blank" rel="noopener noreferrer">${label}</a>`
    : `<span class="status ${esc(l.status)}" data-listing="${esc(l.channel)}">${label}</span>`;
  return `<div class="listing">${badge}${l.error ? ` <span class="muted reason">${esc(l.error)}</span>` : ""}</div>`;
};

// What screening decided of an image (issue 29): a badge (allow, review, block) and each reason,
// the design it resembles linked to that design's job.
const screeningOf = (s) => {
  if (!s) return "";
  const reasons = (s.reasons || [])
    .map((r) => {
      const d = r.resembles;
      const like = d
        ? ` <a href="/ui/jobs/${encodeURIComponent(d.jobId)}" data-resembles="${esc(d.jobId)}">job ${esc(d.jobId.slice(0, 8))} image ${d.imageIndex + 1}</a> (distance ${d.distance})`
        : "";
      return `<li data-check="${esc(r.check)}" data-outcome="${esc(r.outcome)}"><b>${esc(r.check)}</b> · ${esc(r.outcome)}: ${esc(r.detail)}${like}</li>`;
    })
    .join("");
  return `<span class="status screened-${esc(s.decision)}" data-screening="${esc(s.decision)}">screening: ${esc(s.decision)}</span>${reasons ? `<ul class="reasons">${reasons}</ul>` : ""}`;
};

// ------------------------------------------------------------------ API and errors

const keyInput = $("#api-key");
keyInput.value = localStorage.getItem("podKey") || "";
keyInput.addEventListener("change", () => {
  localStorage.setItem("podKey", keyInput.value.trim());
  route();
});

function headers(extra = {}) {
  const key = localStorage.getItem("podKey");
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers || {}) });
  if (!response.ok) {
    let reason = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      const detail = Array.isArray(body.detail)
        ? body.detail.map((d) => `${d.field || d.loc}: ${d.message || d.msg}`).join("; ")
        : body.detail;
      reason = `${body.error || response.status}${detail ? `: ${detail}` : ""}`;
    } catch (_) {
      // not JSON: the status line says enough
    }
    throw new Error(`${path}: ${reason}`);
  }
  return response.json();
}

function showError(error) {
  const box = $("#error");
  box.textContent = error ? String(error.message || error) : "";
  box.hidden = !error;
}

// ------------------------------------------------------------------ routing

let cleanups = [];
const onLeave = (fn) => cleanups.push(fn);

function every(ms, fn) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    try {
      await fn();
    } catch (error) {
      showError(error);
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  timer = setTimeout(tick, ms);
  onLeave(() => {
    stopped = true;
    clearTimeout(timer);
  });
}

function route() {
  cleanups.forEach((fn) => fn());
  cleanups = [];
  showError(null);
  const path = location.pathname.replace(/\/+$/, "");
  const job = path.match(/^\/ui\/jobs\/([^/]+)(?:\/([a-z-]+))?$/);
  const name = job ? "jobs" : path.split("/")[2] || "jobs";
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === name));
  const pages = { jobs: jobsPage, flow: flowPage, dlq: dlqPage, alerts: alertsPage, charts: chartsPage, doctor: doctorPage, ...podPages };
  let render = pages[name] || notFound;
  if (job) {
    // /ui/jobs/<id> is the job's page; /ui/jobs/<id>/<view> a view of it from its own file.
    const view = job[2] ? podPages[`jobs/${job[2]}`] : jobPage;
    render = view ? () => view(decodeURIComponent(job[1])) : notFound;
  }
  render().catch(showError);
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href^='/ui']");
  if (!link || event.metaKey || event.ctrlKey || event.shiftKey) return;
  event.preventDefault();
  history.pushState(null, "", link.getAttribute("href"));
  route();
});
window.addEventListener("popstate", route);

async function notFound() {
  $("#page").innerHTML = `<p>No such page. <a href="/ui/jobs">Jobs</a></p>`;
}

// ------------------------------------------------------------------ server-sent events

// Follow an SSE stream; resumes after a drop from the last event id (Last-Event-ID).
function follow(path, onEvent, onEnd) {
  const controller = new AbortController();
  onLeave(() => controller.abort());
  let lastId = null;
  (async () => {
    while (!controller.signal.aborted) {
      try {
        const extra = { Accept: "text/event-stream" };
        if (lastId) extra["Last-Event-ID"] = lastId;
        const response = await fetch(path, { headers: headers(extra), signal: controller.signal });
        if (!response.ok) throw new Error(`${path}: ${response.status}`);
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            const event = { event: "message", data: "" };
            for (const line of block.split("\n")) {
              if (line.startsWith("id:")) lastId = event.id = line.slice(3).trim();
              else if (line.startsWith("event:")) event.event = line.slice(6).trim();
              else if (line.startsWith("data:")) event.data += line.slice(5).trim();
            }
            if (event.event === "end") {
              if (onEnd) await onEnd(event);
              return;
            }
            if (event.data) await onEvent(event);
          }
        }
      } catch (error) {
        if (controller.signal.aborted) return;
        showError(error);
      }
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  })();
}

// ------------------------------------------------------------------ jobs

async function jobsPage() {
  const params = new URLSearchParams(location.search);
  $("#page").innerHTML = `
    <div class="filters">
      <select id="f-status"><option value="">every status</option>
        ${STATUSES.map((s) => `<option>${s}</option>`).join("")}</select>
      <input id="f-q" type="search" size="44" placeholder="search: id, theme, niche, style, prompt">
    </div>
    <table><thead><tr><th>Job</th><th>Status</th><th>Theme / niche</th><th>Images</th>
      <th>Products</th><th>Published</th><th>Created</th></tr></thead><tbody id="jobs"></tbody></table>
    <p><button id="more" hidden>More</button></p>`;
  $("#f-status").value = params.get("status") || "";
  $("#f-q").value = params.get("q") || "";
  let cursor = null;
  let pages = 0;
  const query = () => {
    const q = new URLSearchParams();
    if ($("#f-status").value) q.set("status", $("#f-status").value);
    if ($("#f-q").value.trim()) q.set("q", $("#f-q").value.trim());
    return q;
  };
  const load = async (more) => {
    const q = query();
    q.set("limit", "50");
    if (more && cursor) q.set("cursor", cursor);
    const page = await api(`/jobs?${q}`);
    cursor = page.nextCursor;
    pages = more ? pages + 1 : 1;
    $("#more").hidden = !cursor;
    const rows = page.jobs
      .map(
        (j) => `<tr data-job="${esc(j.jobId)}">
          <td><a href="/ui/jobs/${encodeURIComponent(j.jobId)}">${esc(j.jobId.slice(0, 8))}</a></td>
          <td><span class="status ${esc(j.detailedStatus)}">${esc(j.detailedStatus)}</span></td>
          <td>${esc(j.theme)} <span class="muted">/ ${esc(j.niche)}</span></td>
          <td>${j.imagesDone}/${j.count}</td><td>${j.productsDone}/${j.expectedProducts}</td>
          <td>${j.publicationsDone}/${j.expectedPublications}</td>
          <td class="muted">${fmtTime(j.createdAt)}</td></tr>`,
      )
      .join("");
    if (more) $("#jobs").insertAdjacentHTML("beforeend", rows);
    else $("#jobs").innerHTML = rows || `<tr><td colspan="7" class="muted">No jobs match.</td></tr>`;
  };
  const refilter = () => {
    const q = query().toString();
    history.replaceState(null, "", `/ui/jobs${q ? `?${q}` : ""}`);
    load(false).catch(showError);
  };
  let typing = null;
  $("#f-status").addEventListener("change", refilter);
  $("#f-q").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(refilter, 250);
  });
  $("#more").addEventListener("click", () => load(true).catch(showError));
  await load(false);
  every(5000, () => (pages > 1 ? null : load(false))); // not while older pages are shown
}

function card(title, value, note = "") {
  return `<div class="card"><h3>${title}</h3><div>${value}</div><div class="n">${note}</div></div>`;
}

async function jobPage(id) {
  const path = `/jobs/${encodeURIComponent(id)}`;
  $("#page").innerHTML = `
    <h2>Job <code>${esc(id)}</code> <span class="muted" id="live"></span>
      <a id="review-link" href="${esc(`/ui/jobs/${encodeURIComponent(id)}/review`)}" hidden>Review its images</a></h2>
    <div id="summary" class="cards"></div>
    <div id="waits"></div>
    <h3>Images</h3><div id="images" class="thumbs"></div>
    <h3>Products</h3>
    <table><thead><tr><th>Image</th><th>Type</th><th>Status</th><th>Product</th><th>Price</th>
      <th>Channels</th></tr></thead><tbody id="products"></tbody></table>
    <h3>Log</h3><div id="log" class="log"></div>`;
  // What the page has seen, for tests and curious operators.
  window.__pod = { events: 0, renders: 0, status: null };
  const thumbs = new Set();
  const render = async () => {
    const detail = await api(path);
    const j = detail.job;
    window.__pod.status = j.detailedStatus;
    // A job with review, or one with an image screening held for the seller.
    const held = detail.images.some((i) => i.screening && i.screening.decision === "review");
    $("#review-link").hidden = !((j.request && j.request.review) || held);
    window.__pod.renders += 1;
    $("#summary").innerHTML = [
      card("Status", `<span id="job-status" class="status ${esc(j.detailedStatus)}">${esc(j.detailedStatus)}</span>`,
        esc(j.error || (j.nextRetryAt ? `retry at ${fmtTime(j.nextRetryAt)}` : ""))),
      card("Images", `${j.imagesDone}/${j.count}`, j.imagesFailed ? `${j.imagesFailed} failed` : ""),
      card("Products", `${j.productsDone}/${j.expectedProducts}`, j.productsFailed ? `${j.productsFailed} failed` : ""),
      card("Published", `${j.publicationsDone}/${j.expectedPublications}`,
        `${esc(j.channels.join(", "))}${j.autoPublish ? "" : " (autoPublish off)"}`),
      card("Request", `${esc(j.theme)} · ${esc(j.style)} · ${esc(j.niche)}`,
        `priority ${esc(j.priority)} · ${esc(j.productTypes.join(", "))}`),
    ].join("");
    window.__pod.waits = detail.waits;
    $("#waits").innerHTML = detail.waits.length
      ? `<h3>Waiting for</h3><table><thead><tr><th>Stage</th><th>What</th><th>Messages</th>
          <th>Since</th><th>Until about</th><th>Gives up at</th></tr></thead><tbody>
          ${detail.waits
            .map(
              (w) => `<tr data-wait="${esc(w.kind)}"><td>${esc(w.stage || "")}</td><td>${esc(w.what)}</td>
                <td>${w.count}</td><td class="muted">${fmtTime(w.since)}</td><td>${fmtTime(w.until)}</td>
                <td class="muted">${fmtTime(w.deadline)}</td></tr>`,
            )
            .join("")}</tbody></table>`
      : "";
    for (const image of detail.images) {
      if (thumbs.has(image.imageIndex)) continue;
      thumbs.add(image.imageIndex);
      $("#images").insertAdjacentHTML(
        "beforeend",
        `<figure data-image="${image.imageIndex}"><img alt="${esc(image.title)}">
          <figcaption>${esc(image.title)}<br>${image.width}×${image.height}<div class="sales"></div>
            <div class="screening"></div></figcaption></figure>`,
      );
      thumbnail(path, image.imageIndex);
    }
    // What each design sold (Printify's orders), once it sold.
    for (const image of detail.images) {
      const sold = $(`figure[data-image="${image.imageIndex}"] .sales`);
      const s = image.sales;
      if (sold) sold.textContent = s ? `${s.units} sold · ${money(s.revenueCents)} · ${s.marginPercent ?? "—"}% margin` : "";
      // A regenerated image is screened again: its latest screening replaces the one shown.
      const screened = $(`figure[data-image="${image.imageIndex}"] .screening`);
      if (screened) screened.innerHTML = screeningOf(image.screening);
    }
    $("#products").innerHTML =
      detail.products
        .map(
          (p) => `<tr><td>${p.imageIndex + 1}</td><td>${esc(p.productType)}</td>
            <td><span class="status ${esc(p.status)}">${esc(p.status)}</span>
              ${p.error ? `<div class="muted">${esc(p.error)}</div>` : ""}</td>
            <td>${esc(p.productId || "")}</td>
            <td>${money(p.priceCents)}${p.priceMaxCents && p.priceMaxCents !== p.priceCents ? `–${money(p.priceMaxCents)}` : ""}</td>
            <td>${(p.listings || []).map(listing).join("")}</td></tr>`,
        )
        .join("") || `<tr><td colspan="6" class="muted">None yet.</td></tr>`;
    $("#log").innerHTML = detail.logs
      .map((l) => `<div class="${esc(l.level)}">${fmtTime(l.occurredAt)} · ${esc(l.message)}</div>`)
      .join("");
  };
  await render();
  $("#live").textContent = "· following";
  // A wait (a vendor's limit, a GPU) moves without an event: look again while there is one.
  every(10000, async () => {
    if ((window.__pod.waits || []).length) await render();
  });
  follow(
    `${path}/events`,
    async () => {
      window.__pod.events += 1;
      await render();
    },
    async () => {
      $("#live").textContent = "· ended";
      await render();
    },
  );
}

async function thumbnail(jobPath, index) {
  try {
    // A preview (WebP, 320 px: the 156 px frame at 2x), not the print file.
    const response = await fetch(`${jobPath}/images/${index}?size=320`, { headers: headers() });
    if (!response.ok) return;
    const img = $(`figure[data-image="${index}"] img`);
    if (!img) return;
    img.src = URL.createObjectURL(await response.blob());
    img.dataset.loaded = "1";
  } catch (error) {
    showError(error);
  }
}

// ------------------------------------------------------------------ stage flow

async function flowPage() {
  $("#page").innerHTML = `
    <h2>Stage flow</h2>
    <p class="muted">jobs.requested.{high,normal,low} → generator → images.generated → printify →
      products.created → publisher(s) → published; the monitor folds every topic into PostgreSQL.</p>
    <div id="flow" class="cards"></div><p class="muted" id="flow-at"></p>
    <h3>Vendor limits</h3>
    <p class="muted">Each is one budget for the whole deployment, shared by every instance that calls
      the account.</p>
    <table><thead><tr><th>Limit</th><th>Used now</th><th>Waiting</th><th>Stopped by a 429 until</th>
      <th>429s</th></tr></thead><tbody id="budgets"></tbody></table>`;
  let last = null;
  const load = async () => {
    const stats = await api("/stats");
    const now = performance.now();
    const stages = stats.workerStats.stages;
    $("#flow").innerHTML = Object.entries(stages)
      .map(([name, s]) => {
        const before = last && last.stages[name];
        const rate = before ? Math.max(0, (s.processed - before.processed) / ((now - last.at) / 1000)) : null;
        return `<div class="card" data-stage="${esc(name)}"><h3>${esc(name)}</h3>
          <div>${s.instances} instance${s.instances === 1 ? "" : "s"}</div>
          <div class="n">in flight ${s.inFlight} · lag ${s.lag ?? "?"} · DLQ ${s.dlqSize}</div>
          <div class="n">${rate === null ? "…" : `${rate.toFixed(1)} msg/s`} · done ${s.processed} · failed ${s.failed}</div></div>`;
      })
      .join('<span class="arrow">→</span>');
    last = { at: now, stages };
    $("#budgets").innerHTML =
      stats.budgets
        .map(
          (b) => `<tr data-budget="${esc(b.name)}"><td><strong>${esc(b.label)}</strong></td>
            <td>${b.used}${b.limit ? ` / ${b.limit}` : ""}
              ${b.limit ? `<div class="bar"><span style="width:${Math.min(100, (100 * b.used) / b.limit).toFixed(0)}%"></span></div>` : ""}</td>
            <td>${b.waiting ? `${b.waiting} messages of ${b.jobsWaiting} jobs` : "—"}</td>
            <td>${b.blockedUntil ? fmtTime(b.blockedUntil) : "—"}</td><td>${b.rateLimited}</td></tr>`,
        )
        .join("") || `<tr><td colspan="5" class="muted">No vendor call made yet.</td></tr>`;
    $("#flow-at").textContent = `${stats.runningWorkers} running, ${stats.errorWorkers} silent · updated ${new Date().toLocaleTimeString()}`;
  };
  await load();
  every(2000, load);
}

// ------------------------------------------------------------------ dead letters

async function dlqPage() {
  $("#page").innerHTML = `
    <h2>Dead letters</h2>
    <p class="muted">Replaying needs an admin key when the API has keys.</p>
    <table><thead><tr><th>Failed</th><th>Stage</th><th>Job</th><th>Reason</th><th>Replays to</th><th></th></tr></thead>
      <tbody id="dlq"></tbody></table>`;
  const load = async () => {
    const page = await api("/dlq?limit=100");
    $("#dlq").innerHTML =
      page.deadLetters
        .map(
          (d) => `<tr data-dead-letter="${d.id}"><td class="muted">${fmtTime(d.failedAt)}</td>
            <td>${esc(d.stage)}</td>
            <td>${d.jobId ? `<a href="/ui/jobs/${encodeURIComponent(d.jobId)}">${esc(d.jobId.slice(0, 8))}</a>` : "—"}</td>
            <td><strong>${esc(d.errorClass)}</strong> ${esc(d.message)}
              <div class="muted">${esc(d.topic)}[${d.partition}]@${d.offset}${d.retryable ? " · retryable" : ""}</div></td>
            <td data-replay-to>${d.replayTo ? `<code>${esc(d.replayTo)}</code>` : `<span class="muted">not replayable</span>`}</td>
            <td>${d.replayedAt ? `<span class="status resolved">replayed ×${d.replayCount}</span>` : d.replayTo ? `<button data-replay="${d.id}" title="Replay onto ${esc(d.replayTo)}">Replay</button>` : ""}</td></tr>`,
        )
        .join("") || `<tr><td colspan="6" class="muted">No dead letters waiting.</td></tr>`;
  };
  $("#page").addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-replay]");
    if (!button) return;
    button.disabled = true;
    try {
      const result = await api("/dlq/replay", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ id: Number(button.dataset.replay) }),
      });
      const done = document.createElement("span");
      done.className = "status resolved";
      done.textContent = result.replayed ? "replayed" : "skipped";
      button.replaceWith(done);
    } catch (error) {
      button.disabled = false;
      showError(error);
    }
  });
  await load();
}

// ------------------------------------------------------------------ alerts

async function alertsPage() {
  $("#page").innerHTML = `
    <h2>Alerts</h2>
    <div class="filters"><select id="f-alert"><option value="">open and resolved</option>
      <option>open</option><option>resolved</option></select></div>
    <table><thead><tr><th>Since</th><th>Severity</th><th>Status</th><th>Alert</th></tr></thead>
      <tbody id="alerts"></tbody></table>`;
  const load = async () => {
    const status = $("#f-alert").value;
    const list = await api(`/alerts?limit=200${status ? `&status=${status}` : ""}`);
    $("#alerts").innerHTML =
      list.alerts
        .map(
          (a) => `<tr><td class="muted">${fmtTime(a.createdAt)}</td>
            <td><span class="status ${esc(a.severity)}">${esc(a.severity)}</span></td>
            <td><span class="status ${esc(a.status)}">${esc(a.status)}</span></td>
            <td><strong>${esc(a.type)}</strong> ${esc(a.message)}</td></tr>`,
        )
        .join("") || `<tr><td colspan="4" class="muted">No alerts.</td></tr>`;
  };
  $("#f-alert").addEventListener("change", () => load().catch(showError));
  await load();
  every(5000, load);
}

// ------------------------------------------------------------------ preflight

// The preflight (GET /doctor, an admin key) runs when asked: it calls every configured vendor,
// some of them rate-limited, so it is never put on a timer.
async function doctorPage() {
  $("#page").innerHTML = `
    <h2>Preflight</h2>
    <p class="muted">Read-only checks of every configured vendor, the broker and the database,
      from the API's own settings: what <code>pod doctor</code> prints. Needs an admin key.</p>
    <div class="filters"><button id="run-doctor">Run the checks</button>
      <span id="doctor-summary" class="muted"></span></div>
    <table><thead><tr><th></th><th>Check</th><th>Found</th><th>Fix</th></tr></thead>
      <tbody id="checks"><tr><td colspan="4" class="muted">Not run yet.</td></tr></tbody></table>`;
  const mark = { pass: "completed", fail: "failed", skip: "" };
  const run = async () => {
    const button = $("#run-doctor");
    button.disabled = true;
    $("#doctor-summary").textContent = "checking…";
    try {
      const report = await api("/doctor");
      const failed = report.checks.filter((c) => c.status === "fail").length;
      $("#doctor-summary").textContent = failed ? `${failed} failed` : "everything configured passed";
      $("#checks").innerHTML = report.checks
        .map(
          (c) => `<tr data-check="${esc(c.name)}" data-status="${esc(c.status)}">
            <td><span class="status ${mark[c.status] || ""}">${esc(c.status)}</span></td>
            <td><strong>${esc(c.name)}</strong></td><td>${esc(c.detail)}</td>
            <td>${esc(c.fix || "")}</td></tr>`,
        )
        .join("");
      window.__pod = { ...(window.__pod || {}), doctor: report };
    } finally {
      button.disabled = false;
      if ($("#doctor-summary").textContent === "checking…") $("#doctor-summary").textContent = "";
    }
  };
  $("#run-doctor").addEventListener("click", () => run().catch(showError));
}

// ------------------------------------------------------------------ charts

// Per-minute counts of a counter (summed over its label sets), oldest first.
async function perMinute(name) {
  const series = await api(`/metrics?name=${name}&limit=1000`);
  const byMinute = new Map();
  for (const point of series.metrics) {
    const t = new Date(point.timestamp).getTime();
    byMinute.set(t, (byMinute.get(t) || 0) + point.value);
  }
  return byMinute;
}

function lineChart(title, lines, unit = "") {
  const width = 560, height = 200, pad = 34;
  const xs = [...new Set(lines.flatMap((l) => [...l.points.keys()]))].sort((a, b) => a - b);
  const max = Math.max(1e-9, ...lines.flatMap((l) => [...l.points.values()]));
  const x = (t) => (xs.length < 2 ? width / 2 : pad + ((t - xs[0]) / (xs[xs.length - 1] - xs[0])) * (width - 2 * pad));
  const y = (v) => height - pad + 10 - (v / max) * (height - 2 * pad);
  const paths = lines
    .map((l) => {
      const pts = xs.filter((t) => l.points.has(t)).map((t) => `${x(t).toFixed(1)},${y(l.points.get(t)).toFixed(1)}`);
      return pts.length ? `<polyline fill="none" stroke="${l.color}" stroke-width="2" points="${pts.join(" ")}"/>` : "";
    })
    .join("");
  const axis = xs.length
    ? `<text x="${pad}" y="${height - 6}" font-size="10" fill="#667085">${new Date(xs[0]).toLocaleTimeString()}</text>
       <text x="${width - pad}" y="${height - 6}" font-size="10" fill="#667085" text-anchor="end">${new Date(xs[xs.length - 1]).toLocaleTimeString()}</text>`
    : `<text x="${width / 2}" y="${height / 2}" text-anchor="middle" fill="#667085">no data yet</text>`;
  return `<div><h3>${title}</h3><svg class="chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}">
      <text x="4" y="14" font-size="10" fill="#667085">${(+max.toFixed(2)).toLocaleString()}${unit}</text>${paths}${axis}</svg>
    <div class="legend">${lines.map((l) => `<span style="color:${l.color}">■ ${l.label}</span>`).join("")}</div></div>`;
}

async function chartsPage() {
  $("#page").innerHTML = `<h2>Charts</h2><div id="charts" class="grid2"></div><div id="durations"></div>`;
  const load = async () => {
    const [submitted, completed, failed, duration, dashboard] = await Promise.all([
      perMinute("jobs_submitted"),
      perMinute("jobs_completed"),
      perMinute("jobs_failed"),
      api("/metrics?name=job_duration&limit=1000"),
      api("/dashboard?hours=24"),
    ]);
    const errorRate = new Map();
    for (const t of new Set([...completed.keys(), ...failed.keys()])) {
      const ended = (completed.get(t) || 0) + (failed.get(t) || 0);
      if (ended) errorRate.set(t, (100 * (failed.get(t) || 0)) / ended);
    }
    const avg = new Map();
    for (const p of duration.metrics) avg.set(new Date(p.timestamp).getTime(), p.value);
    $("#charts").innerHTML = [
      lineChart("Jobs per minute", [
        { label: "submitted", color: "#3949ab", points: submitted },
        { label: "completed", color: "#12805c", points: completed },
        { label: "failed or partial", color: "#b42318", points: failed },
      ]),
      lineChart("Error rate (% of jobs ended)", [{ label: "failed or partial", color: "#b42318", points: errorRate }], "%"),
      lineChart("Average job duration per minute", [{ label: "seconds", color: "#b54708", points: avg }], " s"),
    ].join("");
    const perf = dashboard.performance;
    const row = (name, s, scale, unit) =>
      `<tr><td>${name}</td><td>${s.count}</td><td>${s.p50 == null ? "—" : (s.p50 / scale).toFixed(2) + unit}</td>
        <td>${s.p95 == null ? "—" : (s.p95 / scale).toFixed(2) + unit}</td></tr>`;
    $("#durations").innerHTML = `<h3>Durations, last 24 h</h3><table><thead><tr><th>What</th><th>Count</th>
      <th>p50</th><th>p95</th></tr></thead><tbody>
      ${row("job (request to end)", perf.jobDuration, 1000, " s")}
      ${Object.entries(perf.stages).map(([stage, s]) => row(`stage: ${esc(stage)}`, s, 1, " s")).join("")}
      </tbody></table>`;
  };
  await load();
  every(15000, load);
}

// Pages of their own files (loaded after this one) have registered by now.
document.addEventListener("DOMContentLoaded", route);
