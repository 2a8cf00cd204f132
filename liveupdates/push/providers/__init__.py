"""One provider per push service: Web Push (webpush), APNs (apns), FCM (fcm)."""
