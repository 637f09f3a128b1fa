"""Training and evaluation throughput of metabook's ProtoNet against easyfsl's.

    pip install easyfsl
    python benchmarks/protonet_vs_easyfsl.py [--device cpu|cuda] [--repeats 5] [--threads 2]

Both run side by side in one process on the same episodes of real Omniglot (the minimal
splits, 28x28) with the same Conv4 weights, alternating measurements. Training: one
episode per step (forward, cross-entropy on the queries, backward, Adam step), reported as
episodes per second; evaluation: predictions without gradients, episodes per second. The
two differ in how they embed an episode: easyfsl embeds the support set
(``process_support_set``) and then the queries (``forward``) in two backbone calls, metabook
embeds both in one call; easyfsl scores with the Euclidean distance, metabook's default is
the squared one (the distance costs little either way).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

import metabook as mb


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ours_logits(learner, episode):
    return learner(episode.support_x, episode.support_y, episode.query_x)


def theirs_logits(learner, episode):
    learner.process_support_set(episode.support_x, episode.support_y)
    return learner(episode.query_x)


def timed(fn, episodes, device) -> float:
    """Episodes per second of ``fn`` over ``episodes`` (after one warm-up episode)."""
    fn(episodes[0])
    synchronize(device)
    start = time.perf_counter()
    for episode in episodes:
        fn(episode)
    synchronize(device)
    return len(episodes) / (time.perf_counter() - start)


def main() -> None:
    from easyfsl.methods import PrototypicalNetworks

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=20, help="episodes per measurement")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = mb.pick_device(args.device)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else (f"CPU ({args.threads} threads)")
    )
    omniglot = mb.data.Omniglot("background_small1+background_small2")
    print(
        f"torch {torch.__version__}, {name}, Conv4 on Omniglot 28x28, median of "
        f"{args.repeats} x {args.episodes} episodes\n"
    )
    print("| setting | phase | metabook episodes/s | easyfsl episodes/s | speed ratio |")
    print("| --- | --- | --- | --- | --- |")
    for ways, shots in ((5, 1), (5, 5), (20, 1), (20, 5)):
        sampler = mb.data.EpisodeSampler(omniglot, ways, shots, 15, seed=0)
        episodes = [e.to(device) for e in sampler.episodes(args.episodes, seed=0)]
        torch.manual_seed(0)
        backbone = mb.models.Conv4().to(device)
        ours = mb.ProtoNet(copy.deepcopy(backbone))
        theirs = PrototypicalNetworks(copy.deepcopy(backbone)).to(device)

        def train_step(learner, logits_fn, optimizer):
            def step(episode):
                optimizer.zero_grad()
                loss = F.cross_entropy(logits_fn(learner, episode), episode.query_y)
                loss.backward()
                optimizer.step()

            return step

        def eval_step(learner, logits_fn):
            def step(episode):
                with torch.no_grad():
                    logits_fn(learner, episode).argmax(-1)

            return step

        rows = {
            "train": (
                train_step(ours, ours_logits, torch.optim.Adam(ours.parameters(), 1e-3)),
                train_step(theirs, theirs_logits, torch.optim.Adam(theirs.parameters(), 1e-3)),
            ),
            "evaluate": (eval_step(ours, ours_logits), eval_step(theirs, theirs_logits)),
        }
        for phase, (ours_step, theirs_step) in rows.items():
            speeds = {"ours": [], "theirs": []}
            for _ in range(args.repeats):
                speeds["ours"].append(timed(ours_step, episodes, device))
                speeds["theirs"].append(timed(theirs_step, episodes, device))
            a, b = statistics.median(speeds["ours"]), statistics.median(speeds["theirs"])
            print(
                f"| {ways}-way {shots}-shot | {phase} | {a:.1f} | {b:.1f} | {a / b:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
