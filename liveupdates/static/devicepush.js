// "Get real time updates on this device": Web Push for the open story (docs/push.md).
//
// The page registers a service worker (sw.js), subscribes to the browser's push service with the
// server's VAPID key, registers the subscription as a device and follows the story. The device id
// and its secret stay in localStorage: the secret is the device's bearer token and is never shown.

const STORAGE_KEY = "liveupdates.device";
const NO_PUSH =
  "This browser has no push service here, so it cannot notify this device while the page is " +
  "closed. Updates still arrive live while the page is open.";

function base64UrlToBytes(text) {
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

function loadDevice() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
    if (saved && typeof saved.device_id === "string" && typeof saved.secret === "string") {
      return { following: [], ...saved };
    }
  } catch (err) {
    // A damaged entry is as good as none: the device registers again.
  }
  return null;
}

function saveDevice(device) {
  localStorage.setItem(STORAGE_KEY, JSON.stringify(device));
}

async function api(method, path, { body, secret } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (secret) headers.Authorization = `Bearer ${secret}`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let payload = null;
  if (response.status !== 204) payload = await response.json().catch(() => null);
  return { status: response.status, payload };
}

function problem(answer) {
  return answer.payload?.error?.message || answer.payload?.message || `HTTP ${answer.status}`;
}

export class DevicePush {
  // `button` toggles following; `say(text)` shows the outcome to the reader.
  constructor(button, say) {
    this.button = button;
    this.say = say;
    this.storyId = null;
    this.busy = false;
  }

  static supported() {
    return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
  }

  start() {
    this.button.addEventListener("click", () => this.toggle());
  }

  // The page opened a story (or none): the button follows it.
  show(storyId) {
    this.storyId = storyId;
    this.button.hidden = !storyId;
    this.render();
  }

  following() {
    const device = loadDevice();
    return Boolean(device && this.storyId && device.following.includes(this.storyId));
  }

  render() {
    const on = this.following();
    this.button.textContent = on
      ? "Stop updates on this device"
      : "Get real time updates on this device";
    this.button.setAttribute("aria-pressed", String(on));
  }

  async toggle() {
    if (this.busy || !this.storyId) return;
    this.busy = true;
    this.button.disabled = true;
    try {
      if (this.following()) await this.unfollow(this.storyId);
      else await this.follow(this.storyId);
    } catch (err) {
      this.say(`Could not change updates on this device: ${err.message || err}`);
    } finally {
      this.busy = false;
      this.button.disabled = false;
      this.render();
    }
  }

  async follow(storyId) {
    if (!DevicePush.supported()) {
      this.say(NO_PUSH);
      return;
    }
    if ((await Notification.requestPermission()) !== "granted") {
      this.say("Notifications are blocked for this site; allow them to get updates here.");
      return;
    }
    const device = await this.device();
    if (!device) return;
    let answer = await this.subscribe(device, storyId);
    if (answer.status === 401 || answer.status === 404) {
      // The server forgot this device (idle too long, or removed after a failed delivery).
      localStorage.removeItem(STORAGE_KEY);
      const fresh = await this.device();
      if (!fresh) return;
      answer = await this.subscribe(fresh, storyId);
    }
    if (answer.status !== 200) {
      this.say(`The server refused to follow this story: ${problem(answer)}`);
      return;
    }
    const saved = loadDevice();
    if (!saved.following.includes(storyId)) saved.following.push(storyId);
    saveDevice(saved);
    this.say("This device will get a notification when this story changes, even when closed.");
  }

  async unfollow(storyId) {
    const device = loadDevice();
    if (!device) return;
    const channel = encodeURIComponent(`story:${storyId}`);
    await api("DELETE", `/v1/devices/${device.device_id}/subscriptions/${channel}`, {
      secret: device.secret,
    });
    device.following = device.following.filter((id) => id !== storyId);
    saveDevice(device);
    this.say("No more notifications for this story on this device.");
  }

  subscribe(device, storyId) {
    const channel = encodeURIComponent(`story:${storyId}`);
    return api("PUT", `/v1/devices/${device.device_id}/subscriptions/${channel}`, {
      body: { notify: "major" },
      secret: device.secret,
    });
  }

  // The registered device, registering this browser's push subscription first when needed.
  async device() {
    const saved = loadDevice();
    if (saved) return saved;
    const key = await api("GET", "/v1/push/vapid-public-key");
    if (key.status !== 200) {
      this.say(`Device updates are not available on this server: ${problem(key)}`);
      return null;
    }
    // Served at the root so that its scope is the whole site (the story page included).
    const registration = await navigator.serviceWorker.register("/sw.js");
    await navigator.serviceWorker.ready;
    let subscription;
    try {
      subscription =
        (await registration.pushManager.getSubscription()) ||
        (await registration.pushManager.subscribe({
          userVisibleOnly: true,
          applicationServerKey: base64UrlToBytes(key.payload.publicKey),
        }));
    } catch (err) {
      // Headless and some privacy-minded browsers have no push service at all.
      this.say(NO_PUSH);
      this.button.dataset.push = "unavailable";
      return null;
    }
    const answer = await api("POST", "/v1/devices", {
      body: { platform: "webpush", subscription: subscription.toJSON() },
    });
    if (answer.status !== 201) {
      this.say(`The server refused this device: ${problem(answer)}`);
      return null;
    }
    const device = { device_id: answer.payload.device_id, secret: answer.payload.secret, following: [] };
    saveDevice(device);
    return device;
  }
}
