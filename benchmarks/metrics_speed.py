"""Time the sparse contingency table and the volume metrics on a 100×1024×1024 label pair.

Run: ``OMP_NUM_THREADS=1 python benchmarks/metrics_speed.py [--depth 100] [--size 1024]``.
The labels are a blocky neuron-like segmentation (~40 000 ids) and a prediction that is the
same blocks shifted, with some blocks split and merged, so the table has realistic sparsity.
Not a test: it prints wall-clock seconds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def make_pair(depth: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A ground-truth label volume of 3-D boxes and a perturbed prediction (uint32)."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.ogrid[:depth, :size, :size]
    gt = ((zz // 10) * 10_000 + (yy // 24) * 100 + (xx // 24) + 1).astype(np.uint32)
    gt[:, ::24, :] = 0
    pred = ((zz // 10) * 10_000 + ((yy + 5) // 24) * 100 + ((xx + 7) // 33) + 1).astype(np.uint32)
    noise = rng.random(pred.shape, dtype=np.float32) < 0.01
    pred[noise] = 0
    return pred, gt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()

    from slicewise.metrics import adapted_rand, average_precision, contingency_table, evaluate, voi

    pred, gt = make_pair(args.depth, args.size)
    print(f"volume {pred.shape}, {len(np.unique(gt[:10]))} gt ids in the first 10 slices")
    t0 = time.perf_counter()
    table = contingency_table(pred, gt)
    t1 = time.perf_counter()
    print(
        f"contingency_table: {t1 - t0:.2f} s ({table.gt_ids.size} gt ids, {table.pred_ids.size} pred ids, "
        f"{table.counts.nnz} pairs)"
    )
    are = adapted_rand(pred, gt, table=table)
    v = voi(pred, gt, table=table)
    ap = average_precision(pred, gt, table=table)
    t2 = time.perf_counter()
    print(
        f"ARE + VOI + AP from the table: {t2 - t1:.2f} s (ARE {are['are']:.4f}, VOI {v['voi']:.4f}, AP {ap['ap']:.4f})"
    )
    t3 = time.perf_counter()
    evaluate(pred, gt, kind="instance")
    print(f"evaluate(kind='instance'), whole volume: {time.perf_counter() - t3:.2f} s")
    t3 = time.perf_counter()
    evaluate(pred, gt, kind="instance", per_slice=True)
    print(f"evaluate(kind='instance', per_slice=True): {time.perf_counter() - t3:.2f} s")
    try:
        from skimage.metrics import adapted_rand_error

        t3 = time.perf_counter()
        ref = adapted_rand_error(gt, pred, ignore_labels=(0,))[0]
        print(
            f"skimage adapted_rand_error (reference): {time.perf_counter() - t3:.2f} s, "
            f"|diff| = {abs(ref - are['are']):.2e}"
        )
    except MemoryError:
        print("skimage adapted_rand_error: out of memory")


if __name__ == "__main__":
    main()
