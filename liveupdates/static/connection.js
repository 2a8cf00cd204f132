/* One WebSocket to /v1/ws carrying any number of resumable channel subscriptions, with jittered
 * backoff: the reconnect-and-resume rules of docs/protocol.md ("Resuming", "Close codes"). */

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
export class Connection {
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
