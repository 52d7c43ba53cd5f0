// The seller's review: /ui/review lists the images awaiting a decision across the key's jobs;
// /ui/jobs/<id>/review shows one job's images, each with its products' mockups side by side, its
// copy, prices and margins, and takes decisions from the keyboard (a approve, x reject,
// g regenerate, j/k next/previous). Decisions go to the API (POST .../approve|reject|regenerate),
// which produces them to the pipeline; the page shows each one's result or the API's reason.
"use strict";

const REVIEW_KEYS = "a approve · x reject · g regenerate (Enter sends, Esc closes) · j/k next/previous";
const DECIDED = { approve: "approved", reject: "rejected", regenerate: "sent back to regenerate" };

// A vendor's mockup URL: shown only when it is a web address (never javascript: or data:).
const mockupUrl = (value) => webUrl(value);

// An image of the job drawn from its preview (fetched with the key: <img src> would send none).
async function reviewThumbnail(jobId, index, img) {
  try {
    const response = await fetch(`/jobs/${encodeURIComponent(jobId)}/images/${index}?size=320`, { headers: headers() });
    if (!response.ok) return;
    img.src = URL.createObjectURL(await response.blob());
    img.dataset.loaded = "1";
  } catch (error) {
    showError(error);
  }
}

// A decision: its answer's body (2xx), or the API's reason (4xx/5xx) as the error's message.
async function postDecision(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify(body),
  });
  let answer = null;
  try {
    answer = await response.json();
  } catch (_) {
    // not JSON: the status says enough
  }
  if (!response.ok) {
    const detail = answer && (Array.isArray(answer.detail)
      ? answer.detail.map((d) => `${d.field}: ${d.message}`).join("; ")
      : answer.detail);
    const error = new Error(detail || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return { status: response.status, body: answer };
}

const priceRange = (low, high) => (low == null ? "—" : `${money(low)}${high && high !== low ? `–${money(high)}` : ""}`);

function reviewProduct(p) {
  const mockups = (p.mockups || []).map(mockupUrl).filter(Boolean).slice(0, 2);
  return `<div class="mockup" data-product="${esc(p.productType)}">
    ${mockups.length ? mockups.map((url) => `<img src="${esc(url)}" alt="${esc(p.productType)} mockup" loading="lazy" referrerpolicy="no-referrer">`).join("") : `<div class="no-mockup muted">no mockup</div>`}
    <div><strong>${esc(p.productType)}</strong> <span class="status ${esc(p.status)}">${esc(p.status)}</span></div>
    <div data-price>price ${priceRange(p.priceMinCents, p.priceMaxCents)}</div>
    <div class="muted">cost ${priceRange(p.costMinCents, p.costMaxCents)}</div>
    <div data-margin>least profit ${money(p.profitMinCents) || "—"} · margin ${p.marginMinPercent == null ? "—" : `${p.marginMinPercent.toFixed(1)}%`}</div>
  </div>`;
}

function reviewItem(image) {
  const decided = image.decidedBy ? `${esc(DECIDED[image.decision] || image.decision)} by ${esc(image.decidedBy)} · ${fmtTime(image.decidedAt)}` : "";
  return `<section class="review-item" data-review="${image.imageIndex}" data-state="${esc(image.state)}" tabindex="-1">
    <div class="review-head">
      <figure><img data-thumb alt="${esc(image.title)}"><figcaption>image ${image.imageIndex} · generation ${image.generation}</figcaption></figure>
      <div class="review-copy">
        <h3>${esc(image.title)} <span class="status ${esc(image.state)}" data-review-state>${esc(image.state)}</span></h3>
        <div class="tags">${image.tags.map((t) => `<span class="tag">${esc(t)}</span>`).join("")}</div>
        <p class="muted">${esc(image.description)}</p>
        <div class="screening">${screeningOf(image.screening)}</div>
        <div class="muted" data-decided>${decided}</div>
        <div class="actions">
          <button data-act="approve" title="a">Approve</button>
          <button data-act="reject" title="x">Reject</button>
          <button data-act="regenerate" title="g">Regenerate…</button>
        </div>
        <form class="regen" hidden><input name="prompt" size="80" maxlength="4000" aria-label="prompt"></form>
        <div class="result" data-result role="status"></div>
      </div>
    </div>
    <div class="mockups">${image.products.map(reviewProduct).join("") || `<span class="muted">its products are still being made</span>`}</div>
  </section>`;
}

podPages["jobs/review"] = async (jobId) => {
  const path = `/jobs/${encodeURIComponent(jobId)}`;
  $("#page").innerHTML = `
    <h2>Review of job <a href="/ui/jobs/${encodeURIComponent(jobId)}"><code>${esc(jobId)}</code></a>
      <span class="muted" id="review-summary"></span></h2>
    <p class="muted keys">${REVIEW_KEYS}</p>
    <div id="review-items"></div>`;
  const review = await api(`${path}/review`);
  const images = review.images;
  window.__pod = { ...(window.__pod || {}), review: { decisions: 0 } };
  $("#review-summary").textContent = `· ${review.theme} / ${review.niche} · ${review.detailedStatus}${review.review ? "" : " · submitted without review"}`;
  $("#review-items").innerHTML = images.map(reviewItem).join("") || `<p class="muted">No image yet.</p>`;
  for (const image of images) {
    reviewThumbnail(jobId, image.imageIndex, $(`[data-review="${image.imageIndex}"] img[data-thumb]`));
  }
  // Sections are replaced when an image changes under the page (a regenerated image arrives).
  const section = (n) => document.querySelectorAll("#review-items .review-item")[n];
  const count = () => document.querySelectorAll("#review-items .review-item").length;
  const indexOf = (element) => [...document.querySelectorAll("#review-items .review-item")].indexOf(element);
  let focused = Math.max(0, images.findIndex((i) => i.state === "awaiting"));
  const focus = (n) => {
    if (!count()) return;
    focused = Math.min(count() - 1, Math.max(0, n));
    document.querySelectorAll("#review-items .review-item").forEach((s, i) => s.classList.toggle("focused", i === focused));
    section(focused).scrollIntoView({ block: "nearest" });
    section(focused).focus({ preventScroll: true });
  };
  focus(focused);
  const showState = (n, image) => {
    const el = section(n);
    el.dataset.state = image.state;
    const badge = $("[data-review-state]", el);
    badge.textContent = image.state;
    badge.className = `status ${image.state}`;
  };

  const decide = async (n, action, extra = {}) => {
    const image = images[n];
    const result = $("[data-result]", section(n));
    result.className = "result";
    result.textContent = `${action}…`;
    try {
      const { status, body } = await postDecision(`${path}/images/${image.imageIndex}/${action}`, {
        generation: image.generation,
        ...extra,
      });
      image.state = body.state;
      showState(n, image);
      result.classList.add("ok");
      result.textContent = `${status === 200 ? "already " : ""}${DECIDED[body.action]} by ${body.decidedBy}`;
    } catch (error) {
      result.classList.add("refused");
      result.textContent = error.message;
    }
    window.__pod.review.decisions += 1;
  };
  const openPrompt = (n) => {
    const form = $("form.regen", section(n));
    const input = form.elements.prompt;
    form.hidden = false;
    if (!input.value) input.value = images[n].prompt;
    input.focus();
  };

  $("#review-items").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-act]");
    if (!button) return;
    const n = indexOf(button.closest(".review-item"));
    focus(n);
    if (button.dataset.act === "regenerate") openPrompt(n);
    else decide(n, button.dataset.act);
  });
  $("#review-items").addEventListener("submit", (event) => {
    event.preventDefault();
    const n = indexOf(event.target.closest(".review-item"));
    const text = event.target.elements.prompt.value.trim();
    event.target.hidden = true;
    focus(n);
    decide(n, "regenerate", text && text !== images[n].prompt ? { prompt: text } : {});
  });
  const onKey = (event) => {
    if (event.metaKey || event.ctrlKey || event.altKey) return;
    if (event.target.closest && event.target.closest("input, textarea, select")) {
      if (event.key === "Escape") {
        event.target.closest("form.regen")?.setAttribute("hidden", "");
        focus(focused);
      }
      return; // typing a prompt (or a key): not a decision
    }
    const act = { a: "approve", x: "reject" }[event.key];
    if (act) decide(focused, act);
    else if (event.key === "g") openPrompt(focused);
    else if (event.key === "j") focus(focused + 1);
    else if (event.key === "k") focus(focused - 1);
    else return;
    event.preventDefault();
  };
  document.addEventListener("keydown", onKey);
  onLeave(() => document.removeEventListener("keydown", onKey));

  // The job's log moves (a decision folded, a regenerated image's products made): look again.
  // An image of a new generation is drawn anew; another's state only is updated in place.
  const refresh = async () => {
    const now = (await api(`${path}/review`)).images;
    now.forEach((image, n) => {
      const before = images[n];
      if (!before || !section(n)) return; // a job's images are all known once it is reviewed
      if (image.generation !== before.generation || image.products.length !== before.products.length) {
        section(n).outerHTML = reviewItem(image);
        reviewThumbnail(jobId, image.imageIndex, $(`[data-review="${image.imageIndex}"] img[data-thumb]`));
        images[n] = image;
        section(n).classList.toggle("focused", n === focused); // not focus(): a prompt may be open
      } else if (image.state !== before.state) {
        images[n] = image;
        showState(n, image);
      }
    });
    window.__pod.review.refreshes = (window.__pod.review.refreshes || 0) + 1;
  };
  follow(`${path}/events`, refresh);
};

