"""Post-hoc logit adjustment (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021)
measured on a split: labels ``argmax(log p_c - tau * log prior_c)``, with the class priors counted
on the dataset's train split, for several ``tau`` from one pass of the model.

Usage:
    python benchmarks/logit_adjustment.py CHECKPOINT DATA [--split test] [--tau 0 0.1 ...]

tau > 0 favours the rare classes (poles, signs), tau < 0 the frequent ones; tau = 0 is the model
as it is (``fcnseg evaluate``'s labels, up to exact ties). Prints mean IU and per-class IoU for
each tau. Choose tau on a held-out split (benchmarks/dataset1_splits.py), never on the test one.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import machine_summary, table

import fcnseg
from fcnseg.data import open_dataset, scan_split
from fcnseg.data.scan import decode_pair

TAUS = (-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.5, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint")
    parser.add_argument("data")
    parser.add_argument("--split", default="test")
    parser.add_argument("--tau", type=float, nargs="+", default=TAUS)
    args = parser.parse_args()
    print(machine_summary(), flush=True)
    layout = open_dataset(args.data)
    info = layout.info
    train = scan_split(layout.split("train"), info, keep=False)
    log_prior = torch.from_numpy(train.pixels[:-1] / train.pixels[:-1].sum()).float().log()
    seg = fcnseg.load(args.checkpoint, device="cpu", backend="torch")
    c = info.num_classes
    confusions = {tau: torch.zeros(c * c, dtype=torch.int64) for tau in args.tau}
    t0 = time.perf_counter()
    samples = list(layout.split(args.split))
    for sample in samples:
        pair = decode_pair(sample, info)
        logp = torch.from_numpy(seg.probabilities(pair.image)).clamp_min(1e-8).log()
        mask = torch.from_numpy(pair.mask).long()
        valid = mask < c
        for tau, cm in confusions.items():
            labels = (logp - tau * log_prior[:, None, None]).argmax(0)
            cm += torch.bincount(mask[valid] * c + labels[valid], minlength=c * c)
    print(f"{len(samples)} images of {args.split} in {time.perf_counter() - t0:.0f}s")
    rows = []
    for tau, cm in confusions.items():
        cm = cm.reshape(c, c).double()
        tp = cm.diag()
        iu = (tp / (cm.sum(0) + cm.sum(1) - tp)).numpy()
        row = {"tau": f"{tau:g}", "mean IU": f"{np.nanmean(iu):.4f}"}
        row.update({name: f"{v:.3f}" for name, v in zip(info.class_names, iu, strict=True)})
        rows.append(row)
    print(table(rows, list(rows[0])))
    print(machine_summary(load_only=True))


if __name__ == "__main__":
    main()
