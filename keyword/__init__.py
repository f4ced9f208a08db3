"""Live call analytics (keyword spotting, intent, alerts, unresolved flags): issue #6, not built yet."""
