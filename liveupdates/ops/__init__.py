"""Ops control: the admin API (/v1/admin), its auth and audit, the admin page, the `feeds` CLI."""
