"""The reference for `pwsnas bench train-step`: the same NAS-Bench-201 supernet training step in
PyTorch eager, on the same libtorch (the torch==2.11.0 wheel that `cargo xtask setup` installs).

Same network (stem conv+BN, 3 stages of N cells with ResNet reductions, ReLU-Conv-BN ops, 3x3 average
pooling without padding counted, zero op), same step (the same fixed sequence of single-path children as `pwsnas bench train-step`, cross-entropy,
backward, gradient clipping at 5, SGD momentum 0.9 Nesterov weight decay 5e-4 over the sampled
child's parameters only), random data already on the device.

    PYTHONPATH=$HOME/.cache/pwsnas/deps/torch-2.11.0 python3 benches/pytorch_train_step.py --device cpu
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


class ReLUConvBN(nn.Module):
    def __init__(self, c_in, c_out, k, stride):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        return self.bn(self.conv(F.relu(x)))


class Edge(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ops = nn.ModuleDict({"nor_conv_1x1": ReLUConvBN(c, c, 1, 1), "nor_conv_3x3": ReLUConvBN(c, c, 3, 1)})

    def forward(self, x, op):
        if op == "none":
            return None
        if op == "skip_connect":
            return x
        if op == "avg_pool_3x3":
            return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        return self.ops[op](x)


class Cell(nn.Module):
    def __init__(self, c, nodes, edge=Edge):
        super().__init__()
        self.nodes = nodes
        self.edges = nn.ModuleList([edge(c) for j in range(1, nodes) for _ in range(j)])

    def forward(self, x, arch):
        states = [x]
        k = 0
        for j in range(1, self.nodes):
            total = None
            for i in range(j):
                y = self.edges[k](states[i], arch[k])
                k += 1
                if y is not None:
                    total = y if total is None else total + y
            states.append(torch.zeros_like(x) if total is None else total)
        return states[-1]


class Reduction(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.down = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x):
        return self.down(F.avg_pool2d(x, 2, 2)) + self.conv_b(self.conv_a(x))


class Supernet(nn.Module):
    """`arch` in `forward` holds what each edge's `forward` takes: an op name for `Edge`."""

    def __init__(self, c, n, nodes, classes, c_in, edge=Edge):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(c_in, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        blocks = []
        for s, cs in enumerate([c, 2 * c, 4 * c]):
            if s > 0:
                blocks.append(Reduction(cs // 2, cs))
            blocks += [Cell(cs, nodes, edge) for _ in range(n)]
        self.blocks = nn.ModuleList(blocks)
        self.lastact = nn.BatchNorm2d(4 * c)
        self.classifier = nn.Linear(4 * c, classes)

    def forward(self, x, arch):
        x = self.stem(x)
        for b in self.blocks:
            x = b(x, arch) if isinstance(b, Cell) else b(x)
        x = F.relu(self.lastact(x))
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


def step_args():
    """The flags of a step benchmark, as `pwsnas bench train-step|darts-step` takes them."""
    p = argparse.ArgumentParser()
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--cells", type=int, default=5)
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--input-channels", type=int, default=3)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cpu")
    return p.parse_args()


def main():
    a = step_args()
    dev = torch.device(a.device)
    torch.manual_seed(0)
    net = Supernet(a.channels, a.cells, a.nodes, a.classes, a.input_channels).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(a.batch_size, a.input_channels, a.input_size, a.input_size, device=dev)
    y = torch.randint(a.classes, (a.batch_size,), device=dev)
    edges = a.nodes * (a.nodes - 1) // 2
    size = len(OPS) ** edges
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        # The same children as `pwsnas bench train-step`: index (7919·step) mod size in base 5.
        index = (7919 * step) % size
        arch = []
        for _ in range(edges):
            arch.append(OPS[index % len(OPS)])
            index //= len(OPS)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x, arch), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([q for q in net.parameters() if q.grad is not None], 5.0)
        opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    secs = time.perf_counter() - start
    print(
        f"pytorch train-step nb201 C={a.channels} N={a.cells}: {a.steps * a.batch_size / secs:.1f} images/s "
        f"({secs * 1e3 / a.steps:.2f} ms/step, batch {a.batch_size}, {dev}, {torch.get_num_threads()} threads, torch {torch.__version__})"
    )


if __name__ == "__main__":
    main()
