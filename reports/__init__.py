"""Reports for managers and data for every department (issue 22; docs/reports.md).

* :mod:`.facts`: the pure core: one call's facts, its contribution to the aggregates, first-contact resolution links.
* :mod:`.tables`: the report tables of a transcript store (``store.reports``), maintained by the store ingest as
  calls end, and the queries over them.
* :mod:`.metrics`: a report (totals, breakdowns by intent / queue / agent / day / hour, reasons, alerts) from them.
* :mod:`.drivers`: intent mix over time and movers and shakers (two-proportion z-test, Benjamini-Hochberg).
* :mod:`.topics`: emerging phrases outside the intent catalog (jieba words, English n-grams) with example calls.
* :mod:`.render`: the report as JSON, CSV, a standalone HTML page with its charts, and PDF (headless Chromium).

Nothing here imports the gateway: the store imports :mod:`.tables`, the gateway's routes and the CLI import the rest.
"""
