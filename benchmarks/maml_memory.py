"""Memory and time of a MAML meta-training step against the number of inner steps.

    python benchmarks/maml_memory.py [--device cpu|cuda] [--meta-batch 8] [--steps 1 5 10]
                                     [--ways 5] [--shots 1]

Three ways to differentiate through the inner loop: second order (the graph of every inner
step is kept), second order with checkpointed inner steps (``checkpoint_steps=True``: each
step is recomputed in the backward pass), and first order (no graph through the inner loop).
Conv4 on Omniglot-shaped N-way K-shot episodes with 15 queries per class. On CPU every
configuration runs in a fresh process, which reports its peak resident memory above its
baseline after setup; on CUDA the peak allocated memory of the step. Time: the median of
three steps after a warm-up step.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

import metabook as mb

MODES = {
    "second order": dict(first_order=False),
    "second order, checkpointed": dict(first_order=False, checkpoint_steps=True),
    "first order": dict(first_order=True),
}


def one(mode: str, steps: int, args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    device = mb.pick_device(args.device)
    meta_batch, ways, per_class = args.meta_batch, args.ways, args.shots + 15
    torch.manual_seed(0)
    x = torch.rand(meta_batch, ways * per_class, 1, 28, 28)
    y = torch.arange(ways).repeat_interleave(per_class).expand(meta_batch, -1)
    support = torch.arange(ways * per_class) % per_class < args.shots
    batch = mb.data.Episode(x[:, support], y[:, support], x[:, ~support], y[:, ~support])
    batch = batch.to(device)
    learner = mb.MAML(
        mb.models.Conv4(out_features=ways), inner_lr=0.4, inner_steps=steps, **MODES[mode]
    ).to(device)
    optimizer = torch.optim.Adam(learner.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad()
        learner.loss(batch).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step()
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) * 1024
    times = []
    for _ in range(3):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"peak_mb": peak / 2**20, "seconds": statistics.median(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--meta-batch", type=int, default=8)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--one", nargs=2, metavar=("MODE", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        result = one(args.one[0], int(args.one[1]), args)
        print(json.dumps(result))
        return
    device = mb.pick_device(args.device)
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else (f"CPU ({args.threads} threads)")
    )
    print(
        f"torch {torch.__version__}, {where}, Conv4 {args.ways}-way {args.shots}-shot, "
        f"15 queries per class, meta-batch {args.meta_batch}\n"
    )
    print("| inner steps | " + " | ".join(f"{m}: MB, s/step" for m in MODES) + " |")
    print("| --- |" + " --- |" * len(MODES))
    for steps in args.steps:
        cells = []
        for mode in MODES:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    mode,
                    str(steps),
                    "--meta-batch",
                    str(args.meta_batch),
                    "--device",
                    args.device,
                    "--threads",
                    str(args.threads),
                    "--ways",
                    str(args.ways),
                    "--shots",
                    str(args.shots),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            cells.append(f"{result['peak_mb']:.0f}, {result['seconds']:.2f}")
        print(f"| {steps} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
