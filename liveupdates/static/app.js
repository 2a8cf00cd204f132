/* liveupdates demo page: every feed and its stories, and one story live over /v1/ws.
 *
 * An ES module, no build step, no dependencies, no globals. Parts:
 *   livediff.js    applying a diff and turning it into highlighted paragraphs and words
 *   connection.js  one WebSocket with resumable subscriptions and jittered backoff
 *   devicepush.js  "Get real time updates on this device": Web Push for the open story
 *   this file      the feed list, the open story and its history, the status line, toasts
 */

import { Connection } from "./connection.js";
import { DevicePush } from "./devicepush.js";
import { DiffError, applyDiff, displayItems, headlineRuns } from "./livediff.js";

const TOAST_MS = 6000;
const FRESH_MS = 60000; // how long a story keeps its "New"/"Updated" badge in the list
// The demo writes a new story every minute or so, for ever: list only the latest of each feed.
const STORIES_PER_FEED = 8;
// Each feed is one subscription; stay well under hub.max_subscriptions and the rate burst.
const MAX_FEEDS = 30;
const FEEDS_REFRESH_MS = 60000; // feeds added by ops show up without a reload
const RETRY_MS = 3000;
const HISTORY_UPDATES = 50; // past updates of a story loaded into its history when it opens

// -- small DOM and network helpers ---------------------------------------------------------------

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

const storyPath = (id) => `/v1/stories/${encodeURIComponent(id)}`;

// -- drawing a story -----------------------------------------------------------------------------

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

// -- the list of feeds and their stories ---------------------------------------------------------

/* Every feed (GET /v1/feeds) with its latest stories, kept live through `feed:` channels. Feeds
 * whose stories changed most recently come first; in each, the most recently changed story. */
class FeedList {
  constructor(connection, page) {
    this.connection = connection;
    this.page = page;
    this.feeds = new Map(); // id -> {id, title, stories: [...], changedAt, loadToken, timer}
  }

  start() {
    this.loadFeeds();
    setInterval(() => this.loadFeeds(), FEEDS_REFRESH_MS);
    setInterval(() => this.render(), 15000); // lets "New"/"Updated" badges expire
  }

  async loadFeeds() {
    const found = [];
    let cursor = null;
    try {
      do {
        const query = `limit=${MAX_FEEDS}` + (cursor ? `&cursor=${encodeURIComponent(cursor)}` : "");
        const page = await getJSON(`/v1/feeds?${query}`);
        found.push(...(Array.isArray(page.feeds) ? page.feeds : []));
        cursor = page.next_cursor;
      } while (cursor && found.length < MAX_FEEDS);
    } catch (err) {
      setTimeout(() => this.loadFeeds(), RETRY_MS);
      return;
    }
    for (const info of found.slice(0, MAX_FEEDS)) {
      const known = this.feeds.get(info.id);
      if (known) {
        known.title = info.title || info.id;
        continue;
      }
      const feed = {
        id: info.id,
        title: info.title || info.id,
        stories: [],
        changedAt: Date.parse(info.last_update || "") || 0,
        loadToken: 0,
        timer: null,
      };
      this.feeds.set(feed.id, feed);
      this.subscribe(feed);
      this.loadStories(feed);
    }
    this.render();
  }

  channel(feed) {
    return `feed:${feed.id}`;
  }

  subscribe(feed) {
    const channel = this.channel(feed);
    this.connection.subscribe(channel, null, null, {
      update: (message) => this.onUpdate(feed, message),
      reset: (message) => this.onReset(feed, message),
      // Stories created between the first list load and this subscription would be missed.
      subscribed: (message, fresh) => fresh && this.loadStories(feed),
      error: (message) => {
        // Not known yet (first poll still running) or too many subscribes at once: ask again.
        if (message.code === "unknown_channel" || message.code === "rate_limited") {
          setTimeout(() => this.connection.resubscribe(channel), RETRY_MS);
        }
      },
    });
  }

  async loadStories(feed) {
    clearTimeout(feed.timer);
    const token = ++feed.loadToken;
    try {
      const data = await getJSON(
        `/v1/feeds/${encodeURIComponent(feed.id)}/stories?limit=${STORIES_PER_FEED}`,
      );
      if (token !== feed.loadToken) return; // a newer load is under way
      this.setStories(feed, Array.isArray(data.stories) ? data.stories : []);
    } catch (err) {
      if (token === feed.loadToken) feed.timer = setTimeout(() => this.loadStories(feed), RETRY_MS);
    }
  }

