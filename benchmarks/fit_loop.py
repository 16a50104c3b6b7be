"""Fit-loop throughput: the source's PyTorch loop against dlx's, in one process, on the same data.

    python benchmarks/fit_loop.py                                   # CPU, 60k samples, batch 64 and 512
    python benchmarks/fit_loop.py --device cuda --epochs 3          # on a GPU (benchmarks/gpu.sh)

Reference: the source material's loop - a DataLoader (shuffle, no workers) over an in-memory
TensorDataset of float images, `.to(device)` per batch, zero_grad/forward/backward/step and
`running_loss += loss.item()` - training the source's CNN as the source writes it (an
nn.Sequential: conv32-ReLU-pool-conv64-ReLU-pool-fc128-fc10, the network of dlx's `model=cnn`)
with Adam lr 1e-3. dlx: `dlx.run.train(cfg, runtime)` on a config composed as `dlx train` composes it
(dataset=mnist read from IDX files, tracking on, checkpoints on), same model, optimizer, batch
size, threads and training samples (dataset.val_fraction=0: no validation pass to time).
Each side runs --warmup untimed epochs, then --epochs timed ones; samples/s = training samples per
second of an epoch (dlx's: from one epoch's start to the next's, its per-epoch work included).
Target (reported, not asserted): dlx >= 2x the reference on a 2-core CPU at batch 64.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common


def source_cnn():
    """The source's MNIST CNN, written as the source writes it (dlx's `model=cnn` is this network)."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def reference(x, y, model, batch_size: int, epochs: int, warmup: int, device) -> list[float]:
    """The source's loop; returns the seconds of each timed epoch."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for epoch in range(warmup + epochs):
        start = time.perf_counter()
        model.train()
        running_loss = 0.0
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            outputs = model(images)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        if epoch >= warmup:
            times.append(time.perf_counter() - start)
    return times


def dlx_fit(root: Path, work: Path, batch_size: int, epochs: int, warmup: int, device: str,
            overrides: list[str] = ()):
    """dlx's fit loop through `dlx.run.train`; returns (seconds of each timed epoch, Result)."""
    from dlx.run import train
    from dlx.training.callbacks import Callback

    class Clock(Callback):  # epoch k lasts from its start to epoch k+1's start (or its own end)
        def __init__(self):
            self.starts, self.end = [], None

        def on_epoch_start(self, epoch, epochs, steps):
            self.starts.append(time.perf_counter())

        def on_epoch_end(self, epoch, metrics):
            self.end = time.perf_counter()

    cfg, runtime = common.compose([
        "model=cnn", "optimizer=adam", "optimizer.lr=0.001", "dataset=mnist",
        f"dataset.root={root}", "dataset.val_fraction=0", f"dataset.batch_size={batch_size}",
        f"trainer.epochs={warmup + epochs}", f"trainer.device={device}", "trainer.seed=0",
        f"tracking.uri=sqlite:///{work / 'mlflow.db'}", "tracking.log_model=false", *overrides,
    ], work / f"run_bs{batch_size}")
    clock = Clock()
    result = train(cfg, runtime, callbacks=[clock])
    bounds = clock.starts + [clock.end]
    return [b - a for a, b in itertools.pairwise(bounds)][warmup:], result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=60_000, help="training samples (MNIST: 60000)")
    p.add_argument("--batch-sizes", default="64,512", help="comma-separated")
    p.add_argument("--epochs", type=int, default=1, help="timed epochs per run")
    p.add_argument("--warmup", type=int, default=1, help="untimed epochs before them")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=0, help="torch threads for both; 0: torch's default")
    p.add_argument("--no-record", action="store_true", help="print only; leave RESULTS.md alone")
    p.add_argument("overrides", nargs="*", help="extra dlx overrides, e.g. trainer.channels_last=true")
    args = p.parse_args()

    import torch

    from dlx import models
    from dlx.data.bundle import Spec

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="dlx-bench-") as tmp:
        work = Path(tmp)
        root = common.write_mnist(work / "data", args.samples, max(1000, args.samples // 6))
        x, y = common.mnist_like(args.samples, 0)  # the very images dlx reads from the files
        x = torch.from_numpy(x).unsqueeze(1).float().div(255)  # the source's ToTensor(): [0, 1]
        y = torch.from_numpy(y).long()
        model_cfg = common.compose(["model=cnn"], work / "compose")[0].model
        n_params = sum(p.numel() for p in models.build(model_cfg, Spec("multiclass", (1, 28, 28), 10))
                       .parameters())
        assert n_params == sum(p.numel() for p in source_cnn().parameters()), "not the same network"
        for bs in sizes:
            torch.manual_seed(0)
            model = source_cnn().to(device)
            ref = reference(x, y, model, bs, args.epochs, args.warmup, device)
            ours, result = dlx_fit(root, work, bs, args.epochs, args.warmup, args.device,
                                   args.overrides)
            r, d = args.samples / common.median(ref), args.samples / common.median(ours)
            rows.append([bs, f"{r:,.0f}", f"{d:,.0f}", f"x{d / r:.2f}",
                         f"{result.test['test_accuracy']:.3f}"])
            print(f"batch {bs}: reference {r:,.0f} samples/s, dlx {d:,.0f} samples/s, "
                  f"ratio x{d / r:.2f}", flush=True)

    text = common.table(["batch", "reference samples/s", "dlx samples/s", "dlx / reference",
                         "dlx test acc"], rows)
    print(text)
    if not args.no_record:
        note = (f"{args.samples:,} MNIST-shaped samples, {args.warmup} warm-up + {args.epochs} "
                f"timed epoch(s), model=cnn, Adam lr 1e-3, tracking on. "
                f"Command: `{' '.join(['python', 'benchmarks/fit_loop.py', *sys.argv[1:]])}`. "
                "Target: dlx >= x2 the reference at batch 64 on a 2-core CPU.")
        title = ", ".join([device.type, *args.overrides])
        common.record(f"Fit loop ({title})", f"{common.header(args.device)}\n\n{note}\n\n{text}")


if __name__ == "__main__":
    main()
