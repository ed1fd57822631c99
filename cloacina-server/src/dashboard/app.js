// Cloacina dashboard: a small single-page app over /api/v1 (same origin, relative URLs so it
// works wherever the router is mounted). No build step, no external assets.
"use strict";

const main = document.getElementById("main");
const tokenInput = document.getElementById("token");
// The token lives for this tab's session only (sessionStorage), never in localStorage.
tokenInput.value = sessionStorage.getItem("cloacina-token") || "";
tokenInput.addEventListener("change", () => sessionStorage.setItem("cloacina-token", tokenInput.value));

let refreshTimer = null;
// The live view's event stream (`api/v1/events`, `api/v1/runs/{id}/events`): kept while the page
// shows the same thing, so re-rendering does not reconnect; `EventSource` resumes by itself with
// the last event's id after a lost connection.
let liveStream = { key: null, source: null, timer: null };

/// Follows `path`'s event stream and calls `onChange` (at most every 300 ms) when it says
/// something changed.
function follow(key, path, onChange) {
  if (liveStream.key === key) return;
  stopFollowing();
  const source = new EventSource(path);
  const changed = () => {
    if (liveStream.timer) return;
    liveStream.timer = setTimeout(() => { liveStream.timer = null; onChange(); }, 300);
  };
  source.addEventListener("run", changed);
  source.addEventListener("task", changed);
  liveStream = { key, source, timer: null };
}

function stopFollowing() {
  if (liveStream.source) liveStream.source.close();
  clearTimeout(liveStream.timer);
  liveStream = { key: null, source: null, timer: null };
}
let selectedTask = { run: null, task: null };

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function when(t) {
  return t ? new Date(t).toLocaleString() : "";
}

function took(from, to) {
  if (!from || !to) return "";
  const ms = new Date(to) - new Date(from);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function badge(status) {
  return `<span class="status" data-status="${esc(status)}">${esc(status)}</span>`;
}

/// A run id for people: its last 8 hex digits. A UUIDv7 begins with its creation time, so the
/// first digits of runs made together are the same; the last ones are random.
function shortId(id) {
  return `…${String(id).slice(-8)}`;
}

function toast(text) {
  const el = document.getElementById("toast");
  el.textContent = text;
  el.style.display = "block";
  setTimeout(() => (el.style.display = "none"), 4000);
}

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json" };
  if (tokenInput.value) headers.Authorization = `Bearer ${tokenInput.value}`;
  const response = await fetch(`api/v1/${path}`, { ...options, headers });
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(body?.error?.message || `HTTP ${response.status}`);
  return body;
}

async function act(path, question, after) {
  if (!confirm(question)) return;
  try {
    const result = await api(path, { method: "POST" });
    toast("Done");
    after(result);
  } catch (e) {
    toast(e.message);
  }
}

function setActive(name) {
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.id === `nav-${name}`);
}

// ---- Runs list ----------------------------------------------------------------------------

async function runsPage(params) {
  setActive("runs");
  const workflow = params.get("workflow") || "";
  const status = params.get("status") || "";
  const live = params.get("live") !== "0";
  const statuses = ["", "Pending", "Running", "Paused", "Completed", "Failed", "Cancelled"];
  main.innerHTML = `<h1>Runs</h1>
    <form class="filters" id="filters">
      <input name="workflow" placeholder="workflow" value="${esc(workflow)}">
      <select name="status">${statuses.map((s) => `<option ${s === status ? "selected" : ""} value="${s}">${s || "any status"}</option>`).join("")}</select>
      <label><input type="checkbox" name="live" ${live ? "checked" : ""}> live</label>
      <button>Filter</button>
    </form>
    <table><thead><tr><th>Run</th><th>Workflow</th><th>Status</th><th class="wide">Created</th><th class="wide">Took</th></tr></thead>
    <tbody id="runs"></tbody></table>
    <p><button id="more" hidden>More</button></p>`;
  document.getElementById("filters").addEventListener("submit", (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const q = new URLSearchParams();
    if (f.get("workflow")) q.set("workflow", f.get("workflow"));
    if (f.get("status")) q.set("status", f.get("status"));
    if (!f.get("live")) q.set("live", "0");
    location.hash = `#/runs?${q}`;
  });
  let cursor = null;
  const load = async (append) => {
    const q = new URLSearchParams({ limit: "50" });
    if (workflow) q.set("workflow", workflow);
    if (status) q.set("status", status);
    if (append && cursor) q.set("cursor", cursor);
    const page = await api(`runs?${q}`);
    const rows = page.runs.map((r) => `<tr data-run="${esc(r.id)}">
        <td class="mono"><a href="#/runs/${esc(r.id)}" title="${esc(r.id)}">${esc(shortId(r.id))}</a></td>
        <td>${esc(r.workflow_name)}</td><td>${badge(r.status)}</td>
        <td class="wide">${when(r.created_at)}</td><td class="wide">${took(r.created_at, r.completed_at)}</td></tr>`).join("");
    const body = document.getElementById("runs");
    if (!body) return;
    body.innerHTML = append ? body.innerHTML + rows : rows || `<tr><td colspan="5" class="muted">No runs</td></tr>`;
    cursor = page.next_cursor;
    const more = document.getElementById("more");
    more.hidden = !cursor;
    more.onclick = () => load(true);
  };
  await load(false);
  if (live) follow(`runs?${workflow}&${status}`, "api/v1/events", () => load(false).catch(() => {}));
  else stopFollowing();
}

