"""Staged workflows: tickets, stage gates, the re-entry matrix and the source-edit lock."""
