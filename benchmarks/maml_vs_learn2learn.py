"""Meta-training throughput and memory: metabook's MAML/Meta-SGD against learn2learn's.

    python benchmarks/maml_vs_learn2learn.py [--device cpu|cuda] [--repeats 5] [--threads 2]

Both libraries run side by side in one process on the same Omniglot-shaped episodes
(Conv4, 5-way 1-shot, 15 queries per class, meta-batch 32), alternating measurements so
that both see the same machine state. Reported: median seconds per meta-training step
(forward, meta-gradient, Adam step) and tasks per second, and memory: on CUDA the peak
allocated bytes; on CPU the bytes of the tensors autograd saves for the meta-gradient
(the graph that second-order MAML keeps alive), counted with saved-tensor hooks.

A second table measures metabook's own choice between a per-task loop and ``vmap`` over
tasks, on the sine-regression MLP and on Conv4 without BatchNorm.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import weakref

import torch
import torch.nn.functional as F
from torch import nn

import metabook as mb
from metabook.learners.optimisation.maml import MAML, MetaSGD


def saved_bytes(fn) -> int:
    """Bytes of the tensors that autograd holds for the backward pass once ``fn`` returns.

    Saved tensors are tracked through weak references, so the inner-loop graphs that were
    already freed (first-order MAML) are not counted; each storage is counted once.
    """
    saved: list[weakref.ref] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(weakref.ref(t))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = fn()  # keep the graph alive while counting
    alive = {}
    for ref in saved:
        t = ref()
        if t is not None:
            storage = t.untyped_storage()
            alive[storage.data_ptr()] = storage.nbytes()
    del loss
    return sum(alive.values())


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def episodes(device: torch.device, batch: int) -> mb.data.Episode:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 5 * 16, 1, 28, 28, generator=generator)
    y = torch.arange(5).repeat_interleave(16).expand(batch, -1)
    support = torch.arange(80) % 16 == 0
    return mb.data.Episode(x[:, support], y[:, support], x[:, ~support], y[:, ~support]).to(device)


class Ours:
    name = "metabook"

    def __init__(self, method: str, steps: int, device: torch.device, model: nn.Module):
        cls = MetaSGD if method == "metasgd" else MAML
        self.learner = cls(
            model, inner_lr=0.4, inner_steps=steps, first_order=method == "fomaml"
        ).to(device)
        self.optimizer = torch.optim.Adam(self.learner.parameters(), lr=1e-3)

    def loss(self, batch: mb.data.Episode) -> torch.Tensor:
        return self.learner.loss(batch)

    def step(self, batch: mb.data.Episode) -> None:
        self.optimizer.zero_grad()
        self.loss(batch).backward()
        self.optimizer.step()


class Theirs(Ours):
    name = "learn2learn"

    def __init__(self, method: str, steps: int, device: torch.device, model: nn.Module):
        import learn2learn as l2l

        cls = l2l.algorithms.MetaSGD if method == "metasgd" else l2l.algorithms.MAML
        self.steps = steps
        self.learner = cls(model, lr=0.4, first_order=method == "fomaml").to(device)
        self.optimizer = torch.optim.Adam(self.learner.parameters(), lr=1e-3)

    def loss(self, batch: mb.data.Episode) -> torch.Tensor:
        total = 0.0
        for i in range(batch.num_tasks):  # learn2learn adapts one clone per task
            clone = self.learner.clone()
            for _ in range(self.steps):
                clone.adapt(F.cross_entropy(clone(batch.support_x[i]), batch.support_y[i]))
            total = total + F.cross_entropy(clone(batch.query_x[i]), batch.query_y[i])
        return total / batch.num_tasks


def step_times(impl, batch, device, repeats: int) -> list[float]:
    """Seconds of ``repeats`` meta-training steps after one warm-up step."""
    impl.step(batch)
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        impl.step(batch)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def measure(impl, batch, device, repeats: int) -> tuple[list[float], int]:
    times = step_times(impl, batch, device, repeats)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        impl.step(batch)
        memory = torch.cuda.max_memory_allocated(device)
    else:
        memory = saved_bytes(lambda: impl.loss(batch))
    return times, memory


def compare(
    device: torch.device,
    repeats: int,
    meta_batch: int,
    steps_list: list[int],
    methods: list[str],
) -> None:
    batch = episodes(device, meta_batch)
    print(
        f"\n## metabook vs learn2learn on {device_name(device)}: Conv4, 5-way 1-shot, "
        f"15 queries/class, meta-batch {meta_batch}, median of {repeats}\n"
    )
    print(
        "| method | inner steps | metabook tasks/s | learn2learn tasks/s | speed ratio | "
        "metabook memory (MB) | learn2learn memory (MB) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for steps in steps_list:
        for method in methods:
            torch.manual_seed(0)
            model = mb.models.Conv4(out_features=5)
            impls = [
                Ours(method, steps, device, copy.deepcopy(model)),
                Theirs(method, steps, device, copy.deepcopy(model)),
            ]
            results = {}
            while impls:  # measure one library, then free it before the next
                impl = impls.pop(0)
                results[impl.name] = measure(impl, batch, device, repeats)
                del impl
            ours_t = statistics.median(results["metabook"][0])
            theirs_t = statistics.median(results["learn2learn"][0])
            print(
                f"| {method} | {steps} | {meta_batch / ours_t:.1f} | "
                f"{meta_batch / theirs_t:.1f} | {theirs_t / ours_t:.2f}x | "
                f"{results['metabook'][1] / 2**20:.0f} | "
                f"{results['learn2learn'][1] / 2**20:.0f} |",
                flush=True,
            )


def batching(device: torch.device, repeats: int) -> None:
    print(
        f"\n## metabook: per-task loop vs vmap over tasks on {device_name(device)}, "
        f"second-order MAML, median of {repeats}\n"
    )
    print("| model | tasks | loop tasks/s | vmap tasks/s | vmap speed-up |")
    print("| --- | --- | --- | --- | --- |")
    sine = mb.data.SineTasks(shots=10, queries=10, seed=0).sample(25).to(device)
    conv = episodes(device, 32)
    conv_nobn = nn.Sequential(
        *[
            nn.Sequential(
                nn.Conv2d(1 if i == 0 else 64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
            )
            for i in range(4)
        ],
        nn.Flatten(),
        nn.Linear(64, 5),
    )
    cases = [
        ("MLP 1-40-40-1, sine K=10", mb.models.MLP(), F.mse_loss, sine),
        ("Conv4 without BatchNorm, 5-way 1-shot", conv_nobn, F.cross_entropy, conv),
    ]
    for label, model, loss_fn, batch in cases:
        speeds = {}
        for mode in ("loop", "vmap"):
            learner = MAML(copy.deepcopy(model), inner_lr=0.01, loss_fn=loss_fn, batching=mode).to(
                device
            )
            optimizer = torch.optim.Adam(learner.parameters(), lr=1e-3)

            class Step:
                name = mode

                def step(self, b, learner=learner, optimizer=optimizer):
                    optimizer.zero_grad()
                    learner.loss(b).backward()
                    optimizer.step()

            times = step_times(Step(), batch, device, repeats)
            speeds[mode] = batch.num_tasks / statistics.median(times)
        print(
            f"| {label} | {batch.num_tasks} | {speeds['loop']:.1f} | {speeds['vmap']:.1f} | "
            f"{speeds['vmap'] / speeds['loop']:.2f}x |",
            flush=True,
        )


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--inner-steps", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--methods", nargs="+", default=["maml", "fomaml", "metasgd"])
    parser.add_argument("--skip-batching", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = mb.pick_device(args.device)
    print(f"torch {torch.__version__}")
    compare(device, args.repeats, args.meta_batch, args.inner_steps, args.methods)
    if not args.skip_batching:
        batching(device, args.repeats)


if __name__ == "__main__":
    main()
