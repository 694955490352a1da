#!/usr/bin/env python3
"""Takes the `pwsnas` angle composition apart on nb201 supernets (docs/nb201.md, "Taking pwsnas
apart"): for each run, the angle of every 4-node child in four compositions — `ops`, `ops` plus
the identity kernels of `skip_connect`, `ops` plus each conv's BatchNorm gamma and beta, and both
(`pwsnas`) — computed from the run's `supernet/W0.safetensors` and `supernet/last.safetensors` by
the rules of docs/method.md, and Kendall's tau-b of each against a benchmark column. Analysis only:
pwsnas itself computes the three compositions it offers in Rust (models/src/vector.rs); this script
checks which of `pwsnas`'s two additions moves the ranking, which pwsnas has no setting for.

    python3 examples/nb201/compositions.py TABLE.csv RUN [RUN ...]

TABLE.csv: `index,arch,VALUE` (e.g. nb201-cifar10-12e.csv, docs/nb201.md). Needs numpy and scipy
(`pip install --target DIR scipy`, then PYTHONPATH=DIR). Prints one JSON line per run and variant.
"""
import itertools
import json
import struct
import sys

import numpy as np
from scipy.stats import kendalltau


def load_safetensors(path):
    """The tensors of a safetensors file as numpy arrays (its header is JSON: dtype, shape, offsets)."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    kinds = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "U8": np.uint8}
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        start, end = v["data_offsets"]
        out[name] = np.frombuffer(data[start:end], dtype=kinds[v["dtype"]]).reshape(v["shape"])
    return out

OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
PATHS = [[3], [0, 4], [1, 5], [0, 2, 5]]
EDGES = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]

def arch_str(ops):
    k = 0; groups = []
    for j in range(1, 4):
        g = "|"
        for i in range(j):
            g += f"{ops[k]}~{i}|"; k += 1
        groups.append(g)
    return "+".join(groups)

def load_truth(path):
    t = {}
    for line in open(path).read().splitlines()[1:]:
        i, a, v = line.split(",")
        t[a] = float(v)
    return t

def parts(w0, wt, cell, e, op, bn):
    """(dot, n0, nt) of op's conv (and with bn its gamma, beta)."""
    keys = [f"cells.{cell}.e{e}.{op}.c0.conv.weight"]
    if bn:
        keys += [f"cells.{cell}.e{e}.{op}.c0.bn.weight", f"cells.{cell}.e{e}.{op}.c0.bn.bias"]
    d = n0 = nt = 0.0
    for k in keys:
        a = w0[k].astype(np.float64).ravel(); b = wt[k].astype(np.float64).ravel()
        d += a @ b; n0 += a @ a; nt += b @ b
    return d, n0, nt

def angles(run, w0name, variant):
    w0 = load_safetensors(f"{run}/supernet/{w0name}"); wt = load_safetensors(f"{run}/supernet/last.safetensors")
    cells = sorted({int(k.split(".")[1]) for k in w0 if k.startswith("cells.")})
    chans = {c: w0[f"cells.{c}.e0.nor_conv_3x3.c0.conv.weight"].shape[0] for c in cells}
    ident, bn = variant
    # per cell, edge, op: (dot, n0, nt)
    table = {}
    for c in cells:
        C = chans[c]
        for e in range(6):
            for op in OPS:
                if op in ("nor_conv_1x1", "nor_conv_3x3"):
                    table[c, e, op] = parts(w0, wt, c, e, op, bn)
                elif op == "avg_pool_3x3":
                    v = C * 9 / 81.0; table[c, e, op] = (v, v, v)
                elif op == "skip_connect":
                    v = float(C) if ident else 0.0; table[c, e, op] = (v, v, v)
                else:
                    table[c, e, op] = None
    out = {}
    for ops in itertools.product(OPS, repeat=6):
        d = n0 = nt = 0.0
        for c in cells:
            for p in PATHS:
                if any(ops[e] == "none" for e in p):
                    continue
                for e in p:
                    x = table[c, e, ops[e]]
                    d += x[0]; n0 += x[1]; nt += x[2]
        if n0 == 0:
            out[arch_str(ops)] = -1.0 if ident else 0.0
        else:
            out[arch_str(ops)] = float(np.arccos(np.clip(d / np.sqrt(n0 * nt), -1, 1)))
    return out

truth = load_truth(sys.argv[1])
variants = {"ops": (False, False), "ops + identity kernels": (True, False), "ops + BN γ, β": (False, True), "pwsnas (both)": (True, True)}
for run in sys.argv[2:]:
    for name, v in variants.items():
        a = angles(run, "W0.safetensors", v)
        keys = sorted(a)
        tau = kendalltau([a[k] for k in keys], [truth[k] for k in keys]).statistic
        print(json.dumps({"run": run.split("/")[-1], "variant": name, "arch_tau": round(tau, 3)}), flush=True)
