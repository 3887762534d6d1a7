"""Comparing methods: the side-by-side benchmark and the validation-only tuning that feeds it (the
scripts that run them for the docs, and the committed cells, are in ``benchmarks/`` at the repository
root), one module per stage:

* :mod:`.spec`: what a benchmark computes (methods and ablations, code lengths, splits) and the
  configuration of each cell, from the tuned defaults of ``vsb2net tune``;
* :mod:`.cells`: computing cells (train, then :func:`vsb2net.evaluation.model_eval.evaluate_model`), each a
  JSON file keyed by the hash of its full configuration, so a benchmark resumes and no cell goes stale;
* :mod:`.tables`: means over splits, Markdown tables, CSV and the plot;
* :mod:`.tuning`: ``vsb2net tune``, the Optuna search scored on the validation protocol;
* :mod:`.workers`: the worker processes both of them run in (``--jobs``), none outliving its command;
* :mod:`.tuned`: the tuned-file format and the tuned defaults that ship in ``tuned/``;
* :mod:`.results_plan`, :mod:`.results_doc`, :mod:`.levers_doc`, :mod:`.paired`: docs/RESULTS.md
  (what ``benchmarks/make_results.py`` computes, and its rendering);
* :mod:`.commands`: the ``vsb2net benchmark`` / ``tune`` commands (their parsers are in
  :mod:`.cli`, which imports no torch).

Importing this package imports nothing heavy; import the stage you need.
"""
