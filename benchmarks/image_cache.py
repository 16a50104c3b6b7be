"""The data step of an image folder: decoding JPEGs against reading the decoded cache.

    python benchmarks/image_cache.py                    # 20,000 64x64 JPEGs, 10 classes
    python benchmarks/image_cache.py --images 5000 --no-record

Writes a folder of JPEGs (a coloured square on noise, its corner the class), then times
`dlx.data.registry.load` on it (dataset=image_folder, RGB at 64x64) in a new process each time:
without the cache (dataset.cache=false: every image decoded, a worker process per core), the first
cached run (decoded once and stored), and the second (read back from the cache), plus the second
with dataset.in_memory=false (each split memory-mapped from its own file). Target (reported, not
asserted): the second run's data step under 1 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

STEP = """
import sys, time
from dlx.config import compose
from dlx.data import registry
import torchvision.transforms.v2  # imported by every image run: not the data step's cost
cfg, _ = compose(sys.argv[1:], sys.argv[1].split("=", 1)[1] + "-out")
start = time.perf_counter()
registry.load(cfg.dataset)
print(time.perf_counter() - start)
"""


def write_folder(root: Path, n: int) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        c = i % 10
        folder = root / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        img = rng.integers(0, 80, (64, 64, 3), dtype=np.uint8)
        img[(c % 4) * 14:(c % 4) * 14 + 16, (c // 4) * 20:(c // 4) * 20 + 16, c % 3] += 150
        Image.fromarray(img).save(folder / f"{i:05d}.jpg", quality=90)
    return root


def step(root: Path, cache: Path, *overrides: str) -> float:
    argv = [f"dataset.root={root}", "dataset=image_folder", "dataset.grayscale=false",
            "dataset.size=[64,64]", f"dataset.cache_dir={cache}", *overrides]
    out = subprocess.run([sys.executable, "-c", STEP, *argv], capture_output=True, text=True,
                         check=True, cwd=root.parent)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=20_000)
    p.add_argument("--no-record", action="store_true", help="print only; leave RESULTS.md alone")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="dlx-images-") as tmp:
        root = write_folder(Path(tmp) / "images", args.images)
        cache = Path(tmp) / "cache"
        mapped = "dataset.in_memory=false"
        rows = [["no cache (dataset.cache=false)", f"{step(root, cache, 'dataset.cache=false'):.2f}"],
                ["first run (decoded, stored)", f"{step(root, cache):.2f}"],
                ["second run (read from the cache)", f"{step(root, cache):.2f}"],
                ["second run, dataset.in_memory=false", f"{step(root, cache, mapped):.2f}"],
                ["third run, dataset.in_memory=false", f"{step(root, cache, mapped):.2f}"]]
    text = common.table(["data step", "seconds"], rows)
    print(text)
    if not args.no_record:
        note = (f"{args.images:,} JPEGs of 64x64 RGB, 10 classes; `dlx.data.registry.load` timed in a "
                "new process each time (imports excluded), one after the other. Benchmark: "
                f"`python benchmarks/image_cache.py {' '.join(sys.argv[1:])}`. Target: the second "
                "run's data step under 1 s.")
        common.record("Image folder: decoding vs the cache", f"{common.header()}\n\n{note}\n\n{text}")


if __name__ == "__main__":
    main()