// ---- One run --------------------------------------------------------------------------------

/// Layered layout: a task's column is the longest dependency path to it.
function layout(tasks) {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const depth = new Map();
  const visit = (id, seen = new Set()) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id)) return 0;
    seen.add(id);
    const t = byId.get(id);
    const d = t && t.dependencies.length ? 1 + Math.max(...t.dependencies.map((x) => visit(x, seen))) : 0;
    depth.set(id, d);
    return d;
  };
  tasks.forEach((t) => visit(t.id));
  const columns = [];
  for (const t of tasks) (columns[depth.get(t.id)] ||= []).push(t.id);
  const pos = new Map();
  columns.forEach((col, x) => col.forEach((id, y) => pos.set(id, { x: 20 + x * 190, y: 20 + y * 60 })));
  const width = 40 + columns.length * 190;
  const height = 40 + Math.max(1, ...columns.map((c) => c.length)) * 60;
  return { pos, width, height };
}

function graphSvg(graphTasks, statusOf) {
  const { pos, width, height } = layout(graphTasks);
  const edges = graphTasks.flatMap((t) => t.dependencies.map((d) => {
    const a = pos.get(d), b = pos.get(t.id);
    return a && b ? `<line x1="${a.x + 150}" y1="${a.y + 18}" x2="${b.x}" y2="${b.y + 18}" marker-end="url(#arrow)"/>` : "";
  })).join("");
  const nodes = graphTasks.map((t) => {
    const p = pos.get(t.id);
    const status = statusOf(t.id);
    return `<g class="node" data-task="${esc(t.id)}" data-status="${esc(status)}" transform="translate(${p.x},${p.y})">
      <rect width="150" height="36" rx="6" fill="var(--${esc(status)}, #9e9e9e)"></rect>
      <title>${esc(t.id)}: ${esc(status)}</title>
      <text x="8" y="22">${esc(t.id.length > 20 ? t.id.slice(0, 19) + "…" : t.id)}</text></g>`;
  }).join("");
  return `<svg width="${width}" height="${height}" role="img" aria-label="task graph">
    <defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#888"/></marker></defs>
    ${edges}${nodes}</svg>`;
}

