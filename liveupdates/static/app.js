/* liveupdates demo page: lists a feed's stories and shows one of them live over /v1/ws.
 *
 * Plain script, no build step, no dependencies. Three parts:
 *   1. LiveDiff: applying a story diff (a port of liveupdates/diff/engine.py) and turning it into
 *      highlighted paragraphs and words.
 *   2. Connection: one WebSocket with resumable subscriptions and jittered backoff.
 *   3. The page: the story list, the open story, the status line, toasts.
 */
"use strict";

(function () {
  // ---------------------------------------------------------------------------------------------
  // 1. LiveDiff
  // ---------------------------------------------------------------------------------------------

  // Reader-visible fields other than paragraphs; must match DIFF_FIELDS in liveupdates/diff.
  const DIFF_FIELDS = ["title", "url", "summary", "authors", "published", "updated"];
  const NULLABLE_FIELDS = new Set(["published", "updated"]);
  const HUNK_OPS = new Set(["insert", "delete", "replace"]);

  class DiffError extends Error {}

  function checkedInt(hunk, key) {
    const value = hunk[key];
    if (!Number.isInteger(value) || value < 0) {
      throw new DiffError(`diff hunk has a bad ${key}: ${JSON.stringify(value)}`);
    }
    return value;
  }

  function checkedList(hunk, key, length) {
    const value = hunk[key];
    if (!Array.isArray(value) || value.length !== length) {
      throw new DiffError(`diff hunk ${key} does not match its range`);
    }
    if (!value.every((item) => typeof item === "string")) {
      throw new DiffError(`diff hunk ${key} holds a non-string paragraph`);
    }
    return value;
  }

  // A snapshot field as Snapshot.from_json would read it: absent fields take their defaults, so a
  // snapshot without "updated" still accepts a diff whose old value is null.
  function fieldOf(snapshot, name) {
    const value = snapshot[name];
    if (value !== undefined) return value;
    if (name === "authors") return [];
    return NULLABLE_FIELDS.has(name) ? null : "";
  }

  function fieldValue(name, value) {
    if (name === "authors") {
      if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
        throw new DiffError("diff authors must be a list of strings");
      }
      return value.slice();
    }
    if (typeof value !== "string" && !(NULLABLE_FIELDS.has(name) && value === null)) {
      throw new DiffError(`diff field ${name} has a bad value`);
    }
    return value;
  }

  function sameValue(a, b) {
    if (Array.isArray(a) || Array.isArray(b)) {
      return (
        Array.isArray(a) && Array.isArray(b) && a.length === b.length &&
        a.every((item, i) => item === b[i])
      );
    }
    return a === b;
  }

  function checkHunk(hunk, position, oldLength) {
    if (hunk === null || typeof hunk !== "object" || !HUNK_OPS.has(hunk.op)) {
      throw new DiffError("not a diff hunk");
    }
    const oldStart = checkedInt(hunk, "old_start");
    const oldEnd = checkedInt(hunk, "old_end");
    const newStart = checkedInt(hunk, "new_start");
    const newEnd = checkedInt(hunk, "new_end");
    if (oldStart < position || oldEnd < oldStart || oldEnd > oldLength) {
      throw new DiffError("diff hunks overlap, are out of order or exceed the story");
    }
    if (newEnd < newStart) throw new DiffError("diff hunk ends before it starts");
    checkedList(hunk, "old", oldEnd - oldStart);
    checkedList(hunk, "new", newEnd - newStart);
    return { oldStart, oldEnd, newStart };
  }

  function applyParagraphs(old, hunks) {
    if (!Array.isArray(hunks)) throw new DiffError("diff paragraphs must be a list of hunks");
    const result = [];
    let position = 0; // next old paragraph not yet copied
    for (const hunk of hunks) {
      const { oldStart, oldEnd, newStart } = checkHunk(hunk, position, old.length);
      result.push(...old.slice(position, oldStart));
      if (newStart !== result.length) {
        throw new DiffError("diff hunk new_start does not match the paragraphs before it");
      }
      if (!sameValue(old.slice(oldStart, oldEnd), hunk.old)) {
        throw new DiffError("diff does not apply: old paragraphs differ from this snapshot");
      }
      result.push(...hunk.new);
      position = oldEnd;
    }
    result.push(...old.slice(position));
    return result;
  }

  /* The snapshot `diff` leads to from `snapshot`, as a new object. Throws DiffError when the diff
   * was not made from this snapshot, exactly where the Python apply raises ValueError: a reader
   * who missed a version must reload, not see a garbled story. */
  function applyDiff(snapshot, diff) {
    if (diff === null || typeof diff !== "object") throw new DiffError("not a diff");
    const fields = diff.fields;
    if (fields === null || typeof fields !== "object" || Array.isArray(fields)) {
      throw new DiffError("not a diff: missing fields");
    }
    const next = Object.assign({}, snapshot);
    for (const [name, change] of Object.entries(fields)) {
      if (!DIFF_FIELDS.includes(name) || change === null || typeof change !== "object") {
        throw new DiffError(`diff changes an unknown field: ${name}`);
      }
      if (!("old" in change) || !("new" in change)) {
        throw new DiffError(`diff field ${name} lacks old or new`);
      }
      if (!sameValue(fieldValue(name, change.old), fieldOf(snapshot, name))) {
        throw new DiffError(`diff does not apply: ${name} differs from this snapshot`);
      }
      next[name] = fieldValue(name, change.new);
    }
    const paragraphs = Array.isArray(snapshot.paragraphs) ? snapshot.paragraphs : [];
    next.paragraphs = applyParagraphs(paragraphs, diff.paragraphs === undefined ? [] : diff.paragraphs);
    if (Number.isInteger(diff.to_version)) next.version = diff.to_version;
    return next;
  }

  // Words, runs of whitespace and single other characters, as liveupdates/diff/words.py splits.
  const TOKEN = /[\p{L}\p{N}_]+|\s+|[^\p{L}\p{N}_\s]/gu;
  // Above this many token pairs the title diff is shown as a plain replacement (LCS is n*m).
  const MAX_LCS_CELLS = 250000;

  function tokens(text) {
    return text.match(TOKEN) || [];
  }

  /* Word runs {op, old, new} from `oldText` to `newText`, in the shape the server sends inside
   * replace hunks. Used for the headline, whose diff carries only old and new values. */
  function wordRuns(oldText, newText) {
    const a = tokens(oldText);
    const b = tokens(newText);
    if (a.length * b.length > MAX_LCS_CELLS) {
      return [{ op: "replace", old: oldText, new: newText }];
    }
    // Longest common subsequence table, filled from the end so the walk below goes forwards.
    const width = b.length + 1;
    const lcs = new Uint32Array((a.length + 1) * width);
    for (let i = a.length - 1; i >= 0; i--) {
      for (let j = b.length - 1; j >= 0; j--) {
        lcs[i * width + j] =
          a[i] === b[j]
            ? lcs[(i + 1) * width + j + 1] + 1
            : Math.max(lcs[(i + 1) * width + j], lcs[i * width + j + 1]);
      }
    }
    const runs = [];
    const push = (op, oldPart, newPart) => {
      const last = runs[runs.length - 1];
      if (last && last.op === op) {
        last.old += oldPart;
        last.new += newPart;
      } else {
        runs.push({ op, old: oldPart, new: newPart });
      }
    };
    let i = 0;
    let j = 0;
    while (i < a.length || j < b.length) {
      if (i < a.length && j < b.length && a[i] === b[j]) {
        push("equal", a[i], b[j]);
        i++;
        j++;
      } else if (j < b.length && (i === a.length || lcs[i * width + j + 1] >= lcs[(i + 1) * width + j])) {
        push("insert", "", b[j]);
        j++;
      } else {
        push("delete", a[i], "");
        i++;
      }
    }
    return mergeChanges(runs);
  }

  // A delete next to an insert reads better as one replace: "<del>70</del><ins>75</ins>".
  function mergeChanges(runs) {
    const merged = [];
    for (const run of runs) {
      const last = merged[merged.length - 1];
      if (last && run.op !== "equal" && last.op !== "equal") {
        last.op = "replace";
        last.old += run.old;
        last.new += run.new;
      } else {
        merged.push(Object.assign({}, run));
      }
    }
    return merged.map((run) => {
      if (run.op !== "replace") return run;
      if (!run.old) return { op: "insert", old: "", new: run.new };
      if (!run.new) return { op: "delete", old: run.old, new: "" };
      return run;
    });
  }

  function runsMatch(runs, oldText, newText) {
    return (
      Array.isArray(runs) &&
      runs.every((r) => r && typeof r.old === "string" && typeof r.new === "string") &&
      runs.map((r) => r.old).join("") === oldText &&
      runs.map((r) => r.new).join("") === newText
    );
  }

  /* What to draw after `diff` turned `oldParagraphs` into the new ones: a list of
   *   {kind: "same" | "inserted" | "edited" | "removed", text, runs?}
   * in reading order. "edited" paragraphs carry word runs (from the hunk's "words" pairing) so
   * the changed words can be marked; removed paragraphs stay visible, struck out, until the next
   * update so a reader sees what went. Expects a diff that applyDiff accepted. */
  function displayItems(oldParagraphs, hunks) {
    const items = [];
    let position = 0;
    for (const hunk of hunks || []) {
      for (let i = position; i < hunk.old_start; i++) items.push({ kind: "same", text: oldParagraphs[i] });
      if (hunk.op === "insert") {
        for (const text of hunk.new) items.push({ kind: "inserted", text });
      } else if (hunk.op === "delete") {
        for (const text of hunk.old) items.push({ kind: "removed", text });
      } else {
        let oi = 0;
        let nj = 0;
        for (const pair of Array.isArray(hunk.words) ? hunk.words : []) {
          const i = pair.old_index - hunk.old_start;
          const j = pair.new_index - hunk.new_start;
          // Pairs must move forwards inside the hunk; anything else is ignored, not trusted.
          if (!(i >= oi && i < hunk.old.length && j >= nj && j < hunk.new.length)) continue;
          for (; oi < i; oi++) items.push({ kind: "removed", text: hunk.old[oi] });
          for (; nj < j; nj++) items.push({ kind: "inserted", text: hunk.new[nj] });
          const runs = runsMatch(pair.runs, hunk.old[i], hunk.new[j])
            ? pair.runs
            : wordRuns(hunk.old[i], hunk.new[j]);
          items.push({ kind: "edited", text: hunk.new[j], runs });
          oi = i + 1;
          nj = j + 1;
        }
        for (; oi < hunk.old.length; oi++) items.push({ kind: "removed", text: hunk.old[oi] });
        for (; nj < hunk.new.length; nj++) items.push({ kind: "inserted", text: hunk.new[nj] });
      }
      position = hunk.old_end;
    }
    for (let i = position; i < oldParagraphs.length; i++) items.push({ kind: "same", text: oldParagraphs[i] });
    return items;
  }

  const LiveDiff = { DiffError, applyDiff, displayItems, wordRuns, tokens };

  // ---------------------------------------------------------------------------------------------
  // 2. Connection
  // ---------------------------------------------------------------------------------------------

  const BACKOFF_BASE_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  const PING_EVERY_MS = 20000;
  // No frame at all (not even our pong) for this long means a dead connection nobody closed.
  const SILENCE_LIMIT_MS = 45000;
  // A connection that lived this long was a good one: the next failure backs off from the start.
  const STABLE_MS = 5000;
  // Closes that retrying cannot fix (policy violation, oversized frame): retry only slowly.
  const FATAL_CLOSES = new Set([1008, 1009]);

  /* One WebSocket carrying any number of channel subscriptions. Each subscription remembers the
   * last seq it saw and the log's epoch, and sends them again after a reconnect so the server
   * replays what was missed (or says it cannot, and the page reloads the state). */
  class Connection {
    constructor(url, onStatus) {
      this.url = url;
      this.onStatus = onStatus;
      this.ws = null;
      this.subs = new Map(); // channel -> {since, epoch, handlers}
      this.attempt = 0;
      this.timer = null;
      this.pinger = null;
      this.lastFrameAt = 0;
      this.openedAt = 0;
      this.connects = 0;
    }

    start() {
      window.addEventListener("online", () => this.reconnectNow());
      this.connect();
    }

    connect() {
      clearTimeout(this.timer);
      this.timer = null;
      this.onStatus("connecting", { attempt: this.attempt });
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (err) {
        this.scheduleReconnect();
        return;
      }
      this.ws = ws;
      ws.addEventListener("open", () => {
        if (this.ws !== ws) return;
        this.connects += 1;
        this.openedAt = this.lastFrameAt = Date.now();
        this.onStatus("live", { connects: this.connects });
        for (const channel of this.subs.keys()) this.sendSubscribe(channel);
        this.startPinging(ws);
      });
      ws.addEventListener("message", (event) => {
        if (this.ws !== ws) return;
        this.lastFrameAt = Date.now();
        let message;
        try {
          message = JSON.parse(event.data);
        } catch (err) {
          return; // not ours to interpret; the protocol only sends JSON objects
        }
        this.dispatch(message);
      });
      ws.addEventListener("close", (event) => {
        if (this.ws !== ws) return;
        this.ws = null;
        this.stopPinging();
        if (this.openedAt && Date.now() - this.openedAt >= STABLE_MS) this.attempt = 0;
        this.openedAt = 0;
        if (FATAL_CLOSES.has(event.code)) this.attempt = Math.max(this.attempt, 6);
        this.scheduleReconnect(event.code);
      });
      // An error is always followed by close, which does the reconnecting.
    }

    scheduleReconnect(code) {
      // "Equal jitter": never immediate, never all clients at once after a server restart.
      const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
      const delay = Math.round(cap / 2 + Math.random() * (cap / 2));
      this.attempt = Math.min(this.attempt + 1, 16);
      this.onStatus("reconnecting", { delay, code });
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.connect(), delay);
    }

    reconnectNow() {
      if (this.ws) return;
      this.attempt = 0;
      this.connect();
    }

    /* Closes the socket as a network failure would; the page then reconnects and resumes. */
    drop() {
      if (this.ws) this.ws.close(4000, "dropped by the page");
    }

    startPinging(ws) {
      this.stopPinging();
      this.pinger = setInterval(() => {
        if (Date.now() - this.lastFrameAt > SILENCE_LIMIT_MS) {
          ws.close(4001, "no answer from the server");
          return;
        }
        this.send({ type: "ping" });
      }, PING_EVERY_MS);
    }

    stopPinging() {
      clearInterval(this.pinger);
      this.pinger = null;
    }

    send(message) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) {
        this.ws.send(JSON.stringify(message));
        return true;
      }
      return false;
    }

    sendSubscribe(channel) {
      const sub = this.subs.get(channel);
      const message = { type: "subscribe", channel };
      if (sub.since !== null) {
        message.since = sub.since;
        if (sub.epoch) message.epoch = sub.epoch;
      }
      this.send(message);
    }

    /* Subscribes to `channel` from position `since` (null: from now on). handlers: {update(msg),
     * reset(msg), subscribed(msg, fresh), error(msg)}, all optional. */
    subscribe(channel, since, epoch, handlers) {
      this.subs.set(channel, { since: since ?? null, epoch: epoch ?? null, handlers });
      this.sendSubscribe(channel);
    }

    resubscribe(channel) {
      if (this.subs.has(channel)) this.sendSubscribe(channel);
    }

    unsubscribe(channel) {
      if (this.subs.delete(channel)) this.send({ type: "unsubscribe", channel });
    }

    /* Moves a subscription's position forward after the page reloaded its state over REST. */
    advance(channel, seq, epoch) {
      const sub = this.subs.get(channel);
      if (!sub || !Number.isInteger(seq)) return;
      if (epoch && epoch !== sub.epoch) {
        sub.epoch = epoch;
        sub.since = seq;
      } else if (sub.since === null || seq > sub.since) {
        sub.since = seq;
      }
    }

    dispatch(message) {
      if (!message || typeof message !== "object") return;
      const sub = this.subs.get(message.channel);
      switch (message.type) {
        case "subscribed": {
          if (!sub) return;
          const fresh = sub.since === null;
          sub.epoch = message.epoch ?? sub.epoch;
          // Fresh: live updates follow this seq. Not recovered: the server follows with a reset
          // at this seq. Recovered: keep `since`; the replayed updates move it forward one by one.
          if ((fresh || message.recovered === false) && Number.isInteger(message.seq)) {
            sub.since = message.seq;
          }
          sub.handlers.subscribed?.(message, fresh);
          return;
        }
        case "update":
          if (!sub) return;
          if (Number.isInteger(message.seq)) {
            if (sub.since !== null && message.seq <= sub.since) return; // already seen
            sub.since = message.seq;
          }
          sub.handlers.update?.(message);
          return;
        case "reset":
          if (!sub) return;
          if (Number.isInteger(message.seq)) sub.since = message.seq;
          sub.handlers.reset?.(message);
          return;
        case "error":
          if (sub) sub.handlers.error?.(message);
          else this.onStatus("error", { message });
          return;
        default:
          return; // pong, unsubscribed and anything newer than this page
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // 3. The page
  // ---------------------------------------------------------------------------------------------

  const FEED_ID = "demo";
  const TOAST_MS = 6000;
  const FRESH_MS = 60000; // how long a story keeps its "New"/"Updated" badge in the list
  // The demo writes a new story every minute or so, for ever: list only the latest ones.
  const LIST_LIMIT = 12;

  const el = (id) => document.getElementById(id);

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function formatTime(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return "";
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response.json();
  }

  class Page {
    constructor() {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      this.connection = new Connection(`${scheme}//${location.host}/v1/ws`, (state, info) =>
        this.showStatus(state, info),
      );
      this.stories = []; // [{id, title, published, version, badge, badgeAt}], newest change first
      this.current = null; // {id, channel, snapshot}
      this.loadToken = 0;
      this.listToken = 0;
      this.listTimer = null;
      this.toastTimer = null;
    }

    start() {
      el("notify").addEventListener("click", () => this.askToNotify());
      if ("Notification" in window && Notification.permission === "default") el("notify").hidden = false;
      window.addEventListener("hashchange", () => this.followHash());
      this.connection.start();
      this.connection.subscribe(`feed:${FEED_ID}`, null, null, {
        update: (message) => this.onFeedUpdate(message),
        reset: (message) => this.onFeedReset(message),
        // Stories created between the first list load and this subscription would be missed.
        subscribed: (message, fresh) => fresh && this.loadStories(),
        error: (message) => {
          // The feed is not known yet (first poll still running): ask again shortly.
          if (message.code === "unknown_channel") {
            setTimeout(() => this.connection.resubscribe(`feed:${FEED_ID}`), 3000);
          }
        },
      });
      this.loadStories();
      this.followHash();
      setInterval(() => this.renderList(), 15000); // lets "New"/"Updated" badges expire
    }

    // -- status and toasts ---------------------------------------------------------------------

    showStatus(state, info) {
      if (state === "error") {
        // An error about no channel in particular (e.g. rate_limited): the connection is still up.
        this.toast(`Server says: ${info?.message?.message || "error"}`);
        return;
      }
      const status = el("status");
      status.dataset.state = state;
      if (info && info.connects !== undefined) status.dataset.connects = String(info.connects);
      const text = {
        connecting: "Connecting…",
        live: "Live: updates arrive as they happen",
        reconnecting: `Connection lost. Reconnecting in ${Math.ceil((info?.delay || 0) / 1000)}s…`,
      }[state];
      el("status-text").textContent = text || state;
    }

    toast(text) {
      const toast = el("toast");
      toast.textContent = text;
      toast.hidden = false;
      toast.classList.remove("toast-show");
      void toast.offsetWidth; // restart the CSS animation for back-to-back updates
      toast.classList.add("toast-show");
      clearTimeout(this.toastTimer);
      this.toastTimer = setTimeout(() => {
        toast.hidden = true;
      }, TOAST_MS);
    }

    async askToNotify() {
      if (!("Notification" in window)) return;
      const answer = await Notification.requestPermission();
      el("notify").hidden = answer !== "default";
      if (answer === "granted") this.toast("You will get a notification when this story changes.");
    }

    notify(title, body) {
      // Only when the reader is elsewhere: on the page itself the highlight says it all.
      if (!document.hidden || !("Notification" in window)) return;
      if (Notification.permission !== "granted") return;
      try {
        new Notification(title, { body, tag: "liveupdates" });
      } catch (err) {
        // Some mobile browsers only allow notifications from a service worker; the page still works.
      }
    }

    // -- the story list ------------------------------------------------------------------------

    async loadStories() {
      clearTimeout(this.listTimer);
      const token = ++this.listToken;
      try {
        const data = await getJSON(`/v1/feeds/${encodeURIComponent(FEED_ID)}/stories?limit=${LIST_LIMIT}`);
        if (token !== this.listToken) return; // a newer load is under way
        this.setStories(Array.isArray(data.stories) ? data.stories : []);
        if (Number.isInteger(data.seq)) this.connection.advance(`feed:${FEED_ID}`, data.seq, data.epoch);
      } catch (err) {
        // Usually the first poll of the feed has not finished yet (404): keep waiting.
        if (token === this.listToken) this.listTimer = setTimeout(() => this.loadStories(), 3000);
      }
    }

    setStories(snapshots) {
      const badges = new Map(this.stories.map((s) => [s.id, s]));
      this.stories = snapshots.slice(0, LIST_LIMIT).map((s) => {
        const known = badges.get(s.id);
        return {
          id: s.id,
          title: s.title || "(untitled)",
          published: s.published || null,
          version: s.version,
          badge: known?.badge || null,
          badgeAt: known?.badgeAt || 0,
        };
      });
      this.renderList();
    }

    onFeedUpdate(message) {
      const event = message.event || {};
      const ref = event.story;
      if (!ref || !ref.id) return;
      let story = this.stories.find((s) => s.id === ref.id);
      if (story && Number.isInteger(story.version) && ref.version <= story.version) return;
      if (!story) {
        story = { id: ref.id, published: event.at || null };
        if (event.kind === "created" && this.stories.length) this.toast(`New story: ${ref.title}`);
      }
      Object.assign(story, {
        title: ref.title || story.title || "(untitled)",
        version: ref.version,
        badge: event.kind === "created" ? "New" : "Updated",
        badgeAt: Date.now(),
      });
      this.stories = [story, ...this.stories.filter((s) => s.id !== story.id)].slice(0, LIST_LIMIT);
      this.renderList();
      // The event carries no publication time; the list endpoint has it.
      if (event.kind === "created") this.loadStories();
    }

    onFeedReset(message) {
      if (Array.isArray(message.stories)) this.setStories(message.stories);
      else this.loadStories();
    }

    renderList() {
      const list = el("stories");
      el("stories-empty").hidden = this.stories.length > 0;
      const now = Date.now();
      list.replaceChildren(
        ...this.stories.map((story) => {
          const item = make("li");
          const button = make("button", "story-button");
          button.type = "button";
          button.dataset.storyId = story.id;
          if (Number.isInteger(story.version)) button.dataset.version = String(story.version);
          if (this.current && this.current.id === story.id) button.setAttribute("aria-current", "true");
          button.append(make("span", "story-button-title", story.title));
          const meta = make("span", "story-button-meta");
          if (story.published) meta.append(make("span", "", formatTime(story.published)));
          if (story.badge && now - story.badgeAt < FRESH_MS) {
            meta.append(make("span", `badge badge-${story.badge.toLowerCase()}`, story.badge));
          }
          button.append(meta);
          button.addEventListener("click", () => {
            location.hash = `story/${encodeURIComponent(story.id)}`;
          });
          item.append(button);
          return item;
        }),
      );
    }

    // -- the open story ------------------------------------------------------------------------

    followHash() {
      const match = /^#story\/(.+)$/.exec(location.hash);
      const id = match ? decodeURIComponent(match[1]) : null;
      if (id && (!this.current || this.current.id !== id)) this.openStory(id);
    }

    async openStory(id) {
      if (this.current) this.connection.unsubscribe(this.current.channel);
      const channel = `story:${id}`;
      this.current = { id, channel, snapshot: null };
      el("update-log").replaceChildren();
      this.renderList();
      const token = ++this.loadToken;
      let data;
      try {
        data = await getJSON(`/v1/stories/${encodeURIComponent(id)}`);
      } catch (err) {
        if (token === this.loadToken) this.toast("Could not load that story.");
        return;
      }
      if (token !== this.loadToken) return; // another story was chosen meanwhile
      this.current.channel = data.channel || channel;
      this.current.snapshot = data;
      this.renderStory(null);
      const article = el("article");
      article.focus({ preventScroll: true });
      // On a phone the story sits below the list: bring it into view.
      if (window.matchMedia("(max-width: 760px)").matches) article.scrollIntoView({ block: "start" });
      this.connection.subscribe(this.current.channel, data.seq ?? null, data.epoch ?? null, {
        update: (message) => this.onStoryUpdate(message),
        reset: (message) => this.onStoryReset(message),
        error: (message) => this.toast(message.message || "The server refused this story."),
      });
    }

    /* Fetches the open story again: after a gap the diffs cannot bridge, or a lost position. */
    async reloadStory() {
      const current = this.current;
      if (!current) return;
      const token = ++this.loadToken;
      try {
        const data = await getJSON(`/v1/stories/${encodeURIComponent(current.id)}`);
        if (token !== this.loadToken || this.current !== current) return;
        const known = current.snapshot?.version;
        if (Number.isInteger(known) && Number.isInteger(data.version) && data.version < known) return;
        current.snapshot = data;
        this.connection.advance(current.channel, data.seq, data.epoch);
        this.renderStory(null);
      } catch (err) {
        setTimeout(() => {
          if (this.current === current) this.reloadStory();
        }, 2000);
      }
    }

    onStoryUpdate(message) {
      const current = this.current;
      const event = message.event || {};
      if (!current || !current.snapshot || message.channel !== current.channel) return;
      const diff = event.diff;
      const version = current.snapshot.version;
      if (event.kind !== "updated" || !diff) {
        // A "created" on a story channel only repeats what the snapshot already holds.
        if (!(event.story && event.story.version <= version)) this.reloadStory();
        return;
      }
      if (Number.isInteger(version) && diff.to_version <= version) return; // already applied
      if (Number.isInteger(version) && diff.from_version !== version) {
        this.reloadStory(); // a version is missing: diffs cannot bridge the gap
        return;
      }
      let next;
      try {
        next = LiveDiff.applyDiff(current.snapshot, diff);
      } catch (err) {
        if (!(err instanceof DiffError)) throw err;
        this.reloadStory();
        return;
      }
      const before = current.snapshot;
      current.snapshot = next;
      this.renderStory({ before, diff });
      const summary = event.summary || "Story updated";
      this.toast(summary);
      this.logUpdate(event.at, summary, next.version);
      this.notify(next.title, summary);
      const listed = this.stories.find((s) => s.id === current.id);
      if (listed && next.title) listed.title = next.title;
    }

    onStoryReset(message) {
      const current = this.current;
      if (!current || message.channel !== current.channel) return;
      const snapshot = message.snapshot;
      if (!snapshot || !Number.isInteger(snapshot.version)) {
        this.reloadStory();
        return;
      }
      current.snapshot = snapshot;
      this.renderStory(null);
      this.toast("The story was reloaded to its latest version.");
    }

    logUpdate(at, summary, version) {
      const item = make("li");
      item.append(make("time", "log-time", formatTime(at) || formatTime(new Date().toISOString())));
      item.append(document.createTextNode(` ${summary} `));
      if (Number.isInteger(version)) item.append(make("span", "muted", `(version ${version})`));
      el("update-log").prepend(item);
    }

    /* Draws the open story; `change` ({before, diff}) marks what the last update changed. */
    renderStory(change) {
      const snapshot = this.current.snapshot;
      el("placeholder").hidden = true;
      const article = el("story");
      article.hidden = false;
      article.dataset.storyId = this.current.id;
      article.dataset.version = String(snapshot.version ?? "");
      document.title = `${snapshot.title || "Story"} - liveupdates`;

      const title = el("story-title");
      const titleChange = change && change.diff.fields && change.diff.fields.title;
      if (titleChange) {
        title.replaceChildren(...renderRuns(wordRuns(titleChange.old, titleChange.new)));
        title.classList.add("changed");
      } else {
        title.textContent = snapshot.title || "(untitled)";
        title.classList.remove("changed");
      }

      const meta = el("story-meta");
      const parts = [];
      if (snapshot.authors && snapshot.authors.length) parts.push(`By ${snapshot.authors.join(", ")}`);
      if (snapshot.published) parts.push(`Published ${formatTime(snapshot.published)}`);
      if (Number.isInteger(snapshot.version)) parts.push(`Version ${snapshot.version}`);
      meta.textContent = parts.join(" · ");

      const link = el("story-url");
      link.href = snapshot.url || "#";
      link.parentElement.hidden = !snapshot.url;

      const items = change
        ? displayItems(change.before.paragraphs || [], change.diff.paragraphs || [])
        : (snapshot.paragraphs || []).map((text) => ({ kind: "same", text }));
      el("story-body").replaceChildren(...items.map(renderParagraph));
    }
  }

  /* Word runs as DOM nodes: unchanged text, <del> for removed words, <ins> for inserted ones. */
  function renderRuns(runs) {
    const nodes = [];
    for (const run of runs) {
      if (run.op === "equal") {
        nodes.push(document.createTextNode(run.new));
        continue;
      }
      if (run.old) nodes.push(make("del", "word-del", run.old));
      if (run.new) nodes.push(make("ins", "word-ins", run.new));
    }
    return nodes;
  }

  // Screen readers do not announce <ins>/<del> or colours, so changed paragraphs say so in words.
  const LABELS = { inserted: "New paragraph", edited: "Edited", removed: "Removed" };

  function renderParagraph(item) {
    const p = make("p", `para para-${item.kind}`);
    if (item.kind !== "same") p.append(make("span", "para-badge", LABELS[item.kind]), " ");
    if (item.kind === "edited") {
      p.append(...renderRuns(item.runs));
    } else if (item.kind === "removed") {
      p.append(make("del", "", item.text));
    } else {
      p.append(document.createTextNode(item.text));
    }
    return p;
  }

  const api = { LiveDiff, Connection };
  window.liveupdates = api;

  function boot() {
    // Loaded alone (e.g. to test LiveDiff) the page elements are missing: do nothing more.
    if (!el("app")) return;
    const page = new Page();
    api.page = page;
    api.drop = () => page.connection.drop();
    page.start();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