podPages.review = async () => {
  $("#page").innerHTML = `
    <h2>Review <span class="muted" id="queue-total"></span></h2>
    <p class="muted">Images of your jobs waiting for a decision, the longest waiting first. Open one to
      see its mockups and decide (${REVIEW_KEYS}).</p>
    <table><thead><tr><th></th><th>Job</th><th>Image</th><th>Title</th><th>Theme / niche</th>
      <th>Products</th><th>Waiting since</th></tr></thead><tbody id="queue"></tbody></table>`;
  const shown = new Set();
  const load = async () => {
    const queue = await api("/reviews?state=awaiting&limit=200");
    $("#queue-total").textContent = `· ${queue.total} awaiting`;
    $("#queue").innerHTML =
      queue.reviews
        .map(
          (r) => `<tr data-queue="${esc(r.jobId)}:${r.imageIndex}">
            <td><img class="mini" data-thumb alt=""></td>
            <td><a href="/ui/jobs/${encodeURIComponent(r.jobId)}/review">${esc(r.jobId.slice(0, 8))}</a></td>
            <td>${r.imageIndex} <span class="muted">gen ${r.generation}</span></td>
            <td>${esc(r.title || "")}</td><td>${esc(r.theme)} <span class="muted">/ ${esc(r.niche)}</span></td>
            <td>${r.productCount}</td><td class="muted">${fmtTime(r.awaitingSince)}</td></tr>`,
        )
        .join("") || `<tr><td colspan="7" class="muted">Nothing awaits your review.</td></tr>`;
    shown.clear();
    for (const r of queue.reviews.slice(0, 50)) {
      const img = $(`tr[data-queue="${CSS.escape(`${r.jobId}:${r.imageIndex}`)}"] img[data-thumb]`);
      if (img && !shown.has(img)) {
        shown.add(img);
        reviewThumbnail(r.jobId, r.imageIndex, img);
      }
    }
  };
  await load();
  every(10000, load);
};
