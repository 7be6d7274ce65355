"""Classifier: flags escalation and ceasefire signals in reports, with evidence and places."""
