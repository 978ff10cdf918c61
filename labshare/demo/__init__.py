"""Demo data for `flask seed-demo`: reference CSVs in ``data/``, facts in
``catalogue``, the idempotent writer in ``seed``."""
