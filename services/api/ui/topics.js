// /ui/topics: the broker's topics with each consumer group's lag (GET /topics), and
// /ui/topics/<name>: the last messages of a topic or partition, decoded against the event schemas
// (GET /topics/<name>/messages). Admin only. Every key, header and value comes from whoever
// produced it: all of it is escaped, and only a job the API knows becomes a link.
"use strict";

podPages.topics = async () => {
  const name = location.pathname.replace(/\/+$/, "").split("/")[3];
  if (name) return topicMessages(decodeURIComponent(name));
  $("#page").innerHTML = `
    <h2>Topics</h2>
    <p class="muted">Every topic on the broker: its partitions' offsets and each consumer group's lag
      (messages it has not committed yet). Needs an admin key.</p>
    <div class="filters"><label><input type="checkbox" id="f-mine" checked> the engine's topics only</label>
      <span id="topics-at" class="muted"></span></div>
    <table><thead><tr><th>Topic</th><th>Partitions</th><th>Messages</th><th>Offsets (earliest–next)</th><th>Groups (lag)</th></tr></thead>
      <tbody id="topics"></tbody></table>`;
  const load = async () => {
    const list = await api("/topics");
    const shown = list.topics.filter((t) => t.registered || !$("#f-mine").checked);
    $("#topics").innerHTML =
      shown
        .map(
          (t) => `<tr data-topic="${esc(t.name)}">
            <td><a href="/ui/topics/${encodeURIComponent(t.name)}">${esc(t.name)}</a>${t.registered ? "" : ' <span class="muted">(not the engine\'s)</span>'}</td>
            <td>${t.partitions.length}</td><td>${t.messages}</td>
            <td class="muted">${t.partitions.map((p) => `${p.partition}: ${p.earliest}–${p.latest}`).join(", ")}</td>
            <td>${t.groups
              .map(
                (g) => `<div data-group="${esc(g.group)}" data-lag="${g.lag}"><span class="status ${g.lag ? "retrying" : "completed"}">${g.lag}</span>
                  ${esc(g.group)}</div>`,
              )
              .join("") || '<span class="muted">none</span>'}</td></tr>`,
        )
        .join("") || `<tr><td colspan="5" class="muted">No topics.</td></tr>`;
    $("#topics-at").textContent = `updated ${new Date().toLocaleTimeString()}`;
  };
  $("#f-mine").addEventListener("change", () => load().catch(showError));
  await load();
  every(5000, load);
};

async function topicMessages(name) {
  const params = new URLSearchParams(location.search);
  $("#page").innerHTML = `
    <h2><a href="/ui/topics">Topics</a> / <code>${esc(name)}</code></h2>
    <div class="filters">
      <select id="f-partition"><option value="">every partition</option></select>
      <select id="f-limit">${[10, 20, 50, 100].map((n) => `<option${n === 20 ? " selected" : ""}>${n}</option>`).join("")}</select>
      <button id="reload">Newest</button> <button id="older" hidden>Older</button>
      <span id="messages-at" class="muted"></span></div>
    <table><thead><tr><th>Where</th><th>Time</th><th>Key / headers</th><th>Event</th></tr></thead>
      <tbody id="messages"></tbody></table>`;
  const topic = (await api("/topics")).topics.find((t) => t.name === name);
  if (topic) {
    $("#f-partition").insertAdjacentHTML(
      "beforeend",
      topic.partitions.map((p) => `<option value="${p.partition}">partition ${p.partition} (${p.earliest}–${p.latest})</option>`).join(""),
    );
  }
  $("#f-partition").value = params.get("partition") || "";
  let before = null;
  const load = async () => {
    const q = new URLSearchParams({ limit: $("#f-limit").value });
    if ($("#f-partition").value !== "") q.set("partition", $("#f-partition").value);
    if (before !== null) q.set("before", String(before));
    const page = await api(`/topics/${encodeURIComponent(name)}/messages?${q}`);
    $("#older").hidden = page.nextBefore == null;
    $("#older").dataset.before = page.nextBefore ?? "";
    $("#messages").innerHTML =
      page.messages.map(messageRow).join("") || `<tr><td colspan="4" class="muted">No messages.</td></tr>`;
    $("#messages-at").textContent = `${page.messages.length} shown · read ${new Date().toLocaleTimeString()}`;
  };
  const again = (fromNewest) => {
    if (fromNewest) before = null;
    const q = new URLSearchParams();
    if ($("#f-partition").value !== "") q.set("partition", $("#f-partition").value);
    history.replaceState(null, "", `${location.pathname}${q.toString() ? `?${q}` : ""}`);
    load().catch(showError);
  };
  $("#f-partition").addEventListener("change", () => again(true));
  $("#f-limit").addEventListener("change", () => again(true));
  $("#reload").addEventListener("click", () => again(true));
  $("#older").addEventListener("click", () => {
    before = Number($("#older").dataset.before);
    again(false);
  });
  await load();
}

function messageRow(m) {
  const headers = m.headers
    .map((h) => `<div><span class="muted">${esc(h.name)}</span> ${esc(h.value ?? "")}</div>`)
    .join("");
  const job = m.jobLink
    ? `<a data-job-link href="/ui/jobs/${encodeURIComponent(m.jobLink)}">job ${esc(m.jobLink.slice(0, 8))}</a>`
    : m.jobId
      ? `<span class="muted">job ${esc(m.jobId.slice(0, 8))} (not known here)</span>`
      : "";
  const event = m.type
    ? `<strong data-type>${esc(m.type)}</strong> ${job}
       ${m.payload != null ? `<details><summary>payload</summary><pre>${esc(JSON.stringify(m.payload, null, 2))}</pre></details>` : ""}`
    : `<span class="status failed">not an event</span> <span data-invalid>${esc(m.invalid || "")}</span>`;
  const raw = m.raw != null ? `<pre class="raw" data-raw>${esc(m.raw)}${m.truncated ? "…" : ""}</pre>` : "";
  return `<tr data-offset="${m.partition}:${m.offset}"><td>${m.partition}@${m.offset}<div class="muted">${m.size} B</div></td>
    <td class="muted">${fmtTime(m.timestamp)}</td>
    <td><code>${esc(m.key ?? "")}</code>${headers}${m.headersOmitted ? `<div class="muted">+${m.headersOmitted} more</div>` : ""}</td>
    <td>${event}${raw}</td></tr>`;
}
