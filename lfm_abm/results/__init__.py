"""Study results: Parquet storage, KPIs, plots and the report (never re-simulates)."""
