"""Sources feed raw reports into the inbox stream."""
