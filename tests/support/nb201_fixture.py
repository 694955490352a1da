#!/usr/bin/env python3
"""Small benchmark files in the official NAS-Bench-201 / NATS-Bench formats, for testing the importer
(src/benchmark/nb201_import.py) without the multi-gigabyte originals.

Owned by the tests of `pwsnas benchmark import`. The files are built with the API packages' own
classes (ResultsCount -> ArchResults -> ArchResults.state_dict()) in the dict layout their
constructors load, saved the way the official files are (torch.save for the .pth, the API's
pickle_save for NATS-Bench), and then loaded back with the official constructor
(nas_201_api.NASBench201API(path) / nats_bench.create(path, "tss", ...)), so a file this script
writes is one the official API accepts, not a look-alike.

    python3 nb201_fixture.py --format nb201-v1_0|nb201-v1_1|nats-tss|nats-tss-simple --out PATH
                             [--ops OP,OP] [--hole] [--pth zip|legacy]

  nb201-v1_0       PATH is a .pth like NAS-Bench-201-v1_0-e61699.pth: 200 epochs for all four data
                   sets, and (as in the real v1_0) a 12-epoch schedule for CIFAR-10-valid only;
                   saved in torch's legacy (pre-1.6, non-zip) layout, as the 2020 files are.
  nb201-v1_1       PATH is a .pth like NAS-Bench-201-v1_1-096897.pth: 12 and 200 epochs, all data
                   sets; saved in torch's zip layout. (--pth overrides either layout.)
  nats-tss         PATH is a one-file NATS-Bench topology benchmark (NATS-tss-v1_0-3ffb9.pickle.pbz2);
                   ".pbz2" is added when PATH does not end with it.
  nats-tss-simple  PATH is a folder like NATS-tss-v1_0-3ffb9-simple: meta.pickle.pbz2 and one
                   NNNNNN.pickle.pbz2 per cell.

Cells: every 4-node NAS-Bench-201 cell over --ops (default nor_conv_3x3,skip_connect: 2^6 = 64
cells), so the imported table is complete for that op set and pwsnas's table reader accepts it.
Indices are a fixed permutation of 0..N-1 (not the enumeration order), so "sorted by index" is
tested. Each cell has 1-3 trials (seeds 777, 888, 999) at 200 epochs and 1 (CIFAR-10-valid: 2) at
12 epochs, every accuracy a 2-decimal number that differs per cell, data set, split, schedule and
seed, and the per-epoch curves reach it only at the last epoch. --hole removes ImageNet16-120 from
the 200-epoch results of the cell with the highest index (its two @200 ImageNet columns are blank).

Prints one JSON line: {"format", "out", "rows", "columns": [the columns the importer must write],
"cells": [{"index", "arch", "values": {column: expected value or null}}], "loaded_with": "..."};
an expected value is the mean over the cell's trials rounded to 6 decimals, what the importer writes.
Exit code 2 with one line on stderr for a bad argument or a missing package.
"""

