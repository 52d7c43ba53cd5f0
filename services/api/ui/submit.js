// /ui/new: start jobs from the dashboard. One job from the form (POST /jobs), or many from a CSV
// file (POST /jobs/bulk). Nothing is checked here beyond the browser's basics: the API's own
// field-level errors are shown next to their fields, so the form says exactly what the API says.
"use strict";

// A key per form: a double click, or a retry after a lost answer, is the same job.
const newKey = () =>
  (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`);

// "productTypes[1]" -> "productTypes": the form field an error belongs to.
const fieldOf = (name) => String(name || "").split(/[.[]/)[0];

// Integers as numbers, anything else as typed (the API names what is wrong with it).
const asNumber = (text) => (/^-?\d{1,9}$/.test(text.trim()) ? Number(text.trim()) : text);

podPages.new = async () => {
  const options = await api("/submission-options");
  const box = (name, value, checked) =>
    `<label class="choice"><input type="checkbox" name="${name}" value="${esc(value)}"${checked ? " checked" : ""}> ${esc(value)}</label>`;
  const levels = [];
  for (let n = options.maxLevel; n >= options.minLevel; n -= 1) levels.push(n);
  $("#page").innerHTML = `
    <h2>New job</h2>
    <form id="new-job" class="form" novalidate>
      <div class="field" data-field="theme"><label for="f-theme">Theme</label>
        <input id="f-theme" name="theme" required maxlength="200" placeholder="autumn cats"><div class="problem"></div></div>
      <div class="field" data-field="style"><label for="f-style">Style</label>
        <input id="f-style" name="style" required maxlength="200" placeholder="watercolor"><div class="problem"></div></div>
      <div class="field" data-field="niche"><label for="f-niche">Niche</label>
        <input id="f-niche" name="niche" required maxlength="200" placeholder="cat moms"><div class="problem"></div></div>
      <div class="field" data-field="prompt"><label for="f-prompt">Prompt <span class="muted">(optional)</span></label>
        <textarea id="f-prompt" name="prompt" rows="2" maxlength="4000"></textarea><div class="problem"></div></div>
      <div class="field" data-field="productTypes"><label>Product types</label>
        <div>${options.productTypes.map((t, i) => box("productTypes", t, i === 0)).join("")}</div><div class="problem"></div></div>
      <div class="field" data-field="count"><label for="f-count">Images</label>
        <input id="f-count" name="count" type="number" value="1" min="1" max="${options.maxImagesPerJob}" step="1">
        <span class="muted">at most ${options.maxImagesPerJob}</span><div class="problem"></div></div>
      <div class="field" data-field="priority"><label for="f-priority">Priority</label>
        <select id="f-priority" name="priority">
          ${options.priorities.map((p) => `<option${p === "normal" ? " selected" : ""}>${esc(p)}</option>`).join("")}
          ${levels.map((n) => `<option value="${n}">${n}${n === options.maxLevel ? " (most urgent)" : ""}</option>`).join("")}
        </select><div class="problem"></div></div>
      <div class="field" data-field="channels"><label>Channels <span class="muted">(none ticked: every channel of this deployment)</span></label>
        <div>${options.channels.map((c) => box("channels", c, false)).join("")}</div><div class="problem"></div></div>
      <div class="field" data-field="autoPublish"><label class="choice"><input type="checkbox" name="autoPublish" id="f-auto"> Publish when made (autoPublish)</label>
        <div class="problem"></div></div>
      <div class="field" data-field="review"><label for="f-review">Review</label>
        <select id="f-review" name="review">
          <option value="">this deployment's default (${options.reviewDefault ? "review" : "no review"})</option>
          <option value="true">hold the products for my review before listing</option>
          <option value="false">no review</option>
        </select><div class="problem"></div></div>
      <div class="field" data-field="body"><div class="problem"></div></div>
      <p><button id="submit-job" type="submit">Submit the job</button> <span id="submit-result" class="muted"></span></p>
    </form>
    <h2>Many jobs from a CSV file</h2>
    <p class="muted">A header line, then one job a line: <code>${options.bulkColumns.map(esc).join(",")}</code>
      (types and channels separated by <code>|</code> or <code>;</code>; an empty cell leaves a field unset;
      at most ${options.bulkMaxRows} lines). Sending the same file again submits only the lines not accepted yet.</p>
    <div class="filters"><input id="csv-file" type="file" accept=".csv,text/csv">
      <button id="submit-csv" type="button">Submit the file</button> <span id="csv-summary" class="muted"></span></div>
    <table id="csv-table" hidden><thead><tr><th>Line</th><th>Outcome</th><th>Job</th><th>Errors</th></tr></thead>
      <tbody id="csv-lines"></tbody></table>`;

  let key = newKey();
  const form = $("#new-job");
  // Any edit makes a new request: a new key (the API refuses a key reused for another body).
  form.addEventListener("input", () => {
    key = newKey();
  });
  const clearProblems = () =>
    form.querySelectorAll(".field").forEach((f) => {
      f.classList.remove("bad");
      $(".problem", f).textContent = "";
    });
  const showProblems = (detail) => {
    for (const problem of detail) {
      const field = form.querySelector(`.field[data-field="${CSS.escape(fieldOf(problem.field))}"]`) ||
        form.querySelector('.field[data-field="body"]');
      field.classList.add("bad");
      const line = document.createElement("div");
      line.textContent = problem.field === fieldOf(problem.field) ? problem.message : `${problem.field}: ${problem.message}`;
      $(".problem", field).append(line);
    }
  };
  const body = () => {
    const data = new FormData(form);
    const request = {
      theme: data.get("theme"),
      style: data.get("style"),
      niche: data.get("niche"),
      productTypes: data.getAll("productTypes"),
      count: asNumber(String(data.get("count") || "")),
      autoPublish: data.get("autoPublish") === "on",
    };
    if (String(data.get("count") || "").trim() === "") delete request.count;
    const prompt = String(data.get("prompt") || "").trim();
    if (prompt) request.prompt = prompt;
    const priority = String(data.get("priority"));
    request.priority = /^\d+$/.test(priority) ? Number(priority) : priority;
    const channels = data.getAll("channels");
    if (channels.length) request.channels = channels;
    const review = data.get("review");
    if (review) request.review = review === "true";
    return request;
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblems();
    showError(null);
    const button = $("#submit-job");
    button.disabled = true;
    $("#submit-result").textContent = "submitting…";
    try {
      const response = await fetch("/jobs", {
        method: "POST",
        headers: headers({ "Content-Type": "application/json", "Idempotency-Key": key }),
        body: JSON.stringify(body()),
      });
      const answer = await response.json().catch(() => ({}));
      if (response.ok) {
        const href = `/ui/jobs/${encodeURIComponent(answer.jobId)}`;
        $("#submit-result").innerHTML = `accepted: <a href="${esc(href)}">${esc(answer.jobId)}</a>`;
        key = newKey();
        history.pushState(null, "", href);
        route();
        return;
      }
      $("#submit-result").textContent = `${response.status}: ${answer.error || response.statusText}`;
      if (Array.isArray(answer.detail)) showProblems(answer.detail);
      else showError(new Error(`/jobs: ${answer.error || response.status}${answer.detail ? `: ${answer.detail}` : ""}`));
    } catch (error) {
      $("#submit-result").textContent = "";
      showError(error);
    } finally {
      button.disabled = false;
    }
  });

  const outcomes = {
    accepted: "completed",
    already_accepted: "resolved",
    invalid: "failed",
    not_submitted: "retrying",
  };
  $("#submit-csv").addEventListener("click", async () => {
    const file = $("#csv-file").files[0];
    if (!file) {
      $("#csv-summary").textContent = "choose a file first";
      return;
    }
    const button = $("#submit-csv");
    button.disabled = true;
    $("#csv-summary").textContent = "submitting…";
    showError(null);
    try {
      const response = await fetch("/jobs/bulk", {
        method: "POST",
        headers: headers({ "Content-Type": "text/csv" }),
        body: await file.text(),
      });
      const answer = await response.json().catch(() => ({}));
      if (!Array.isArray(answer.lines)) {
        const detail = Array.isArray(answer.detail)
          ? answer.detail.map((d) => `${d.field}: ${d.message}`).join("; ")
          : answer.detail;
        $("#csv-summary").textContent = "";
        showError(new Error(`/jobs/bulk: ${answer.error || response.status}${detail ? `: ${detail}` : ""}`));
        return;
      }
      $("#csv-summary").textContent =
        `${answer.accepted} accepted, ${answer.alreadyAccepted} already accepted, ${answer.invalid} invalid, ` +
        `${answer.notSubmitted} not submitted${answer.notSubmitted ? " (send the file again to complete it)" : ""}`;
      $("#csv-table").hidden = false;
      $("#csv-lines").innerHTML = answer.lines
        .map(
          (l) => `<tr data-line="${l.line}" data-status="${esc(l.status)}"><td>${l.line}</td>
            <td><span class="status ${outcomes[l.status] || ""}">${esc(l.status.replace("_", " "))}</span></td>
            <td>${l.jobId ? `<a href="/ui/jobs/${encodeURIComponent(l.jobId)}">${esc(l.jobId.slice(0, 8))}</a>` : ""}</td>
            <td>${l.errors.map((e) => `<div><strong>${esc(e.field)}</strong>: ${esc(e.message)}</div>`).join("")}</td></tr>`,
        )
        .join("");
    } catch (error) {
      $("#csv-summary").textContent = "";
      showError(error);
    } finally {
      button.disabled = false;
    }
  });
};
