"""Running the pipeline over data sets: ``evaluate`` (categories, variants, metrics, result files), ``distributed``
(the same on a Ray cluster), ``saliency_sources`` (the P^S map alone from each source, measured per category) and
``bench`` (stage latency and memory)."""
