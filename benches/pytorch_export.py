"""The reference for `pwsnas bench export`: the same child network written in PyTorch eager the way a
user would write it, loaded with the same weights, exported with `torch.onnx.export` (the TorchScript
exporter, `dynamo=False`, opset 17, dynamic batch), on the torch==2.11.0 wheel that `cargo xtask setup`
installs. `pwsnas bench export` runs it and then times this model against pwsnas's own export in ONNX
Runtime.

Same network as pwsnas builds (`nb201`: stem conv+BN, three stages of cells with ResNet reductions,
ReLU-Conv-BN ops, 3x3 average pooling without padding counted, `none` edges left out and a node without
inputs as `zeros_like`, BN-ReLU head; `mobile`: stem conv+BN+ReLU6, MBConv layers with residuals where
shapes allow, 1x1 head conv+BN+ReLU6; `darts`: DARTS's `NetworkCIFAR` of a genotype, `--arch` being its
`Genotype(normal=[...], ...)` text, without auxiliary head and drop-path, pools bare as in a stand-alone
child), with its variables named as pwsnas names them, so the weights pwsnas saves (safetensors, read
here without the safetensors package) load one to one; every variable must be used and every PyTorch
parameter set.

    PYTHONPATH=$HOME/.cache/pwsnas/deps/torch-2.11.0:.deps/onnx-site python3 benches/pytorch_export.py \
        --space nb201 --params '{"nodes":4,...}' --arch '|nor_conv_3x3~0|+|...|' \
        --weights child.safetensors --out torch.onnx
"""
import argparse
import ast
import json
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_safetensors(path):
    """The tensors of a safetensors file (8-byte header length, JSON header, raw little-endian data)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": np.float32, "F64": np.float64, "I64": np.int64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(array.copy()).float()
    return out


class ConvBn(nn.Module):
    """`pre` activation, conv (no bias), BN, `post` activation: pwsnas's ConvBn."""

    def __init__(self, c_in, c_out, k, stride, groups=1, pre=None, post=None):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.pre, self.post = pre, post

    def forward(self, x):
        if self.pre == "relu":
            x = F.relu(x)
        x = self.bn(self.conv(x))
        if self.post == "relu6":
            x = F.relu6(x)
        return x


# ---- nb201 ---------------------------------------------------------------------------------------


class Edge(nn.Module):
    def __init__(self, op, c):
        super().__init__()
        self.op = op
        ops = {}
        if op == "nor_conv_1x1":
            ops = {"c0": ConvBn(c, c, 1, 1, pre="relu")}
        elif op == "nor_conv_3x3":
            ops = {"c0": ConvBn(c, c, 3, 1, pre="relu")}
        # Named like pwsnas's variables: `e{edge}.{op}.c0.conv.weight`.
        self.mods = nn.ModuleDict({op: nn.ModuleDict(ops)})

    def forward(self, x):
        if self.op == "none":
            return None
        if self.op == "skip_connect":
            return x
        if self.op == "avg_pool_3x3":
            return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        return self.mods[self.op]["c0"](x)


class Cell(nn.Module):
    def __init__(self, ops, c, nodes):
        super().__init__()
        self.nodes = nodes
        self.edges = nn.ModuleDict({f"e{e}": Edge(op, c) for e, op in enumerate(ops)})

    def forward(self, x):
        states = [x]
        k = 0
        for j in range(1, self.nodes):
            total = None
            for i in range(j):
                y = self.edges[f"e{k}"](states[i])
                k += 1
                if y is not None:
                    total = y if total is None else total + y
            states.append(torch.zeros_like(x) if total is None else total)
        return states[-1]


