"""Run reports: the predictions CSV, PNG plots, cross-validation tables and the run's page.

Modules: ``predictions_csv`` (write and read back predictions.csv), ``plots`` (confusion,
curves, recall, modality weights, fixed-weight sweep), ``tables`` (fold aggregation and the
cross-validation page), ``page`` (one run's report: files and index.md). Model selection itself
is ``finecliper.train.selection``.

Conventions:
- Metrics (uar, war, recall) are fractions in 0..1 as finecliper.train.metrics returns them;
  plots and Markdown show them in percent, next to the paper's percentages (train/paper.py).
- A history is a list of per-epoch dicts ``{"epoch", "train_loss", "lr", "val", "test"}`` where
  ``val`` / ``test`` are ``{"uar", "war"}`` or None (not evaluated that epoch).
- Plots use matplotlib's object API (``Figure``) and never pyplot, so no backend or global state
  is touched; PNGs are rendered by Agg into a temporary file and moved into place atomically.
"""
