"""Ingest: turns raw reports from every source into normalised, deduplicated reports."""