/// The run's timeline: a row per task, each attempt a bar on one time axis from the run's
/// creation (the thin line before a task's first bar is its wait: for its dependencies, then
/// for a runner; gaps between bars are retry delays). The critical path (from the task that
/// ended last, back through the dependency that ended last) is outlined.
function timelineSvg(run, graphTasks, tasks, attempts) {
  const t0 = new Date(run.created_at).getTime();
  const now = Date.now();
  const ms = (t) => (t ? new Date(t).getTime() : null);
  const byName = new Map(tasks.map((t) => [t.task_name, t]));
  const barsOf = (t) => {
    const own = attempts.filter((a) => a.task_execution_id === t.id && a.started_at)
      .map((a) => ({ from: ms(a.started_at), to: ms(a.ended_at) ?? (t.status === "Running" ? now : ms(a.started_at)), outcome: a.outcome, attempt: a.attempt }));
    // A running attempt may not have its record yet: the task's own start says when it began.
    if (t.status === "Running" && t.started_at && !own.some((b) => b.from >= ms(t.started_at))) {
      own.push({ from: ms(t.started_at), to: now, outcome: "running", attempt: t.attempt });
    }
    return own.sort((a, b) => a.from - b.from);
  };
  const rows = graphTasks.map((g) => ({ id: g.id, deps: g.dependencies, task: byName.get(g.id) }))
    .map((r) => ({ ...r, bars: r.task ? barsOf(r.task) : [] }))
    // In the order they first ran; those that never ran last.
    .sort((a, b) => (a.bars[0]?.from ?? Infinity) - (b.bars[0]?.from ?? Infinity) || a.id.localeCompare(b.id));
  const endOf = (r) => Math.max(0, ...r.bars.map((b) => b.to));
  const end = Math.max(t0 + 1, ms(run.completed_at) ?? 0, ...rows.map(endOf));
  const critical = new Set();
  const rowById = new Map(rows.map((r) => [r.id, r]));
  let at = rows.filter((r) => r.bars.length).sort((a, b) => endOf(b) - endOf(a))[0];
  while (at && !critical.has(at.id)) {
    critical.add(at.id);
    at = at.deps.map((d) => rowById.get(d)).filter((r) => r && r.bars.length).sort((a, b) => endOf(b) - endOf(a))[0];
  }
  const label = 170, width = 900, rowH = 26, plot = width - label - 20;
  const x = (t) => label + ((t - t0) / (end - t0)) * plot;
  const span = end - t0;
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const tx = label + f * plot;
    const v = f * span;
    const text = span < 2000 ? `${Math.round(v)} ms` : v < 10000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v / 1000)} s`;
    return `<line class="tick" x1="${tx}" y1="14" x2="${tx}" y2="${24 + rows.length * rowH}"/>
      <text class="axis" x="${tx}" y="10" text-anchor="${f === 1 ? "end" : f === 0 ? "start" : "middle"}">${text}</text>`;
  }).join("");
  const body = rows.map((r, i) => {
    const y = 20 + i * rowH;
    const first = r.bars[0];
    const wait = first ? `<line class="wait" x1="${x(t0)}" y1="${y + 10}" x2="${x(first.from)}" y2="${y + 10}"><title>${esc(r.id)} waited ${took(new Date(t0), new Date(first.from))}</title></line>` : "";
    const bars = r.bars.map((b) => `<rect class="bar${critical.has(r.id) ? " critical" : ""}" data-outcome="${esc(b.outcome)}" x="${x(b.from)}" y="${y + 3}" width="${Math.max(2, x(b.to) - x(b.from))}" height="${rowH - 8}">
      <title>${esc(r.id)} attempt ${b.attempt}: ${esc(b.outcome)}, ${took(new Date(b.from), new Date(b.to))}</title></rect>`).join("");
    return `<g class="lane" data-task="${esc(r.id)}" data-attempts="${r.bars.length}"><text x="4" y="${y + 15}">${esc(r.id.length > 22 ? r.id.slice(0, 21) + "…" : r.id)}</text>${wait}${bars}</g>`;
  }).join("");
  return `<svg id="timeline" width="${width}" height="${30 + rows.length * rowH}" role="img" aria-label="run timeline" data-critical="${esc([...critical].reverse().join(","))}">${ticks}${body}</svg>`;
}

async function runPage(id) {
  setActive("runs");
  const d = await api(`runs/${encodeURIComponent(id)}`);
  const run = d.run;
  const byName = new Map(d.tasks.map((t) => [t.task_name, t]));
  const attemptsOf = (t) => d.attempts.filter((a) => a.task_execution_id === t.id);
  const graphTasks = d.graph?.tasks?.map((t) => ({ id: t.id, dependencies: t.dependencies }))
    || d.tasks.map((t) => ({ id: t.task_name, dependencies: [] }));
  const active = ["Pending", "Running", "Paused"].includes(run.status);
  main.innerHTML = `<h1>Run <span class="mono">${esc(run.id)}</span></h1>
    <p>${esc(run.workflow_name)} <span class="muted mono">${esc(run.workflow_version)}</span> ${badge(run.status)}
      <span class="muted">created ${when(run.created_at)}${run.completed_at ? `, ended ${when(run.completed_at)} (${took(run.created_at, run.completed_at)})` : ""}</span></p>
    ${run.error_details ? `<p class="error" id="run-error">${esc(run.error_details)}</p>` : ""}
    <p class="actions">
      ${active ? `<button id="cancel">Cancel</button>` : ""}
      ${["Pending", "Running"].includes(run.status) ? `<button id="pause">Pause</button>` : ""}
      ${run.status === "Paused" ? `<button id="resume">Resume</button>` : ""}
      ${["Failed", "Cancelled"].includes(run.status) ? `<button id="retry">Retry</button>` : ""}
    </p>
    ${d.waiting.length ? `<ul class="muted">${d.waiting.map((w) => `<li>${esc(w)}</li>`).join("")}</ul>` : ""}
    <div class="graph" id="graph">${graphSvg(graphTasks, (t) => byName.get(t)?.status || "NotStarted")}</div>
    <div class="panel" id="task-panel"><span class="muted">Click a task for its attempts, error and timings.</span></div>
    <h2>Timeline</h2>
    <div class="graph">${timelineSvg(run, graphTasks, d.tasks, d.attempts)}</div>
    <p class="muted">Each bar is an attempt (green: completed, red: failed or retried, blue: running, grey: given back); the line before it is the task's wait; outlined bars are the critical path.</p>
    <h2>Tasks</h2>
    <table><thead><tr><th>Task</th><th>Status</th><th>Attempts</th><th class="wide">Runner</th><th class="wide">Took</th><th>Error</th></tr></thead><tbody>
    ${d.tasks.map((t) => `<tr><td>${esc(t.task_name)}</td><td>${badge(t.status)}</td><td>${attemptsOf(t).length}/${t.max_attempts}</td>
      <td class="wide mono">${esc(t.claimed_by)}</td><td class="wide">${took(t.started_at, t.completed_at)}</td><td class="error">${esc(t.error_details)}</td></tr>`).join("")}
    </tbody></table>
    ${d.recovery_events.length ? `<h2>Recovery events</h2><table><tbody>${d.recovery_events.map((e) => `<tr><td>${when(e.recovered_at || e.created_at)}</td><td>${esc(e.recovery_type)}</td><td class="mono">${esc(JSON.stringify(e.details ?? ""))}</td></tr>`).join("")}</tbody></table>` : ""}
    <h2>Input</h2><pre id="input">${esc(JSON.stringify(d.input, null, 2))}</pre>
    <h2>Output</h2><pre id="output">${esc(JSON.stringify(d.output, null, 2))}</pre>`;
  const showTask = (name) => {
    main.querySelectorAll(".graph .node").forEach((n) => n.classList.toggle("selected", n.dataset.task === name));
    const t = byName.get(name);
    const tries = t ? attemptsOf(t) : [];
    document.getElementById("task-panel").innerHTML = t
      ? `<strong>${esc(t.task_name)}</strong> ${badge(t.status)}<br>${tries.length} of ${t.max_attempts} attempts run
         ${t.retry_at && t.status === "Ready" ? `, next try ${when(t.retry_at)}` : ""}
         ${t.lease_expires_at ? `<br>lease until ${when(t.lease_expires_at)}` : ""}
         ${t.error_details ? `<p class="error" id="task-error">${esc(t.error_details)}</p>` : ""}
         ${tries.length ? `<table id="attempts"><thead><tr><th>#</th><th>Outcome</th><th class="wide">Runner</th><th>Started</th><th>Took</th><th>Error</th></tr></thead><tbody>
         ${tries.map((a) => `<tr><td>${a.attempt}</td><td>${esc(a.outcome)}</td><td class="wide mono">${esc(a.runner)}</td><td>${when(a.started_at)}</td>
           <td>${took(a.started_at, a.ended_at)}</td><td class="error">${esc(a.error_details)}</td></tr>`).join("")}</tbody></table>` : ""}`
      : `<strong>${esc(name)}</strong>: not created in this run`;
  };
  for (const node of main.querySelectorAll(".graph .node")) {
    node.addEventListener("click", () => {
      selectedTask = { run: run.id, task: node.dataset.task };
      showTask(node.dataset.task);
    });
  }
  // The page re-renders on each change the event stream reports: an open task panel stays open.
  if (selectedTask.run === run.id && selectedTask.task) showTask(selectedTask.task);
  main.dataset.renders = String(Number(main.dataset.renders || 0) + 1);
  const again = () => route();
  const on = (button, path, question, after = again) => document.getElementById(button)?.addEventListener("click", () => act(path, question, after));
  on("cancel", `runs/${run.id}/cancel`, "Cancel this run? Tasks not started yet will never run.");
  on("pause", `runs/${run.id}/pause`, "Pause this run? Nothing new starts until it is resumed.");
  on("resume", `runs/${run.id}/resume`, "Resume this run?");
  on("retry", `runs/${run.id}/retry`, "Start a new run of this workflow with the same input?", (r) => (location.hash = `#/runs/${r.id}`));
  if (active) {
    const since = encodeURIComponent(run.updated_at);
    follow(`run ${run.id}`, `api/v1/runs/${encodeURIComponent(run.id)}/events?since=${since}`, () => {
      if (location.hash === `#/runs/${id}`) route();
    });
  } else {
    stopFollowing();
  }
}

