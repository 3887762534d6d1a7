"""The evaluation of a trained model, one module per job (importing the package loads none of them):

* :mod:`.retrieval`: tie-aware retrieval metrics of a Hamming ranking (mAP, mAP@K, precision@K,
  precision/recall within a radius) from distance histograms, and the asymmetric AP;
* :mod:`.row_metrics`: metrics registered per query row (``@row_metric``), computed by every evaluation;
* :mod:`.record`: the metrics record (TypedDicts) that the evaluation returns and every reader shares;
* :mod:`.model_eval`: :func:`~.model_eval.evaluate_model`, the one evaluation that runs, the validation
  protocol and benchmark cells call.
"""
