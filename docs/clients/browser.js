/* liveupdates from a web page: follow a channel over WebSocket and resume after any drop, follow
 * one story and keep its text current by applying diffs, or use Server-Sent Events instead.
 *
 * An ES module with no dependencies, following docs/protocol.md. Use it as
 *
 *   import { followStory } from "./browser.js";
 *   const story = followStory("https://live.example", "k3v7q2mxa4pt6hne", {
 *     onSnapshot: (snapshot, diff) => render(snapshot, diff),  // diff is null after a (re)load
 *   });
 *   // story.close() when done.
 *
 * It runs in the project's browser tests (tests/test_browser_clients.py) against a live server.
 */

// -- WebSocket with resume -----------------------------------------------------------------------

/* Follows one channel ("story:<id>" or "feed:<id>") on /v1/ws. Keeps (epoch, seq) and subscribes
 * again with since/epoch after every reconnect, so updates arrive once each, in order, gapless;
 * when the server cannot replay, a reset carries the current state instead.
 *
 * handlers: onUpdate(message), onReset(message), onStatus("live" | "reconnecting", detail).
 * Returns {close(), drop(), position()}: drop() closes the socket as a network failure would. */
export function followChannel(baseUrl, channel, handlers = {}, start = {}) {
  const url = baseUrl.replace(/^http/, "ws") + "/v1/ws";
  let since = start.since ?? null; // the last seq applied (null: start from now)
  let epoch = start.epoch ?? null;
  let socket = null;
  let attempt = 0;
  let closed = false;
  let timer = null;

  function connect() {
    socket = new WebSocket(url);
    socket.addEventListener("open", () => {
      attempt = 0;
      const subscribe = { type: "subscribe", channel };
      if (since !== null) Object.assign(subscribe, { since, epoch });
      socket.send(JSON.stringify(subscribe));
    });
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.channel !== channel) return;
      if (message.type === "subscribed") {
        epoch = message.epoch;
        // From now on, or a reset follows: either way this is the position. When recovering,
        // the replayed updates move it forward one by one.
        if (since === null || !message.recovered) since = message.seq;
        handlers.onStatus?.("live", message);
      } else if (message.type === "update") {
        if (since !== null && message.seq <= since) return; // already applied
        since = message.seq;
        handlers.onUpdate?.(message);
      } else if (message.type === "reset") {
        since = message.seq;
        handlers.onReset?.(message);
      } else if (message.type === "error") {
        handlers.onStatus?.("error", message);
      }
    });
    socket.addEventListener("close", (event) => {
      if (closed) return;
      // Full jitter: random(0, min(30 s, 0.5 s x 2^attempt)), so a restart is not a stampede.
      const delay = Math.random() * Math.min(30000, 500 * 2 ** attempt);
      attempt = Math.min(attempt + 1, 10);
      handlers.onStatus?.("reconnecting", { code: event.code, delay });
      timer = setTimeout(connect, delay);
    });
  }

  connect();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      socket?.close(1000);
    },
    drop() {
      socket?.close(4000, "dropped by the client");
    },
    position() {
      return { since, epoch };
    },
  };
}

// -- one story, kept current ----------------------------------------------------------------------

export class DiffError extends Error {}

const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/* The snapshot a diff leads to ("Applying a diff" in docs/protocol.md); DiffError when the diff
 * was not made from this snapshot, and the caller reloads instead of showing a garbled story. */
export function applyDiff(snapshot, diff) {
  if (diff.from_version !== snapshot.version) throw new DiffError("not the version the diff is from");
  const next = { ...snapshot, version: diff.to_version };
  for (const [name, change] of Object.entries(diff.fields)) {
    if (!same(snapshot[name], change.old)) throw new DiffError(`${name} differs`);
    next[name] = change.new;
  }
  const old = snapshot.paragraphs;
  const paragraphs = [];
  let position = 0;
  for (const hunk of diff.paragraphs) {
    paragraphs.push(...old.slice(position, hunk.old_start));
    if (paragraphs.length !== hunk.new_start || !same(old.slice(hunk.old_start, hunk.old_end), hunk.old)) {
      throw new DiffError("paragraphs differ");
    }
    paragraphs.push(...hunk.new);
    position = hunk.old_end;
  }
  next.paragraphs = [...paragraphs, ...old.slice(position)];
  return next;
}

/* Follows one story: loads it over REST, subscribes from exactly that position, applies each
 * diff, and reloads when a diff does not fit. onSnapshot(snapshot, diff) after every change
 * (diff: null after a load or reset; otherwise the diff, whose word runs mark what changed). */
export function followStory(baseUrl, storyId, { onSnapshot, onStatus } = {}) {
  const storyUrl = `${baseUrl}/v1/stories/${encodeURIComponent(storyId)}`;
  let snapshot = null;
  let follower = null;
  let stopped = false;

  async function load() {
    const response = await fetch(storyUrl, { cache: "no-store" });
    if (!response.ok) throw new Error(`GET ${storyUrl}: HTTP ${response.status}`);
    return response.json();
  }

  function onUpdate(message) {
    const { kind, diff, story } = message.event;
    if (!snapshot || story.version <= snapshot.version) return; // the snapshot already has it
    try {
      if (kind !== "updated") throw new DiffError("no diff");
      snapshot = applyDiff(snapshot, diff);
      onSnapshot?.(snapshot, diff);
    } catch (err) {
      if (!(err instanceof DiffError)) throw err;
      load().then((fresh) => {
        snapshot = fresh;
        onSnapshot?.(snapshot, null);
      });
    }
  }

  load().then((doc) => {
    if (stopped) return;
    snapshot = doc;
    onSnapshot?.(snapshot, null);
    // Subscribing from the document's own seq/epoch closes the gap between load and subscribe.
    follower = followChannel(
      baseUrl,
      doc.channel,
      {
        onUpdate,
        onReset: (message) => {
          snapshot = message.snapshot;
          onSnapshot?.(snapshot, null);
        },
        onStatus,
      },
      { since: doc.seq, epoch: doc.epoch },
    );
  });

  return {
    close() {
      stopped = true;
      follower?.close();
    },
    drop() {
      follower?.drop();
    },
    snapshot: () => snapshot,
  };
}

// -- Server-Sent Events --------------------------------------------------------------------------

/* The same channel over /v1/sse, for where WebSockets are blocked. EventSource reconnects by
 * itself and resumes with Last-Event-ID (the seq); the epoch in the URL makes a server with
 * another log answer with a reset. onMessage gets the same JSON messages as the WebSocket. */
export function followWithEventSource(baseUrl, channel, onMessage, { since, epoch } = {}) {
  const query = new URLSearchParams({ channel });
  if (since !== undefined) query.set("since", String(since));
  if (epoch !== undefined) query.set("epoch", epoch);
  const source = new EventSource(`${baseUrl}/v1/sse?${query}`);
  for (const type of ["subscribed", "update", "reset"]) {
    source.addEventListener(type, (event) => onMessage(JSON.parse(event.data)));
  }
  // The server ends the stream with a close event (e.g. 1012 on restart); EventSource then
  // reconnects after the `retry` delay with Last-Event-ID, which is all resuming takes.
  source.addEventListener("close", (event) => onMessage(JSON.parse(event.data)));
  return source;
}

// -- Web Push ------------------------------------------------------------------------------------
// PLACEHOLDER for the device push work (issue 11): subscribing this browser with the service
// worker and the server's VAPID key, and following a story on this device. Not written yet.