// ---- Schedules ----------------------------------------------------------------------------

async function schedulesPage() {
  setActive("schedules");
  const [{ schedules }, { workflows }] = await Promise.all([api("schedules"), api("workflows")]);
  const policies = ["", "skip", "run_once", "run_all"];
  main.innerHTML = `<h1>Schedules</h1>
    <form class="schedule" id="schedule-form">
      <label>Workflow <select name="workflow" required>${workflows.map((w) => `<option value="${esc(w.name)}">${esc(w.name)}</option>`).join("")}</select></label>
      <label>Cron expression <input name="expression" required maxlength="256" placeholder="0 3 * * *"></label>
      <label>Time zone <input name="timezone" maxlength="64" placeholder="UTC"></label>
      <label>Catch-up <select name="catchup">${policies.map((p) => `<option value="${p}">${p || "default"}</option>`).join("")}</select></label>
      <label class="full">Context (JSON) <textarea name="context">{}</textarea></label>
      <p class="full"><button id="schedule-save">Create schedule</button> <button type="button" id="schedule-cancel" hidden>Cancel edit</button></p>
    </form>
    <table><thead><tr><th>Workflow</th><th>Expression</th><th class="wide">Zone</th><th>Next fire</th><th>State</th><th></th></tr></thead><tbody>
    ${schedules.map((s) => `<tr data-schedule="${esc(s.id)}"><td>${esc(s.workflow_name)}</td><td class="mono">${esc(s.cron_expression)}</td><td class="wide">${esc(s.timezone)}</td>
      <td>${s.enabled ? when(s.next_run_at) : "<span class=muted>paused</span>"}</td><td>${s.enabled ? "running" : "paused"}</td>
      <td class="actions"><button data-id="${esc(s.id)}" data-do="${s.enabled ? "pause" : "resume"}">${s.enabled ? "Pause" : "Resume"}</button>
        <button data-id="${esc(s.id)}" data-edit>Edit</button><button data-id="${esc(s.id)}" data-delete>Delete</button></td></tr>`).join("")
      || `<tr><td colspan="6" class="muted">No schedules</td></tr>`}
    </tbody></table>`;
  const form = document.getElementById("schedule-form");
  let editing = null;
  const reset = () => {
    editing = null;
    form.reset();
    form.workflow.disabled = false;
    document.getElementById("schedule-save").textContent = "Create schedule";
    document.getElementById("schedule-cancel").hidden = true;
  };
  document.getElementById("schedule-cancel").addEventListener("click", reset);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    let context;
    try { context = JSON.parse(form.context.value || "{}"); } catch (err) { toast(`The context is not JSON: ${err.message}`); return; }
    const body = { expression: form.expression.value, context };
    if (form.timezone.value) body.timezone = form.timezone.value;
    if (form.catchup.value) body.catchup = form.catchup.value;
    try {
      if (editing) {
        await api(`schedules/${editing}`, { method: "PUT", body: JSON.stringify(body) });
        toast("Schedule changed");
      } else {
        await api("schedules", { method: "POST", body: JSON.stringify({ workflow: form.workflow.value, ...body }) });
        toast("Schedule created");
      }
      route();
    } catch (err) { toast(err.message); }
  });
  for (const b of main.querySelectorAll("button[data-do]")) {
    b.addEventListener("click", () => act(`schedules/${b.dataset.id}/${b.dataset.do}`, `${b.textContent} this schedule?`, () => route()));
  }
  for (const b of main.querySelectorAll("button[data-edit]")) {
    b.addEventListener("click", () => {
      const s = schedules.find((x) => x.id === b.dataset.id);
      editing = s.id;
      form.workflow.value = s.workflow_name;
      form.workflow.disabled = true;
      form.expression.value = s.cron_expression;
      form.timezone.value = s.timezone;
      form.catchup.value = s.catchup_policy;
      form.context.value = JSON.stringify(s.context, null, 2);
      document.getElementById("schedule-save").textContent = "Save changes";
      document.getElementById("schedule-cancel").hidden = false;
      form.scrollIntoView();
    });
  }
  for (const b of main.querySelectorAll("button[data-delete]")) {
    b.addEventListener("click", async () => {
      if (!confirm("Delete this schedule and its fire-time history? The runs it started stay.")) return;
      try {
        await api(`schedules/${b.dataset.id}`, { method: "DELETE" });
        toast("Schedule deleted");
        route();
      } catch (err) { toast(err.message); }
    });
  }
}

