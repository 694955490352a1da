"""The reference for `pwsnas bench darts-step`: one DARTS first-order search step (Liu et al., ICLR
2019) on the NAS-Bench-201 supernet in PyTorch eager, on the same libtorch (the torch==2.11.0 wheel
that `cargo xtask setup` installs).

Same network as `benches/pytorch_train_step.py` (whose modules it reuses), each edge the mix of its
five ops weighted by softmax(α) of that edge, α shared by the cells as in DARTS on NAS-Bench-201
(`none` adds nothing). Same step as pwsnas's `search --method darts`: an α step on one batch (the
gradient in α only, `torch.autograd.grad`, as pwsnas computes it; Adam lr 3e-4, betas (0.5, 0.999),
weight decay 1e-3), then a weight step on another batch with softmax(α) held fixed (SGD lr 0.025,
momentum 0.9, weight decay 3e-4, gradient clipping at 5). Random data already on the device.

    PYTHONPATH=$HOME/.cache/pwsnas/deps/torch-2.11.0 python3 benches/pytorch_darts_step.py --device cpu
"""
import time

import torch
import torch.nn.functional as F

from pytorch_train_step import OPS, Edge, Supernet, step_args


class MixedEdge(Edge):
    """An edge whose `forward` takes the weights of its ops (softmax(α) of the edge)."""

    def forward(self, x, weights):
        total = None
        for k, op in enumerate(OPS):
            y = super().forward(x, op)
            if y is None:
                continue
            y = y * weights[k]
            total = y if total is None else total + y
        return total


def main():
    a = step_args()
    dev = torch.device(a.device)
    torch.manual_seed(0)
    net = Supernet(a.channels, a.cells, a.nodes, a.classes, a.input_channels, edge=MixedEdge).to(dev)
    edges = a.nodes * (a.nodes - 1) // 2
    alphas = [(1e-3 * torch.randn(len(OPS), device=dev)).requires_grad_() for _ in range(edges)]
    adam = torch.optim.Adam(alphas, lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    sgd = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)

    def batch():
        x = torch.randn(a.batch_size, a.input_channels, a.input_size, a.input_size, device=dev)
        return x, torch.randint(a.classes, (a.batch_size,), device=dev)

    (xa, ya), (xw, yw) = batch(), batch()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    alpha_secs = weight_secs = 0.0
    for step in range(a.warmup + a.steps):
        sync()
        t = time.perf_counter()
        loss = F.cross_entropy(net(xa, [al.softmax(0) for al in alphas]), ya)
        grads = torch.autograd.grad(loss, alphas)
        for al, g in zip(alphas, grads):
            al.grad = g
        adam.step()
        sync()
        t_alpha = time.perf_counter() - t
        weights = [al.softmax(0).detach() for al in alphas]
        sgd.zero_grad(set_to_none=True)
        F.cross_entropy(net(xw, weights), yw).backward()
        torch.nn.utils.clip_grad_norm_([q for q in net.parameters() if q.grad is not None], 5.0)
        sgd.step()
        sync()
        if step >= a.warmup:
            alpha_secs += t_alpha
            weight_secs += time.perf_counter() - t - t_alpha
    per_step = lambda s: s * 1e3 / a.steps
    print(
        f"pytorch darts-step nb201 C={a.channels} N={a.cells}: {per_step(alpha_secs + weight_secs):.2f} ms/step "
        f"(α step {per_step(alpha_secs):.2f} + weight step {per_step(weight_secs):.2f}, batch {a.batch_size}, {dev}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__})"
    )

if __name__ == "__main__":
    main()