  setStories(feed, snapshots) {
    const badges = new Map(feed.stories.map((s) => [s.id, s]));
    feed.stories = snapshots.slice(0, STORIES_PER_FEED).map((s) => {
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
    this.render();
  }

  onUpdate(feed, message) {
    const event = message.event || {};
    const ref = event.story;
    if (!ref || !ref.id) return;
    let story = feed.stories.find((s) => s.id === ref.id);
    if (story && Number.isInteger(story.version) && ref.version <= story.version) return;
    if (!story) {
      story = { id: ref.id, published: event.at || null };
      if (event.kind === "created" && feed.stories.length) this.page.toast(`New story: ${ref.title}`);
    }
    Object.assign(story, {
      title: ref.title || story.title || "(untitled)",
      version: ref.version,
      badge: event.kind === "created" ? "New" : "Updated",
      badgeAt: Date.now(),
    });
    feed.stories = [story, ...feed.stories.filter((s) => s.id !== story.id)].slice(0, STORIES_PER_FEED);
    feed.changedAt = Date.now();
    this.render();
    // The event carries no publication time; the list endpoint has it.
    if (event.kind === "created") this.loadStories(feed);
  }

  onReset(feed, message) {
    if (Array.isArray(message.stories)) this.setStories(feed, message.stories);
    else this.loadStories(feed);
  }

  retitle(id, title) {
    for (const feed of this.feeds.values()) {
      const story = feed.stories.find((s) => s.id === id);
      if (story && title) story.title = title;
    }
    this.render();
  }

  render() {
    const feeds = [...this.feeds.values()].sort((a, b) => b.changedAt - a.changedAt);
    const total = feeds.reduce((sum, feed) => sum + feed.stories.length, 0);
    el("stories-empty").hidden = total > 0;
    const openId = this.page.story.current?.id;
    const now = Date.now();
    el("feeds").replaceChildren(
      ...feeds.map((feed) => {
        const group = make("section", "feed-group");
        group.dataset.feedId = feed.id;
        const headingId = `feed-heading-${feed.id}`;
        const heading = make("h3", "feed-title", feed.title);
        heading.id = headingId;
        group.setAttribute("aria-labelledby", headingId);
        const list = make("ul", "story-list");
        list.append(...feed.stories.map((story) => this.storyItem(story, openId, now)));
        if (!feed.stories.length) list.append(make("li", "muted", "No stories yet."));
        group.append(heading, list);
        return group;
      }),
    );
  }

  storyItem(story, openId, now) {
    const item = make("li");
    const button = make("button", "story-button");
    button.type = "button";
    button.dataset.storyId = story.id;
    if (Number.isInteger(story.version)) button.dataset.version = String(story.version);
    if (openId === story.id) button.setAttribute("aria-current", "true");
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
  }
}

// -- the open story and its history --------------------------------------------------------------

/* One story, live: its text with the last change marked, and every update as an entry of its
 * history that opens the diff of that version. */
class StoryView {
  constructor(connection, page) {
    this.connection = connection;
    this.page = page;
    this.current = null; // {id, channel, snapshot, history: [{version, from, summary, at, diff}]}
    this.loadToken = 0;
    this.viewing = null; // the version whose diff is shown instead of the latest, or null
  }

  start() {
    el("back-to-latest").addEventListener("click", () => this.showLatest());
  }

  async open(id) {
    if (this.current) this.connection.unsubscribe(this.current.channel);
    const channel = `story:${id}`;
    this.current = { id, channel, snapshot: null, history: [] };
    this.viewing = null;
    this.page.devicePush.show(id);
    this.renderHistory();
    this.page.feeds.render();
    const token = ++this.loadToken;
    let data;
    try {
      data = await getJSON(storyPath(id));
    } catch (err) {
      if (token === this.loadToken) this.page.toast("Could not load that story.");
      return;
    }
    if (token !== this.loadToken) return; // another story was chosen meanwhile
    const current = this.current;
    current.channel = data.channel || channel;
    current.snapshot = data;
    this.render(null);
    const article = el("article");
    article.focus({ preventScroll: true });
    // On a phone the story sits below the list: bring it into view.
    if (window.matchMedia("(max-width: 760px)").matches) article.scrollIntoView({ block: "start" });
    this.connection.subscribe(current.channel, data.seq ?? null, data.epoch ?? null, {
      update: (message) => this.onUpdate(message),
      reset: (message) => this.onReset(message),
      error: (message) => this.page.toast(message.message || "The server refused this story."),
    });
    this.loadHistory(current, data.seq);
  }

  /* The story's earlier updates (REST, the same update messages as the WebSocket) into its
   * history, so a reader can open what changed before the page was opened too. */
  async loadHistory(current, seq) {
    if (!Number.isInteger(seq) || seq < 1) return;
    const since = Math.max(0, seq - HISTORY_UPDATES);
    try {
      const data = await getJSON(
        `${storyPath(current.id)}/updates?since=${since}&limit=${HISTORY_UPDATES}`,
      );
      if (this.current !== current || !Array.isArray(data.updates)) return;
      for (const message of data.updates) this.remember(current, message.event || {});
      this.renderHistory();
    } catch (err) {
      // The history is a convenience: the live story works without it.
    }
  }

  remember(current, event) {
    const diff = event.diff;
    if (event.kind !== "updated" || !diff || !Number.isInteger(diff.to_version)) return null;
    if (current.history.some((entry) => entry.version === diff.to_version)) return null;
    const entry = {
      version: diff.to_version,
      from: diff.from_version,
      summary: event.summary || "Story updated",
      at: event.at,
      diff,
    };
    current.history.push(entry);
    current.history.sort((a, b) => b.version - a.version);
    return entry;
  }

  /* Fetches the open story again: after a gap the diffs cannot bridge, or a lost position. */
  async reload() {
    const current = this.current;
    if (!current) return;
    const token = ++this.loadToken;
    try {
      const data = await getJSON(storyPath(current.id));
      if (token !== this.loadToken || this.current !== current) return;
      const known = current.snapshot?.version;
      if (Number.isInteger(known) && Number.isInteger(data.version) && data.version < known) return;
      current.snapshot = data;
      this.connection.advance(current.channel, data.seq, data.epoch);
      if (this.viewing === null) this.render(null);
    } catch (err) {
      setTimeout(() => {
        if (this.current === current) this.reload();
      }, 2000);
    }
  }

  onUpdate(message) {
    const current = this.current;
    const event = message.event || {};
    if (!current || !current.snapshot || message.channel !== current.channel) return;
    const diff = event.diff;
    const version = current.snapshot.version;
    if (event.kind !== "updated" || !diff) {
      // A "created" on a story channel only repeats what the snapshot already holds.
      if (!(event.story && event.story.version <= version)) this.reload();
      return;
    }
    if (Number.isInteger(version) && diff.to_version <= version) return; // already applied
    if (Number.isInteger(version) && diff.from_version !== version) {
      this.reload(); // a version is missing: diffs cannot bridge the gap
      return;
    }
    let next;
    try {
      next = applyDiff(current.snapshot, diff);
    } catch (err) {
      if (!(err instanceof DiffError)) throw err;
      this.reload();
      return;
    }
    const before = current.snapshot;
    current.snapshot = next;
    this.remember(current, event);
    // A reader looking at an earlier update keeps it; the history shows the new one on top.
    if (this.viewing === null) this.render({ before, diff });
    this.renderHistory();
    const summary = event.summary || "Story updated";
    this.page.toast(summary);
    this.page.notify(current.id, next.title, summary);
    this.page.feeds.retitle(current.id, next.title);
  }

  onReset(message) {
    const current = this.current;
    if (!current || message.channel !== current.channel) return;
    const snapshot = message.snapshot;
    if (!snapshot || !Number.isInteger(snapshot.version)) {
      this.reload();
      return;
    }
    current.snapshot = snapshot;
    if (this.viewing === null) this.render(null);
    this.page.toast("The story was reloaded to its latest version.");
  }

  /* Shows what changed in one past update: version `entry.from` fetched, the diff applied. */
  async showEntry(entry) {
    const current = this.current;
    if (!current) return;
    let before;
    try {
      before = await getJSON(`${storyPath(current.id)}/versions/${entry.from}`);
    } catch (err) {
      this.page.toast(`Version ${entry.from} is not available.`);
      return;
    }
    if (this.current !== current) return;
    let after;
    try {
      after = applyDiff(before, entry.diff);
    } catch (err) {
      if (!(err instanceof DiffError)) throw err;
      this.page.toast(`The update to version ${entry.version} cannot be shown.`);
      return;
    }
    this.viewing = entry.version;
    this.render({ before, diff: entry.diff }, after);
    el("past-summary").textContent =
      `You are looking at version ${entry.version}: ${entry.summary}` +
      (entry.at ? ` (${formatTime(entry.at)}).` : ".");
    el("past-banner").hidden = false;
    this.renderHistory();
    el("story-title").scrollIntoView({ block: "nearest" });
  }

  showLatest() {
    this.viewing = null;
    if (this.current?.snapshot) this.render(null);
    this.renderHistory();
  }

  renderHistory() {
    const list = el("update-log");
    const history = this.current ? this.current.history : [];
    el("log-empty").hidden = history.length > 0;
    list.replaceChildren(
      ...history.map((entry) => {
        const item = make("li");
        const button = make("button", "log-entry");
        button.type = "button";
        button.dataset.version = String(entry.version);
        if (this.viewing === entry.version) button.setAttribute("aria-current", "true");
        button.append(make("time", "log-time", formatTime(entry.at)));
        button.append(` ${entry.summary} `, make("span", "muted", `(version ${entry.version})`));
        button.addEventListener("click", () => this.showEntry(entry));
        item.append(button);
        return item;
      }),
    );
  }

  /* Draws `shown` (default: the latest snapshot); `change` ({before, diff}) marks what the diff
   * changed. */
  render(change, shown) {
    const snapshot = shown || this.current.snapshot;
    el("placeholder").hidden = true;
    el("past-banner").hidden = this.viewing === null;
    const article = el("story");
    article.hidden = false;
    article.dataset.storyId = this.current.id;
    article.dataset.version = String(this.current.snapshot.version ?? "");
    article.dataset.showing = String(snapshot.version ?? "");
    document.title = `${snapshot.title || "Story"} - liveupdates`;

    const title = el("story-title");
    const titleChange = change && change.diff.fields && change.diff.fields.title;
    if (titleChange) {
      title.replaceChildren(...renderRuns(headlineRuns(titleChange)));
      title.classList.add("changed");
    } else {
      title.textContent = snapshot.title || "(untitled)";
      title.classList.remove("changed");
    }

    const parts = [];
    if (snapshot.authors && snapshot.authors.length) parts.push(`By ${snapshot.authors.join(", ")}`);
    if (snapshot.published) parts.push(`Published ${formatTime(snapshot.published)}`);
    if (Number.isInteger(snapshot.version)) parts.push(`Version ${snapshot.version}`);
    el("story-meta").textContent = parts.join(" · ");

    const link = el("story-url");
    link.href = snapshot.url || "#";
    link.parentElement.hidden = !snapshot.url;

    const items = change
      ? displayItems(change.before.paragraphs || [], change.diff.paragraphs || [])
      : (snapshot.paragraphs || []).map((text) => ({ kind: "same", text }));
    el("story-body").replaceChildren(...items.map(renderParagraph));
  }
}

// -- the page ------------------------------------------------------------------------------------

class Page {
  constructor() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.connection = new Connection(`${scheme}//${location.host}/v1/ws`, (state, info) =>
      this.showStatus(state, info),
    );
    this.feeds = new FeedList(this.connection, this);
    this.story = new StoryView(this.connection, this);
    this.devicePush = new DevicePush(el("notify"), (text) => {
      const status = el("device-status");
      status.textContent = text;
      status.hidden = false;
    });
    this.toastTimer = null;
  }

  start() {
    this.devicePush.start();
    window.addEventListener("hashchange", () => this.followHash());
    // Cuts the connection as a network failure would, to watch the page resume (tests use it).
    document.addEventListener("liveupdates:drop", () => this.connection.drop());
    this.connection.start();
    this.feeds.start();
    this.story.start();
    this.followHash();
  }

  followHash() {
    const match = /^#story\/(.+)$/.exec(location.hash);
    const id = match ? decodeURIComponent(match[1]) : null;
    if (id && (!this.story.current || this.story.current.id !== id)) this.story.open(id);
  }

  // -- status and toasts -------------------------------------------------------------------------

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

  // -- a notification while the tab is in the background ----------------------------------------

  notify(storyId, title, body) {
    // Only when the reader is elsewhere: on the page itself the highlight says it all. The tag is
    // the story id, as in the service worker's, so a Web Push for the same change replaces this.
    if (!document.hidden || !("Notification" in window)) return;
    if (Notification.permission !== "granted") return;
    try {
      new Notification(title, { body, tag: storyId });
    } catch (err) {
      // Some mobile browsers only allow notifications from a service worker; the page still works.
    }
  }
}

// A module runs once, after the document is parsed.
new Page().start();