// ---- Workflows ----------------------------------------------------------------------------

async function workflowsPage() {
  setActive("workflows");
  const { workflows } = await api("workflows");
  main.innerHTML = `<h1>Workflows</h1>${workflows.map((w) => {
    const latest = w.versions[w.versions.length - 1];
    const live = w.versions.filter((v) => v.live).map((v) => v.version);
    return `<section data-workflow="${esc(w.name)}"><h2>${esc(w.name)} <a class="small" href="#/workflows/${encodeURIComponent(w.name)}">overview</a></h2>
      <p class="muted">versions: ${w.versions.map((v) => `<span class="mono">${esc(v.version)}</span>${v.live ? " (live)" : ""}`).join(", ")}
      ${live.length ? "" : " — no live runner has it"}</p>
      <div class="graph">${graphSvg((latest.graph?.tasks || []).map((t) => ({ id: t.id, dependencies: t.dependencies })), () => "NotStarted")}</div>
      <form class="inline start" data-workflow="${esc(w.name)}">
        <textarea name="context" aria-label="input context (JSON)">{}</textarea>
        <button>Start a run</button></form></section>`;
  }).join("") || `<p class="muted">No runner has registered a workflow yet.</p>`}`;
  for (const form of main.querySelectorAll("form.start")) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      let context;
      try { context = JSON.parse(form.context.value || "{}"); } catch (err) { toast(`The context is not JSON: ${err.message}`); return; }
      if (!confirm(`Start a run of ${form.dataset.workflow}?`)) return;
      try {
        const r = await api("runs", { method: "POST", body: JSON.stringify({ workflow: form.dataset.workflow, context }) });
        location.hash = `#/runs/${r.id}`;
      } catch (err) { toast(err.message); }
    });
  }
}