import argparse
import collections
import itertools
import json
import math
import os
import sys

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
SEEDS = (777, 888, 999)
# The evaluation sets each data set has in the official files.
EVAL_SETS = {
    "cifar10-valid": ("x-valid", "ori-test"),
    "cifar10": ("ori-test",),
    "cifar100": ("x-valid", "x-test", "ori-test"),
    "ImageNet16-120": ("x-valid", "x-test", "ori-test"),
}
CLASSES = {"cifar10-valid": 10, "cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}
# (column's data-set-split name) -> (data set, evaluation set), as the importer maps them.
COLUMNS = (
    ("cifar10-test", "cifar10", "ori-test"),
    ("cifar10-valid", "cifar10-valid", "x-valid"),
    ("cifar100-valid", "cifar100", "x-valid"),
    ("cifar100-test", "cifar100", "x-test"),
    ("ImageNet16-120-valid", "ImageNet16-120", "x-valid"),
    ("ImageNet16-120-test", "ImageNet16-120", "x-test"),
)
BASE = {
    ("cifar10-valid", "x-valid"): 80.0, ("cifar10-valid", "ori-test"): 79.0,
    ("cifar10", "ori-test"): 85.0,
    ("cifar100", "x-valid"): 55.0, ("cifar100", "x-test"): 55.5, ("cifar100", "ori-test"): 55.2,
    ("ImageNet16-120", "x-valid"): 25.0, ("ImageNet16-120", "x-test"): 25.5, ("ImageNet16-120", "ori-test"): 25.2,
}
FORMATS = ("nb201-v1_0", "nb201-v1_1", "nats-tss", "nats-tss-simple")


class Fault(Exception):
    pass


def need(module, pip):
    try:
        return __import__(module)
    except ImportError as e:
        raise Fault("cannot import %s (%s): install the pip package %s and put it on PYTHONPATH" % (module, e, pip))


def cells_over(ops):
    """Every 4-node cell over `ops`, in a fixed order, as NAS-Bench-201 strings."""
    out = []
    for a in itertools.product(ops, repeat=1):
        for b in itertools.product(ops, repeat=2):
            for c in itertools.product(ops, repeat=3):
                out.append("+".join("|" + "|".join("%s~%d" % (op, j) for j, op in enumerate(n)) + "|" for n in (a, b, c)))
    return out


def permutation(n):
    """A fixed permutation of 0..n-1 that is not the identity: j -> (m*j + 5) mod n, m coprime to n."""
    m = 37
    while math.gcd(m, n) != 1:
        m += 2
    return [(m * j + 5) % n for j in range(n)]


def accuracy(index, dataset, evalset, hp, seed):
    salt = sum(map(ord, dataset + evalset))
    wiggle = ((index * 7919 + seed * 31 + salt * 13 + int(hp) * 3) % 1000) / 100.0
    return round(BASE[(dataset, evalset)] - (15.0 if hp == "12" else 0.0) + wiggle, 2)


def trials(index, dataset, hp):
    if hp == "12":
        return SEEDS[:2] if dataset == "cifar10-valid" else SEEDS[:1]
    return SEEDS[: 1 + index % 3]


def results_count(mod, index, arch, dataset, hp, seed):
    """One trial, built the way the benchmark's own code builds it."""
    epochs = int(hp)
    config = {"name": "infer.tiny", "C": 16, "channel": 16, "N": 5, "num_cells": 5, "arch_str": arch,
              "class_num": CLASSES[dataset]}
    train_acc = collections.OrderedDict((e, min(99.0, 30.0 + e * 60.0 / epochs)) for e in range(epochs))
    train_loss = collections.OrderedDict((e, 2.0 / (e + 1)) for e in range(epochs))
    rc = mod.ResultsCount(dataset, None, train_acc, train_loss, 0.8 + index * 0.001, 80.0 + index * 0.1,
                          config, seed, epochs, [0.012])
    rc.update_train_info(train_acc, train_acc, train_loss, collections.OrderedDict((e, 7.5) for e in range(epochs)))
    accs, losses, times = {}, {}, {}
    for evalset in EVAL_SETS[dataset]:
        final = accuracy(index, dataset, evalset, hp, seed)
        for e in range(epochs):
            key = "%s@%d" % (evalset, e)
            accs[key] = round(final - (epochs - 1 - e) * 0.1, 2)  # the final value only at the last epoch
            losses[key] = 1.0 / (e + 1)
            times[key] = 0.5
    rc.update_eval(accs, losses, times)
    return rc


def arch_results(mod, index, arch, hp, datasets):
    ar = mod.ArchResults(index, arch)
    for dataset in datasets:
        for seed in trials(index, dataset, hp):
            ar.update(dataset, seed, results_count(mod, index, arch, dataset, hp, seed))
    return ar


def build(fmt, ops, hole):
    """(archs by index, {index: {hp: [data sets]}}) for the format."""
    enum = cells_over(ops)
    perm = permutation(len(enum))
    archs = [None] * len(enum)
    for j, arch in enumerate(enum):
        archs[perm[j]] = arch
    all_sets = list(EVAL_SETS)
    layout = {}
    for index in range(len(archs)):
        at12 = ["cifar10-valid"] if fmt == "nb201-v1_0" else list(all_sets)
        at200 = list(all_sets)
        if hole and index == len(archs) - 1:
            at200.remove("ImageNet16-120")
        layout[index] = {"12": at12, "200": at200}
    return archs, layout


def expected(archs, layout):
    cells, present = [], set()
    for index, arch in enumerate(archs):
        values = {}
        for hp in ("12", "200"):
            for name, dataset, evalset in COLUMNS:
                column = "%s@%s" % (name, hp)
                if dataset in layout[index][hp]:
                    accs = [accuracy(index, dataset, evalset, hp, s) for s in trials(index, dataset, hp)]
                    values[column] = round(sum(accs) / len(accs), 6)
                    present.add(column)
                else:
                    values[column] = None
        cells.append({"index": index, "arch": arch, "values": values})
    columns = ["%s@%s" % (name, hp) for hp in ("12", "200") for name, _, _ in COLUMNS if "%s@%s" % (name, hp) in present]
    for c in cells:
        c["values"] = {k: v for k, v in c["values"].items() if k in columns}
    return cells, columns


def write_nb201(fmt, out, archs, layout, pth):
    torch = need("torch", "torch")
    api = need("nas_201_api", "nas-bench-201")
    from nas_201_api import api_utils as mod

    arch2infos = collections.OrderedDict()
    for index in reversed(range(len(archs))):  # not in index order, as a dict need not be
        arch2infos[index] = {
            "less": arch_results(mod, index, archs[index], "12", layout[index]["12"]).state_dict(),
            "full": arch_results(mod, index, archs[index], "200", layout[index]["200"]).state_dict(),
        }
    data = {"meta_archs": list(archs), "arch2infos": arch2infos, "evaluated_indexes": set(range(len(archs)))}
    legacy = (pth == "legacy") if pth else fmt == "nb201-v1_0"
    torch.save(data, out, _use_new_zipfile_serialization=not legacy)
    loaded = api.NASBench201API(out, verbose=False)  # the proof: the official constructor reads it
    return loaded, "nas_201_api.NASBench201API (%s .pth)" % ("legacy" if legacy else "zip")


def write_nats(fmt, out, archs, layout):
    nats = need("nats_bench", "nats_bench")
    from nats_bench import api_utils as mod

    def per_cell(index):
        return {hp: arch_results(mod, index, archs[index], hp, layout[index][hp]).state_dict() for hp in ("12", "200")}

    if fmt == "nats-tss":
        if not out.endswith(".pbz2"):
            out += ".pbz2"
        data = {"meta_archs": list(archs), "arch2infos": {i: per_cell(i) for i in range(len(archs))},
                "evaluated_indexes": list(range(len(archs)))}
        nats.pickle_save(data, out[: -len(".pbz2")])  # pickle_save appends .pbz2
        loaded = nats.create(out, "tss", fast_mode=False, verbose=False)
    else:
        os.makedirs(out, exist_ok=True)
        nats.pickle_save({"meta_archs": list(archs)}, os.path.join(out, "meta.pickle"))
        for i in range(len(archs)):
            nats.pickle_save(per_cell(i), os.path.join(out, "%06d.pickle" % i))
        loaded = nats.create(out, "tss", fast_mode=True, verbose=False)
    return out, loaded, "nats_bench.create(path, 'tss', fast_mode=%s)" % (fmt != "nats-tss")


def run(argv):
    p = argparse.ArgumentParser(description="NAS-Bench-201 / NATS-Bench test files in the official formats")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True)
    p.add_argument("--ops", default="nor_conv_3x3,skip_connect", help="comma-separated NAS-Bench-201 ops")
    p.add_argument("--hole", action="store_true", help="drop ImageNet16-120@200 from the last cell")
    p.add_argument("--pth", choices=("zip", "legacy"), help="torch.save layout (default: legacy for v1_0, zip for v1_1)")
    a = p.parse_args(argv)
    ops = [o for o in a.ops.split(",") if o]
    bad = [o for o in ops if o not in OPS] or (["(none given)"] if not ops else [])
    if bad or len(set(ops)) != len(ops):
        raise Fault("--ops %s: give distinct ops among %s" % (a.ops, ", ".join(OPS)))
    ops = [o for o in OPS if o in ops]  # NAS-Bench-201's op order
    archs, layout = build(a.format, ops, a.hole)
    cells, columns = expected(archs, layout)
    out = a.out
    import contextlib

    with contextlib.redirect_stdout(sys.stderr):
        if a.format.startswith("nb201"):
            loaded, how = write_nb201(a.format, out, archs, layout, a.pth)
        else:
            out, loaded, how = write_nats(a.format, out, archs, layout)
        # The API must see what was put in: every cell, and one value through its own query.
        probe = cells[-1]
        info = loaded.get_more_info(probe["index"], "cifar10", hp="200", is_random=False)
        got, want = round(float(info["test-accuracy"]), 6), probe["values"]["cifar10-test@200"]
        if len(loaded) != len(archs) or got != want:
            raise Fault("self-check failed: the API reads %d cells and %r where %d and %r were written"
                        % (len(loaded), got, len(archs), want))
    print(json.dumps({"format": a.format, "out": os.path.abspath(out), "rows": len(cells), "columns": columns,
                      "cells": cells, "loaded_with": how}))


def main():
    try:
        run(sys.argv[1:])
    except Fault as f:
        print("[nb201-fixture] error: %s" % f, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
