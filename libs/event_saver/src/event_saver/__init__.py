"""event_saver."""
