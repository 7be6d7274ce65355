"""Notifier: delivers signals to people through apprise channels, once per channel."""
