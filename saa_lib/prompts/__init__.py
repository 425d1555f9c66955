"""The four hybrid prompts of SAA+, one idea per module: ``language`` (P^L), ``property`` (P^P), ``saliency`` (P^S),
``confidence`` (P^C)."""