// ---- One workflow's overview -----------------------------------------------------------------

const STATUS_ORDER = ["Completed", "Failed", "Cancelled", "Running", "Paused", "Pending"];

/// Runs per status over time: one stacked bar per bucket.
function runsChartSvg(o) {
  const width = 900, height = 220, left = 40, bottom = 30, top = 10;
  const totals = o.buckets.map((b) => Object.values(b.counts).reduce((a, n) => a + n, 0));
  const max = Math.max(1, ...totals);
  const slot = (width - left - 10) / o.buckets.length;
  const y = (n) => top + (height - top - bottom) * (1 - n / max);
  const bars = o.buckets.map((b, i) => {
    let acc = 0;
    return STATUS_ORDER.filter((st) => b.counts[st]).map((st) => {
      const n = b.counts[st];
      const rect = `<rect class="seg" data-status="${st}" x="${left + i * slot + 2}" y="${y(acc + n)}" width="${Math.max(1, slot - 4)}" height="${y(acc) - y(acc + n)}" fill="var(--${st})">
        <title>${when(b.start)}: ${n} ${st}</title></rect>`;
      acc += n;
      return rect;
    }).join("");
  }).join("");
  const labels = o.buckets.map((b, i) => (i % 6 === 0
    ? `<text class="axis" x="${left + i * slot}" y="${height - 10}">${esc(new Date(b.start).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }))}</text>` : "")).join("");
  const axis = `<text class="axis" x="4" y="${y(max) + 4}">${max}</text><text class="axis" x="4" y="${y(0)}">0</text>
    <line class="tick" x1="${left}" y1="${y(0)}" x2="${width - 10}" y2="${y(0)}"/>`;
  return `<svg id="runs-chart" width="${width}" height="${height}" role="img" aria-label="runs per status over time">${axis}${bars}${labels}</svg>`;
}

