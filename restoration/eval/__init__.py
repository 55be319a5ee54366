"""Measuring restorations: the Evaluator and its eval step (evaluator), metrics, eval result files
(results), side-by-side comparisons (compare) and pictures (visualize)."""
