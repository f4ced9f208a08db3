"""Data out for a warehouse: incremental exports of calls, utterances, alerts, tickets and scores (docs/reports.md)."""