/// Each task's duration percentiles: a bar to p50, a lighter one to p90, a mark at p99.
function durationsSvg(o) {
  const label = 170, width = 900, rowH = 26;
  const max = Math.max(1, ...o.tasks.map((t) => t.p99_ms));
  const x = (ms) => label + (ms / max) * (width - label - 90);
  const rows = o.tasks.map((t, i) => {
    const y = 10 + i * rowH;
    return `<g class="task-durations" data-task="${esc(t.task_name)}">
      <text x="4" y="${y + 14}">${esc(t.task_name.length > 22 ? t.task_name.slice(0, 21) + "…" : t.task_name)}</text>
      <rect class="p90" x="${label}" y="${y + 3}" width="${Math.max(1, x(t.p90_ms) - label)}" height="${rowH - 8}"><title>p90 ${t.p90_ms} ms</title></rect>
      <rect class="p50" x="${label}" y="${y + 3}" width="${Math.max(1, x(t.p50_ms) - label)}" height="${rowH - 8}"><title>p50 ${t.p50_ms} ms</title></rect>
      <line class="p99" x1="${x(t.p99_ms)}" y1="${y + 1}" x2="${x(t.p99_ms)}" y2="${y + rowH - 3}"><title>p99 ${t.p99_ms} ms</title></line>
      <text class="axis" x="${x(t.p99_ms) + 6}" y="${y + 14}">${t.p50_ms} / ${t.p90_ms} / ${t.p99_ms} ms</text></g>`;
  }).join("");
  return `<svg id="durations" width="${width}" height="${20 + o.tasks.length * rowH}" role="img" aria-label="task duration percentiles">${rows}</svg>`;
}

async function overviewPage(name, params) {
  setActive("workflows");
  const hours = params.get("hours") || "24";
  const o = await api(`workflows/${encodeURIComponent(name)}/overview?hours=${encodeURIComponent(hours)}`);
  const age = o.queue.oldest_age_seconds;
  main.innerHTML = `<h1>${esc(o.workflow)} <span class="muted">overview</span></h1>
    <form class="filters" id="window">
      <label>Last <select name="hours">${["1", "6", "24", "168", "720"].map((h) => `<option ${h === hours ? "selected" : ""} value="${h}">${h} h</option>`).join("")}</select></label>
      <a href="#/runs?workflow=${encodeURIComponent(o.workflow)}">its runs</a>
    </form>
    <p id="queue"><strong>Queue:</strong> ${o.queue.ready} task${o.queue.ready === 1 ? "" : "s"} ready${age != null ? `, the oldest waiting ${age < 60 ? age.toFixed(1) + " s" : (age / 60).toFixed(1) + " min"}` : ""}.</p>
    <h2>Runs per status <span class="muted">(${o.runs} run${o.runs === 1 ? "" : "s"}, ${o.bucket_seconds} s per bar${o.truncated ? ", the newest only" : ""})</span></h2>
    <div class="graph">${runsChartSvg(o)}</div>
    <p class="legend">${STATUS_ORDER.map((st) => `<span class="status" data-status="${st}">${st}</span>`).join(" ")}</p>
    <h2>Task durations <span class="muted">(completed attempts: p50 / p90 / p99)</span></h2>
    ${o.tasks.length ? `<div class="graph">${durationsSvg(o)}</div>
      <table id="durations-table"><thead><tr><th>Task</th><th>Completed</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr></thead><tbody>
      ${o.tasks.map((t) => `<tr><td>${esc(t.task_name)}</td><td>${t.completed}</td><td>${t.p50_ms} ms</td><td>${t.p90_ms} ms</td><td>${t.p99_ms} ms</td><td>${t.max_ms} ms</td></tr>`).join("")}</tbody></table>`
      : `<p class="muted">No task completed in this window.</p>`}`;
  document.querySelector("#window select").addEventListener("change", (e) => {
    location.hash = `#/workflows/${encodeURIComponent(o.workflow)}?hours=${e.target.value}`;
  });
}

// ---- Packages -------------------------------------------------------------------------------

