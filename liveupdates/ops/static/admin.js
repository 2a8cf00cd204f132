/* The admin page: an ES module over the admin API (/v1/admin). No build step, no dependencies,
 * no globals. Everything from the server is inserted as text, never as HTML: titles and errors
 * come from feeds.
 *
 * It polls every REFRESH_MS while signed in and the tab is visible; not at all while the tab is
 * hidden, and never when the server has no admin token (the API is disabled: it says how to
 * enable it instead). */

const TOKEN_KEY = "liveupdates-admin-token";
const REFRESH_MS = 2000;
const $ = (id) => document.getElementById(id);
let timer = null;
let signedInNow = false;

function setPolling(on) {
  clearInterval(timer);
  timer = null;
  if (on) {
    timer = setInterval(() => refresh().catch((e) => { if (e.message !== "refused") show(e.message); }),
      REFRESH_MS);
  }
  document.body.dataset.polling = on ? "on" : "off";
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function show(text, kind) {
  const box = $("message");
  box.textContent = text || "";
  box.className = kind || "";
  box.hidden = !text;
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + token() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch("/v1/admin" + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch (e) { /* not JSON */ }
  if (response.status === 401) { signOut("That token was refused."); throw new Error("refused"); }
  if (response.status === 503 && data && data.error && data.error.code === "admin_disabled") {
    showDisabled(data.error.message);
    throw new Error("refused");
  }
  if (!response.ok) {
    const message = data && data.error ? data.error.message : "HTTP " + response.status;
    throw new Error(message);
  }
  return data;
}

// "10s", "5m", "1h", "90" -> seconds (null when it is not a duration)
function parseDuration(text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$/i.exec(text || "");
  if (!m) return null;
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] || "s").toLowerCase()];
  return parseFloat(m[1]) * unit;
}

function formatDuration(seconds) {
  if (seconds >= 3600 && seconds % 3600 === 0) return seconds / 3600 + "h";
  if (seconds >= 60 && seconds % 60 === 0) return seconds / 60 + "m";
  return seconds + "s";
}

function relative(iso) {
  if (!iso) return "–";
  const delta = (Date.parse(iso) - Date.now()) / 1000;
  const size = Math.abs(delta);
  if (size < 1) return "now";
  const amount = size < 120 ? Math.round(size) + "s" : size < 7200 ? Math.round(size / 60) + "m"
    : Math.round(size / 3600) + "h";
  return delta > 0 ? "in " + amount : amount + " ago";
}

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function button(label, onClick, extra) {
  const node = el("button", { type: "button", textContent: label, ...(extra || {}) });
  node.addEventListener("click", onClick);
  return node;
}

async function act(work, done) {
  try {
    await work();
    if (done) show(done, "info");
    await refresh();
  } catch (e) {
    if (e.message !== "refused") show(e.message);
  }
}

function websubText(w) {
  if (!w) return "WebSub: off";
  let text = "WebSub: " + w.summary;
  if (w.state !== "off" || w.pushes) {
    text += " · " + w.pushes + " pushes" +
      (w.last_push_at ? " (last " + relative(w.last_push_at) + ")" : "") +
      " · " + w.bad_signatures + " bad signatures";
  }
  return text;
}

function feedRow(feed) {
  const h = feed.health;
  const id = feed.id;
  const path = "/feeds/" + encodeURIComponent(id);
  const row = el("tr", { className: h.status });
  row.dataset.feed = id;

  row.append(el("td", {},
    el("div", { className: "name", textContent: feed.title || id }),
    el("div", { className: "sub", textContent: id + " · " + feed.url })));

  const status = el("td", {}, el("span", { className: "badge " + h.status, textContent: h.status }));
  if (h.consecutive_errors > 0 && h.last_error) {
    status.append(el("div", { className: "error", textContent: h.last_error }));
  }
  status.append(el("div", { className: "sub websub", textContent: websubText(h.websub),
    title: (h.websub && h.websub.reason) || "" }));
  row.append(status);

  const input = el("input", { className: "every-input", value: formatDuration(feed.interval_seconds),
    title: "10s, 5m, 1h" });
  input.setAttribute("aria-label", "interval of " + id);
  const setEvery = () => {
    const seconds = parseDuration(input.value);
    if (seconds === null) { show("'" + input.value + "' is not a duration (e.g. 10s, 5m, 1h)"); return; }
    act(() => api("PATCH", path, { interval_seconds: seconds }), id + ": every " + formatDuration(seconds));
  };
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") setEvery(); });
  row.append(el("td", { className: "every" }, input, button("Set", setEvery, { className: "set" }),
    el("div", { className: "sub", textContent: feed.adaptive ? "adaptive" : "fixed" })));

  row.append(el("td", { className: "next", textContent: feed.paused ? "paused" : relative(h.next_poll_at),
    title: h.next_poll_at || "" }));
  row.append(el("td", { className: "last", title: h.last_poll_at || "" },
    relative(h.last_poll_at),
    el("div", { className: "sub", textContent: h.last_result
      ? h.last_result + (h.last_http_status ? " " + h.last_http_status : "") +
        (h.entries_last_poll !== null ? " · " + h.entries_last_poll + " entries" : "")
      : "" })));
  row.append(el("td", { className: "errors", textContent: String(h.consecutive_errors) }));
  row.append(el("td", { className: "stories", textContent: String(h.stories) }));

  const actions = el("td", { className: "actions" });
  actions.append(feed.paused
    ? button("Resume", () => act(() => api("PATCH", path, { paused: false }), id + " resumed"), { className: "resume" })
    : button("Pause", () => act(() => api("PATCH", path, { paused: true }), id + " paused"), { className: "pause" }));
  actions.append(button("Poll now", () => act(async () => {
    const r = await api("POST", path + "/poll");
    const o = r.outcome;
    if (!o) { show(id + ": poll requested; no worker has finished it yet", "info"); return; }
    show(id + ": " + (o.status === "error" ? "error: " + o.error : o.status + ", " + o.events + " updates"),
      o.status === "error" ? "" : "info");
  }), { className: "poll" }));
  actions.append(button("Remove", () => {
    if (confirm("Stop polling " + id + " and forget it?")) act(() => api("DELETE", path), id + " removed");
  }, { className: "remove" }));
  row.append(actions);
  return row;
}

