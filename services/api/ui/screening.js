// "Screening" (issue 29): what each check flagged per day (GET /screening), and what its findings
// asked for (block, review, or allow and record). A table per day and check, totals per check.
"use strict";

const SCREENING_CHECKS = ["deny_list", "risk_review", "rendered_text", "near_duplicate", "unsafe_image"];
const SCREENING_OUTCOMES = ["block", "review", "allow"];

podPages.screening = async () => {
  const params = new URLSearchParams(location.search);
  $("#page").innerHTML = `
    <h2>Screening</h2>
    <div class="filters"><label>Days <select id="sc-days">
      <option value="7">last 7 days</option><option value="30">last 30 days</option>
      <option value="90">last 90 days</option></select></label></div>
    <div id="sc-totals" class="cards"></div>
    <h3>Images flagged per check per day (UTC)</h3>
    <table id="screening-flags"><thead><tr><th>Day</th>
      ${SCREENING_CHECKS.map((c) => `<th>${c}</th>`).join("")}</tr></thead><tbody></tbody></table>
    <p class="muted">Each cell: images flagged (block · review · allowed and recorded). A
      regenerated image is screened again and counts again.</p>`;
  $("#sc-days").value = params.get("days") || "7";
  window.__screening = { renders: 0 };
  const load = async () => {
    const body = await api(`/screening?days=${encodeURIComponent($("#sc-days").value)}`);
    $("#sc-totals").innerHTML = SCREENING_CHECKS.map((c) =>
      card(esc(c), body.byCheck[c] || 0, `since ${esc(body.since)}`),
    ).join("");
    // day -> check -> outcome -> images
    const days = new Map();
    for (const f of body.flags) {
      const day = days.get(f.day) || new Map();
      const check = day.get(f.check) || {};
      check[f.outcome] = f.flagged;
      day.set(f.check, check);
      days.set(f.day, day);
    }
    const cell = (found) => {
      if (!found) return `<td class="muted">0</td>`;
      const total = SCREENING_OUTCOMES.reduce((n, o) => n + (found[o] || 0), 0);
      const parts = SCREENING_OUTCOMES.map((o) =>
        found[o] ? `<span class="status screened-${o}">${found[o]} ${o}</span>` : "",
      ).join(" ");
      return `<td><b>${total}</b> ${parts}</td>`;
    };
    $("#screening-flags tbody").innerHTML =
      [...days.entries()]
        .map(
          ([day, checks]) =>
            `<tr data-day="${esc(day)}"><td>${esc(day)}</td>${SCREENING_CHECKS.map((c) => cell(checks.get(c))).join("")}</tr>`,
        )
        .join("") || `<tr><td colspan="${SCREENING_CHECKS.length + 1}" class="muted">Nothing flagged in these days.</td></tr>`;
    window.__screening.renders += 1;
  };
  $("#sc-days").addEventListener("change", () => {
    const days = $("#sc-days").value;
    history.replaceState(null, "", `/ui/screening${days === "7" ? "" : `?days=${days}`}`);
    load().catch(showError);
  });
  await load();
  every(30000, load);
};
