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
    return `<section data-workflow="${esc(w.name)}"><h2>${esc(w.name)}</h2>
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
    else if (path === "/packages") await packagesPage();
    else await runsPage(params);
  } catch (e) {
    main.innerHTML = `<p class="error" id="page-error">${esc(e.message)}</p>`;
  }
}

window.addEventListener("hashchange", route);
route();
