"""Device push: registration, the dispatcher that turns update events into notifications, and one
provider per push service (Web Push, APNs, FCM)."""