/// Uploads an archive as the raw body (the API's own form; no multipart needed).
async function uploadPackage(file) {
  if (!file) return;
  const headers = { "Content-Type": "application/octet-stream" };
  if (tokenInput.value) headers.Authorization = `Bearer ${tokenInput.value}`;
  try {
    const response = await fetch("api/v1/packages", { method: "POST", headers, body: file });
    const body = await response.json();
    if (!response.ok) throw new Error(body?.error?.message || `HTTP ${response.status}`);
    const p = body.package;
    toast(body.created ? `Uploaded ${p.package_name} ${p.version}: the workers load it` : `${p.package_name} ${p.version} was already uploaded`);
  } catch (e) {
    toast(`Upload failed: ${e.message}`);
  }
  route();
}

async function packagesPage() {
  setActive("packages");
  const { packages } = await api("packages");
  const rows = packages.map((p) => {
    const workflowsOf = (p.metadata && p.metadata.workflows) || [];
    const remove = p.status === "removed" ? "" : `<button data-delete-package="${esc(p.id)}" data-name="${esc(p.package_name)} ${esc(p.version)}">Delete</button>`;
    return `<tr data-package="${esc(p.package_name)}" data-version="${esc(p.version)}" data-id="${esc(p.id)}">
      <td>${esc(p.package_name)}</td><td class="mono">${esc(p.version)}</td>
      <td><span class="status" data-status="${esc(p.status)}">${esc(p.status)}</span></td>
      <td>${workflowsOf.map((w) => `<a href="#/workflows">${esc(w)}</a>`).join(", ")}</td>
      <td class="mono wide">${esc(p.content_sha256.slice(0, 16))}</td><td class="wide">${when(p.updated_at)}</td>
      <td>${esc((p.error || "").split("\n")[0])}</td><td>${remove}</td></tr>`;
  }).join("");
  main.innerHTML = `<h1>Packages</h1>
    <div id="drop" class="drop" tabindex="0">
      <p>Drop a <span class="mono">.cloacina</span> archive here, or <label class="pick">choose one <input type="file" id="package-file" accept=".cloacina"></label>.</p>
      <p class="muted">Uploading runs the package's code on the workers: it needs the token.</p>
    </div>
    <table id="packages"><thead><tr><th>Package</th><th>Version</th><th>Status</th><th>Workflows</th><th class="wide">SHA-256</th><th class="wide">Updated</th><th>Error</th><th></th></tr></thead>
    <tbody>${rows || `<tr><td colspan="8" class="muted">No packages yet</td></tr>`}</tbody></table>`;
  document.getElementById("package-file").addEventListener("change", (e) => uploadPackage(e.target.files[0]));
  const drop = document.getElementById("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    uploadPackage(e.dataTransfer.files[0]);
  });
  for (const b of main.querySelectorAll("button[data-delete-package]")) {
    b.addEventListener("click", async () => {
      if (!confirm(`Delete ${b.dataset.name}? Its workflows start no new runs; runs in flight finish.`)) return;
      try {
        await api(`packages/${b.dataset.deletePackage}`, { method: "DELETE" });
        toast(`Deleted ${b.dataset.name}`);
      } catch (err) { toast(err.message); }
      route();
    });
  }
  // While a worker has yet to load a package, look again.
  if (packages.some((p) => p.status === "uploaded")) refreshTimer = setTimeout(() => packagesPage().catch(() => {}), 1000);
}

// ---- Router ---------------------------------------------------------------------------------

async function route() {
  clearTimeout(refreshTimer);
  const [path, query] = (location.hash.replace(/^#/, "") || "/runs").split("?");
  const params = new URLSearchParams(query || "");
  try {
    const run = path.match(/^\/runs\/([0-9a-f-]+)$/i);
    if (!(path === "/runs" || run)) stopFollowing();
    if (run) await runPage(run[1]);
    else if (path === "/schedules") await schedulesPage();
    else if (path === "/workflows") await workflowsPage();
    else if (path.startsWith("/workflows/")) await overviewPage(decodeURIComponent(path.slice("/workflows/".length)), params);
    else if (path === "/packages") await packagesPage();
    else await runsPage(params);
  } catch (e) {
    main.innerHTML = `<p class="error" id="page-error">${esc(e.message)}</p>`;
  }
}

window.addEventListener("hashchange", route);
route();