function renderStats(stats) {
  $("clients").textContent = stats.connected_clients;
  const series = stats.messages_sent_per_minute;
  $("pushed").textContent = series.reduce((sum, m) => sum + m.count, 0);
  $("window").textContent = stats.window_minutes;
  const top = Math.max(1, ...series.map((m) => m.count));
  const spark = $("spark");
  spark.replaceChildren(...series.map((m) => {
    const bar = el("i", { title: m.minute + ": " + m.count });
    bar.style.height = Math.round((m.count / top) * 100) + "%";
    return bar;
  }));
}

async function refresh() {
  if (!token()) return;
  const [list, stats] = await Promise.all([api("GET", "/feeds"), api("GET", "/stats")]);
  const failing = list.feeds.filter((f) => f.health.status === "failing").length;
  $("summary").textContent = list.feeds.length + " feeds" + (failing ? " · " + failing + " failing" : "");
  // Do not rebuild a row while someone is typing an interval in it.
  const focused = document.activeElement && document.activeElement.closest("tr");
  const keep = focused && focused.dataset.feed;
  const body = $("feeds").tBodies[0];
  const old = new Map([...body.rows].map((r) => [r.dataset.feed, r]));
  body.replaceChildren(...list.feeds.map((f) => (f.id === keep && old.has(keep) ? old.get(keep) : feedRow(f))));
  if (!list.feeds.length) body.append(el("tr", {}, el("td", { colSpan: 8, textContent: "No feeds yet." })));
  renderStats(stats);
}

function signedIn() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("stats").hidden = false;
  signedInNow = true;
  setPolling(!document.hidden);
  return refresh();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  signedInNow = false;
  setPolling(false);
  $("app").hidden = true;
  $("stats").hidden = true;
  $("login").hidden = false;
  show(message || "");
  $("token").focus();
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  show("");
  signedIn().catch((err) => { if (err.message !== "refused") show(err.message); });
});

$("logout").addEventListener("click", () => signOut(""));

$("add").addEventListener("submit", (e) => {
  e.preventDefault();
  const body = { url: $("add-url").value.trim() };
  if ($("add-id").value.trim()) body.id = $("add-id").value.trim();
  if ($("add-every").value.trim()) {
    const seconds = parseDuration($("add-every").value);
    if (seconds === null) { show("'" + $("add-every").value + "' is not a duration (e.g. 10s, 5m, 1h)"); return; }
    body.interval_seconds = seconds;
  }
  act(async () => {
    const feed = await api("POST", "/feeds", body);
    $("add").reset();
    show("added " + feed.id, "info");
  });
});

/* Without any configured token the whole page is moot: say so and how to fix it, poll nothing. */
function showDisabled(message) {
  signedInNow = false;
  setPolling(false);
  $("login").hidden = true;
  $("app").hidden = true;
  $("stats").hidden = true;
  show("");
  $("disabled-reason").textContent = message || "";
  $("disabled").hidden = false;
}

// A hidden tab polls nothing; coming back refreshes at once and polls again.
document.addEventListener("visibilitychange", () => {
  if (!signedInNow) return;
  setPolling(!document.hidden);
  if (!document.hidden) refresh().catch((e) => { if (e.message !== "refused") show(e.message); });
});

/* Asks the API once, without a token, whether it is enabled: 503 admin_disabled means no token is
 * configured on the server, anything else (401) means it waits for one. */
async function start() {
  try {
    const response = await fetch("/v1/admin/stats", { headers: { Accept: "application/json" } });
    if (response.status === 503) {
      const data = await response.json().catch(() => null);
      if (data && data.error && data.error.code === "admin_disabled") {
        showDisabled(data.error.message);
        return;
      }
    }
  } catch (e) {
    // The server is unreachable: the sign-in below reports it when it is tried.
  }
  if (token()) {
    signedIn().catch((e) => { if (e.message !== "refused") show(e.message); });
  } else {
    signOut("");
  }
}

start();