class Reduction(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv_a = ConvBn(c_in, c_out, 3, 2, pre="relu")
        self.conv_b = ConvBn(c_out, c_out, 3, 1, pre="relu")
        self.downsample = nn.Module()
        self.downsample.weight = nn.Parameter(torch.empty(c_out, c_in, 1, 1))

    def forward(self, x):
        r = F.conv2d(F.avg_pool2d(x, 2, 2), self.downsample.weight)
        return r + self.conv_b(self.conv_a(x))


class Nb201(nn.Module):
    def __init__(self, p, arch):
        super().__init__()
        ops = parse_nb201(arch, p["nodes"])
        c, n = p["channels"], p["cells_per_stage"]
        self.stem = ConvBn(p["input_channels"], c, 3, 1)
        cells, reductions = [], []
        for s, cs in enumerate([c, 2 * c, 4 * c]):
            if s > 0:
                reductions.append(Reduction(cs // 2, cs))
            cells += [Cell(ops, cs, p["nodes"]) for _ in range(n)]
        self.cells = nn.ModuleList(cells)
        self.reductions = nn.ModuleList(reductions)
        self.lastact = nn.BatchNorm2d(4 * c)
        self.classifier = nn.Linear(4 * c, p["classes"])
        self.n = n

    def forward(self, x):
        x = self.stem(x)
        for k, cell in enumerate(self.cells):
            if k > 0 and k % self.n == 0:
                x = self.reductions[k // self.n - 1](x)
            x = cell(x)
        x = F.relu(self.lastact(x))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def parse_nb201(arch, nodes):
    """`|op~0|+|op~0|op~1|+...` to the list of ops in edge order."""
    ops = []
    for j, part in enumerate(arch.strip().split("+"), start=1):
        for i, tok in enumerate(t for t in part.split("|") if t):
            op, src = tok.rsplit("~", 1)
            assert int(src) == i, f"edge {tok} of node {j}"
            ops.append(op)
    assert len(ops) == nodes * (nodes - 1) // 2, f"{arch} has {len(ops)} edges"
    return ops


# ---- mobile --------------------------------------------------------------------------------------


class MbConv(nn.Module):
    def __init__(self, c_in, c_out, stride, kernel, expand):
        super().__init__()
        hidden = c_in * expand
        self.expand = ConvBn(c_in, hidden, 1, 1, post="relu6") if expand != 1 else None
        self.depthwise = ConvBn(hidden, hidden, kernel, stride, groups=hidden, post="relu6")
        self.project = ConvBn(hidden, c_out, 1, 1)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        h = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(h))
        return y + x if self.residual else y


class Layer(nn.Module):
    def __init__(self, op, c_in, c_out, stride):
        super().__init__()
        self.op = op
        mods = {}
        if op != "identity":
            k, e = op.removeprefix("mb_k").split("_e")
            mods = {"c0": MbConv(c_in, c_out, stride, int(k), int(e))}
        self.mods = nn.ModuleDict({op: nn.ModuleDict(mods)})

    def forward(self, x):
        return x if self.op == "identity" else self.mods[self.op]["c0"](x)


def scaled(p, c):
    return max(int(round(c * p["width"] / 8.0)) * 8, 8)


class Mobile(nn.Module):
    def __init__(self, p, arch):
        super().__init__()
        ops = [o.strip() for o in arch.split(",")]
        c = scaled(p, p["stem_channels"])
        self.stem = ConvBn(p["input_channels"], c, 3, p["stem_stride"], post="relu6")
        layers = []
        for stage in p["stages"]:
            c_out = scaled(p, stage["channels"])
            for r in range(stage["repeats"]):
                layers.append(Layer(ops[len(layers)], c, c_out, stage["stride"] if r == 0 else 1))
                c = c_out
        assert len(layers) == len(ops), f"{arch}: {len(ops)} ops for {len(layers)} layers"
        self.layers = nn.ModuleList(layers)
        self.head = ConvBn(c, p["head_channels"], 1, 1, post="relu6")
        self.classifier = nn.Linear(p["head_channels"], p["classes"])

    def forward(self, x):
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        x = self.head(x)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---- darts ---------------------------------------------------------------------------------------


def conv(c_in, c_out, k, stride=1, groups=1, dilation=1):
    """A conv without bias and with "same" padding, as pwsnas's Conv."""
    return nn.Conv2d(c_in, c_out, k, stride, dilation * (k - 1) // 2, dilation, groups, bias=False)


class SepConv(nn.Module):
    """(ReLU, depthwise k×k, pointwise 1×1, BN) twice, the stride on the first depthwise conv."""

    def __init__(self, c, k, stride):
        super().__init__()
        self.dw1, self.pw1, self.bn1 = conv(c, c, k, stride, c), conv(c, c, 1), nn.BatchNorm2d(c)
        self.dw2, self.pw2, self.bn2 = conv(c, c, k, 1, c), conv(c, c, 1), nn.BatchNorm2d(c)

    def forward(self, x):
        x = self.bn1(self.pw1(self.dw1(F.relu(x))))
        return self.bn2(self.pw2(self.dw2(F.relu(x))))


class DilConv(nn.Module):
    """ReLU, depthwise k×k with dilation 2, pointwise 1×1, BN."""

    def __init__(self, c, k, stride):
        super().__init__()
        self.dw, self.pw, self.bn = conv(c, c, k, stride, c, dilation=2), conv(c, c, 1), nn.BatchNorm2d(c)

    def forward(self, x):
        return self.bn(self.pw(self.dw(F.relu(x))))


class FactorizedReduce(nn.Module):
    """ReLU, two 1×1 stride-2 convs to half the channels each (the second on the input shifted by one
    pixel), concatenated, BN."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv_1, self.conv_2 = conv(c_in, c_out // 2, 1, 2), conv(c_in, c_out // 2, 1, 2)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        x = F.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class DartsEdge(nn.Module):
    """One kept edge of a cell; its module named like pwsnas's variables: `{j}<-{i}.{op}.dw1.weight`."""

    def __init__(self, op, c, stride):
        super().__init__()
        self.op, self.stride = op, stride
        mods = {}
        if op.startswith("sep_conv_"):
            mods = {op: SepConv(c, int(op[-1]), stride)}
        elif op.startswith("dil_conv_"):
            mods = {op: DilConv(c, int(op[-1]), stride)}
        elif op == "skip_connect" and stride == 2:
            mods = {op: FactorizedReduce(c, c)}
        elif op not in ("skip_connect", "max_pool_3x3", "avg_pool_3x3"):
            raise SystemExit(f"'{op}' is not a darts op")
        self.mods = nn.ModuleDict(mods)

    def forward(self, x):
        if self.op in self.mods:
            return self.mods[self.op](x)
        if self.op == "skip_connect":
            return x
        if self.op == "max_pool_3x3":
            return F.max_pool2d(x, 3, self.stride, 1)
        # A stand-alone child's pools are bare (DARTS's model.py), no BN after them.
        return F.avg_pool2d(x, 3, self.stride, 1, count_include_pad=False)


class DartsCell(nn.Module):
    def __init__(self, nodes, c_prev_prev, c_prev, c, reduction, reduction_prev):
        super().__init__()
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(c_prev_prev, c)
        else:
            self.preprocess0 = ConvBn(c_prev_prev, c, 1, 1, pre="relu")
        self.preprocess1 = ConvBn(c_prev, c, 1, 1, pre="relu")
        # nodes[n]: the (op, input) pairs of node n + 2; edges named `{j}<-{i}` like pwsnas's.
        self.nodes = [[(op, i) for op, i in node] for node in nodes]
        self.edges = nn.ModuleDict(
            {
                f"{n + 2}<-{i}": DartsEdge(op, c, 2 if reduction and i < 2 else 1)
                for n, node in enumerate(nodes)
                for op, i in node
            }
        )

    def forward(self, s0, s1):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for n, node in enumerate(self.nodes):
            states.append(sum(self.edges[f"{n + 2}<-{i}"](states[i]) for _, i in node))
        return torch.cat(states[2:], dim=1)


def parse_genotype(text):
    """DARTS's `Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...],
    reduce_concat=range(2, 6))` (as pwsnas prints it and the DARTS code writes it) to the nodes of the
    normal and the reduction cell: per node 2..5 its two `(op, input)` pairs."""
    text = text.strip()
    assert text.startswith("Genotype(") and text.endswith(")"), f"not a genotype: {text}"
    call = ast.parse(text, mode="eval").body
    fields = {kw.arg: kw.value for kw in call.keywords}
    out = {}
    for cell in ("normal", "reduce"):
        concat = fields.get(f"{cell}_concat")
        if concat is not None:
            if isinstance(concat, ast.Call):  # range(2, 6)
                concat = list(range(*[ast.literal_eval(a) for a in concat.args]))
            else:
                concat = list(ast.literal_eval(concat))
            assert concat == [2, 3, 4, 5], f"{cell}_concat {concat}: pwsnas concatenates nodes 2..5"
        pairs = ast.literal_eval(fields[cell])
        assert len(pairs) == 8, f"{cell}: {len(pairs)} edges, expected 2 per node"
        nodes = [pairs[2 * n : 2 * n + 2] for n in range(4)]
        for n, node in enumerate(nodes):
            assert all(0 <= i < n + 2 for _, i in node), f"{cell}, node {n + 2}: {node}"
            assert node[0][1] != node[1][1], f"{cell}, node {n + 2}: one input twice"
        out[cell] = nodes
    return out["normal"], out["reduce"]


class Darts(nn.Module):
    """DARTS's `NetworkCIFAR` (model.py) without the auxiliary head and drop-path: stem conv3x3 to 3C +
    BN, `layers` cells with reduction cells at L/3 and 2L/3, global average pooling, linear."""

    def __init__(self, p, arch):
        super().__init__()
        normal, reduce = parse_genotype(arch)
        c, layers = p["channels"], p["layers"]
        stem = 3 * c
        self.stem = ConvBn(p["input_channels"], stem, 3, 1)
        c_prev_prev, c_prev = stem, stem
        reduction_prev = False
        cells = []
        for k in range(layers):
            reduction = k in (layers // 3, 2 * layers // 3)
            if reduction:
                c *= 2
            nodes = reduce if reduction else normal
            cells.append(DartsCell(nodes, c_prev_prev, c_prev, c, reduction, reduction_prev))
            c_prev_prev, c_prev = c_prev, 4 * c
            reduction_prev = reduction
        self.cells = nn.ModuleList(cells)
        self.classifier = nn.Linear(c_prev, p["classes"])

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(s1, 1), 1))


NETWORKS = {"nb201": Nb201, "mobile": Mobile, "darts": Darts}


def pwsnas_name(torch_name):
    """PyTorch's state-dict key to pwsnas's variable name (drops the `edges.` / `mods.` containers)."""
    parts = [q for q in torch_name.split(".") if q not in ("edges", "mods")]
    return ".".join(parts)


def load(net, weights):
    state = net.state_dict()
    used = set()
    for key in state:
        if key.endswith("num_batches_tracked"):
            continue
        name = pwsnas_name(key)
        if name not in weights:
            raise SystemExit(f"the weights have no '{name}' (for PyTorch's {key})")
        if tuple(weights[name].shape) != tuple(state[key].shape):
            raise SystemExit(f"'{name}' has shape {tuple(weights[name].shape)}, expected {tuple(state[key].shape)}")
        state[key] = weights[name]
        used.add(name)
    unused = sorted(set(weights) - used)
    if unused:
        raise SystemExit(f"the PyTorch network does not use these variables: {unused[:5]}")
    net.load_state_dict(state)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--space", required=True, choices=sorted(NETWORKS))
    p.add_argument("--params", required=True, help="the space parameters (JSON)")
    p.add_argument("--arch", required=True)
    p.add_argument("--weights", required=True, help="pwsnas's variables (safetensors)")
    p.add_argument("--out", required=True, help="where to write the ONNX model")
    p.add_argument("--opset", type=int, default=17)
    a = p.parse_args()
    params = json.loads(a.params)
    torch.set_num_threads(1)
    net = NETWORKS[a.space](params, a.arch).eval()
    load(net, read_safetensors(a.weights))
    c, s = params["input_channels"], params["input_size"]
    x = torch.zeros(1, c, s, s)
    with torch.no_grad():
        torch.onnx.export(
            net,
            (x,),
            a.out,
            dynamo=False,
            opset_version=a.opset,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    print(json.dumps({"torch": torch.__version__, "exporter": "torch.onnx.export(dynamo=False)", "opset": a.opset}))


if __name__ == "__main__":
    main()
