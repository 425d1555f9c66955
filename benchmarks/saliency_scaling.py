"""Batch P^S at the size of a category: seconds per scored image (extraction, scoring; CPU on one thread and wall),
peak resident memory and the growth of the time per image from N = 25 to N = 100 and 200, for the patch index (the
default) and the exact search. The same as ``saa bench scaling`` (saa_lib/engine/scaling.py). Usage::

    python benchmarks/saliency_scaling.py [--sizes 25,50,100,200] [--categories leather,mtd,screw]
        [--searches index,exact,image] [--exact-sizes 25,50] [--score 2] [--threads 1] [--device cpu|cuda]
        [--samples ../shared/data/samples] [--out results/scaling] [--figure figures/saliency_scaling.png]
        [--root DIR]   # the categories of a folder as they are (every image is the batch)

The categories (N = 25 .. 200 images of 400 x 400 px: the real sample images and label-preserving variants of them)
are built deterministically under OUT/categories; without the sample images it says so and exits 2.
"""
import sys

from saa_lib.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "scaling"] + sys.argv[1:]))
