// The service worker behind "Get real time updates on this device": shows each push as one
// notification per story (the tag is the story id, so a newer one replaces the older) and opens
// the story on click. The payload is the server's notification document (docs/push.md).

const worker = globalThis;

function storyPath(story) {
  return story && story.id ? `/#story/${encodeURIComponent(story.id)}` : "/";
}

worker.addEventListener("push", (event) => {
  let message;
  try {
    message = event.data ? event.data.json() : {};
  } catch (err) {
    message = { title: "Story updated", body: event.data ? event.data.text() : "" };
  }
  const story = message.story || {};
  const title = message.title || story.title || "Story updated";
  event.waitUntil(
    worker.registration.showNotification(title, {
      body: message.body || "",
      tag: story.id || "liveupdates",
      renotify: true,
      data: { path: storyPath(story), channel: message.channel, seq: message.seq },
    }),
  );
});

worker.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = new URL(event.notification.data?.path || "/", worker.location.origin).href;
  event.waitUntil(
    (async () => {
      const windows = await worker.clients.matchAll({ type: "window", includeUncontrolled: true });
      for (const client of windows) {
        if (new URL(client.url).origin !== worker.location.origin) continue;
        try {
          // The page follows its hash: navigating to the story opens it and catches up.
          const page = await client.navigate(target);
          return (page || client).focus();
        } catch (err) {
          break; // a window this worker does not control cannot be navigated: open one
        }
      }
      return worker.clients.openWindow(target);
    })(),
  );
});
