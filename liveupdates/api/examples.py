"""Example values for the documents: the ferry-strike story of docs/protocol.md. Pure data."""

from __future__ import annotations

from liveupdates.api import messages, push
from liveupdates.api.models import (
    Diff,
    Error,
    ErrorDetail,
    Event,
    FeedsPage,
    FeedStories,
    FeedSummary,
    FieldChange,
    Health,
    Hunk,
    StoryDocument,
    StoryRef,
    StorySnapshot,
    Update,
    UpdatesPage,
    VersionDocument,
    WordPair,
    WordRun,
)

STORY_ID = "k3v7q2mxa4pt6hne"
CHANNEL = f"story:{STORY_ID}"
EPOCH = "9f1c2ab4e07d5a61"
_SNAPSHOT = {
    "id": STORY_ID,
    "feed": "harbour-times",
    "url": "https://harbour.example/news/ferry-strike",
    "title": "Ferry crews vote to strike",
    "summary": "Sailings to the islands may stop on Friday.",
    "authors": ["Mara Lind"],
    "published": "2026-11-26T07:10:00Z",
    "updated": None,
    "paragraphs": [
        "Crews on the island ferries voted to strike from Friday.",
        "The operator said talks would continue.",
        "Passengers should check before travelling.",
    ],
    "version": 3,
}

SNAPSHOT = StorySnapshot(**_SNAPSHOT)  # type: ignore[arg-type]
STORY = StoryDocument(**_SNAPSHOT, channel=CHANNEL, seq=9, epoch=EPOCH)  # type: ignore[arg-type]
VERSION = VersionDocument(**_SNAPSHOT, at="2026-11-26T08:02:11.514000Z")  # type: ignore[arg-type]
UPDATE = Update(
    channel=CHANNEL,
    seq=10,
    event=Event(
        kind="updated",
        story=StoryRef(
            id=STORY_ID,
            feed="harbour-times",
            url="https://harbour.example/news/ferry-strike",
            title="Ferry crews vote to strike",
            version=4,
        ),
        diff=Diff(
            from_version=3,
            to_version=4,
            fields={"updated": FieldChange(old=None, new="2026-11-26T09:45:00Z")},
            paragraphs=[
                Hunk(
                    op="replace",
                    old_start=0,
                    old_end=1,
                    new_start=0,
                    new_end=1,
                    old=["Crews on the island ferries voted to strike from Friday."],
                    new=["Crews on the island ferries voted to strike from Saturday."],
                    words=[
                        WordPair(
                            0,
                            0,
                            [
                                WordRun(
                                    "equal",
                                    "Crews on the island ferries voted to strike from ",
                                    "Crews on the island ferries voted to strike from ",
                                ),
                                WordRun("replace", "Friday", "Saturday"),
                                WordRun("equal", ".", "."),
                            ],
                        )
                    ],
                )
            ],
        ),
        summary="Update time changed; 1 paragraph updated",
        at="2026-11-26T09:46:02.118000Z",
    ),
)
UPDATES = UpdatesPage(
    channel=CHANNEL, seq=10, epoch=EPOCH, updates=[UPDATE], recovered=True, more=False
)
FEED_STORIES = FeedStories(feed="harbour-times", stories=[SNAPSHOT])
FEEDS = FeedsPage(
    feeds=[
        FeedSummary(
            id="harbour-times",
            title="The Harbour Times",
            link="https://harbour.example/",
            stories=42,
            last_update="2026-11-26T09:46:02.118000Z",
            channel="feed:harbour-times",
        )
    ],
    next_cursor="aGFyYm91ci10aW1lcw",
)
HEALTH = Health(status="ok", store="ok", bus="ok", connections=1250, channels=37)
NOT_FOUND = Error(ErrorDetail("not_found", f"no story {STORY_ID}"))
BAD_REQUEST = Error(
    ErrorDetail("bad_request", "since must be a non-negative integer (ASCII digits, 64-bit)")
)
SUBSCRIBE = messages.Subscribe(channel=CHANNEL, since=7, epoch=EPOCH)
SUBSCRIBED = messages.Subscribed(channel=CHANNEL, seq=9, epoch=EPOCH, recovered=True)
RESET = messages.Reset(channel=CHANNEL, seq=9, snapshot=SNAPSHOT)
CLOSE = messages.Close(code=1012, reason="server restarting")
VAPID = push.VapidPublicKey(
    public_key="BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"
)
WEBPUSH_REGISTRATION = push.WebPushRegistration(
    push.WebPushSubscription(
        endpoint="https://fcm.googleapis.com/fcm/send/dpH5lCsTSSM:APA91bH",
        keys=push.WebPushKeys(
            p256dh="BIPUL12DLfytvTajnryr2PRdAgXS3HGKiLqndGcJGabyhHheJYlNGCeXl1dn18gSJ1WAkAPIxr4gK0_dQds4yiI",
            auth="FPssNDTKnInHVndSTdbKFw",
        ),
    )
)
APNS_REGISTRATION = push.ApnsRegistration(
    token="740f4707bebcf74f9b7c25d48e3358945f6aa01da5ddb387462c7eaf61bb78ad"
)
FCM_REGISTRATION = push.FcmRegistration(token="eXampleFcmRegistrationToken:APA91bE")
REGISTERED = push.DeviceRegistered(device_id="d_7h2k9q4m", secret="s3cr3t-b64url-32-bytes")
SUBSCRIPTION = push.DeviceSubscription(channel=CHANNEL, notify="major")
