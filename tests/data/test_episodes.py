"""The episode sampler's invariants, the Episode checks and the sine task family."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

import metabook as mb
from metabook.data import Episode, EpisodeSampler, SineTasks, TaskSource, split_classes


def toy_dataset(classes=10, per_class=8, dim=3, seed=0):
    """Examples whose first feature encodes (label, index within class) exactly."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(per_class)
    x = torch.randn(classes * per_class, dim, generator=g)
    x[:, 0] = labels * 1000 + torch.arange(per_class).repeat(classes)
    perm = torch.randperm(labels.numel(), generator=g)  # labels not sorted in the data set
    return TensorDataset(x[perm], labels[perm])


def check_episode(episode, dataset, ways, shots, queries):
    assert episode.support_x.shape == (ways * shots, 3)
    assert episode.query_x.shape == (ways * queries, 3)
    assert episode.support_y.tolist() == [k for k in range(ways) for _ in range(shots)]
    assert episode.query_y.tolist() == [k for k in range(ways) for _ in range(queries)]
    classes = episode.info["classes"]
    assert len(set(classes.tolist())) == ways
    # each example really belongs to the dataset class behind its episode label
    true_class = (episode.support_x[:, 0] // 1000).long()
    assert torch.equal(true_class, classes[episode.support_y])
    assert torch.equal((episode.query_x[:, 0] // 1000).long(), classes[episode.query_y])
    # no example is both a support and a query example
    ids = torch.cat([episode.support_x[:, 0], episode.query_x[:, 0]])
    assert ids.unique().numel() == ids.numel()


def test_single_episodes_satisfy_the_invariants():
    data = toy_dataset()
    sampler = EpisodeSampler(data, ways=4, shots=2, queries=3, seed=1)
    for _ in range(50):
        check_episode(sampler.sample(), data, 4, 2, 3)


def test_batches_stack_episodes_on_a_leading_dimension():
    data = toy_dataset()
    batch = EpisodeSampler(data, ways=5, shots=1, queries=2, seed=1).sample(batch_size=6)
    assert batch.batched and batch.num_tasks == 6
    assert batch.support_x.shape == (6, 5, 3) and batch.query_y.shape == (6, 10)
    for b in range(6):
        check_episode(batch.task(b), data, 5, 1, 2)


def test_labels_are_assigned_to_classes_afresh_in_every_episode():
    sampler = EpisodeSampler(toy_dataset(classes=5), ways=5, shots=1, queries=1, seed=0)
    behind_label_0 = {int(sampler.sample().info["classes"][0]) for _ in range(40)}
    assert len(behind_label_0) == 5  # with 5 classes every class gets label 0 sometimes


def test_same_seed_same_episodes_and_fixed_evaluation_lists():
    data = toy_dataset()
    a = EpisodeSampler(data, 3, 2, 2, seed=7)
    b = EpisodeSampler(data, 3, 2, 2, seed=7)
    c = EpisodeSampler(data, 3, 2, 2, seed=8)
    first = [a.sample().support_x for _ in range(5)]
    assert all(torch.equal(x, b.sample().support_x) for x in first)
    assert not all(torch.equal(x, c.sample().support_x) for x in first)
    fixed = a.episodes(4, seed=3)
    a.sample(batch_size=10)  # drawing more does not change a fixed list
    again = a.episodes(4, seed=3)
    assert all(torch.equal(x.query_x, y.query_x) for x, y in zip(fixed, again, strict=True))


def test_restricting_classes_and_disjoint_splits():
    data = toy_dataset(classes=20)
    train, test = split_classes(20, [15, 5], seed=0)
    assert set(train.tolist()).isdisjoint(test.tolist())
    assert sorted(train.tolist() + test.tolist()) == list(range(20))
    sampler = EpisodeSampler(data, 5, 1, 1, classes=test, seed=0)
    for _ in range(20):
        assert set(sampler.sample().info["classes"].tolist()) == set(test.tolist())
    again = split_classes(20, [15, 5], seed=0)
    assert torch.equal(again[0], train)
    assert not torch.equal(split_classes(20, [15, 5], seed=1)[0], train)


def test_split_by_fractions():
    parts = split_classes(242, [0.7, 0.3], seed=0)
    assert [p.numel() for p in parts] == [169, 73]
    assert [p.numel() for p in split_classes(10, [0.5, 0.2])] == [5, 2]
    with pytest.raises(ValueError, match="more than 1"):
        split_classes(10, [0.7, 0.7])
    with pytest.raises(ValueError, match="cannot split"):
        split_classes(10, [8, 3])


def test_any_map_style_dataset():
    class TorchvisionLike(torch.utils.data.Dataset):
        def __init__(self):
            self.targets = [i % 4 for i in range(24)]

        def __len__(self):
            return 24

        def __getitem__(self, i):
            return torch.full((2, 2), float(i)), self.targets[i]

    sampler = EpisodeSampler(TorchvisionLike(), ways=3, shots=2, queries=1, seed=0)
    episode = sampler.sample(batch_size=2)
    assert episode.support_x.shape == (2, 6, 2, 2)
    labels = torch.tensor(TorchvisionLike().targets)
    index = episode.support_x[..., 0, 0].long()
    assert torch.equal(labels[index], episode.info["classes"].gather(1, episode.support_y))

    pairs = [(torch.tensor([float(i)]), torch.tensor(i % 3)) for i in range(12)]  # no attributes
    assert EpisodeSampler(pairs, 3, 1, 1).sample().query_x.shape == (3, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ways": 11}, "11-way episodes need 11 classes but only 10"),
        ({"shots": 5, "queries": 4}, "need 9 examples per class"),
        ({"ways": 1}, "ways must be an integer >= 2"),
        ({"shots": 0}, "shots must be an integer >= 1"),
        ({"classes": [0, 1, 99]}, r"classes \[99\] have no examples"),
        ({"ways": 3, "classes": [0, 1]}, "3-way episodes need 3 classes but only 2"),
    ],
)
def test_impossible_episodes_are_refused_up_front(kwargs, message):
    args = {"ways": 5, "shots": 1, "queries": 1} | kwargs
    with pytest.raises(ValueError, match=message):
        EpisodeSampler(toy_dataset(), **args)


def test_bad_datasets():
    with pytest.raises(ValueError, match="negative label"):
        EpisodeSampler(TensorDataset(torch.zeros(4, 1), torch.tensor([0, 1, -1, 1])), 2, 1, 0)

    class Pillow(torch.utils.data.Dataset):
        targets = [0, 0, 1, 1]

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return "an image", self.targets[i]

    with pytest.raises(TypeError, match="ToTensor"):
        EpisodeSampler(Pillow(), 2, 1, 1).sample()


def test_episode_checks_its_shapes_and_labels():
    x = torch.zeros(6, 3)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    Episode(x, y, torch.zeros(2, 3), torch.tensor([2, 0]))
    with pytest.raises(ValueError, match="disagree on the number of support"):
        Episode(x, y[:5], x, y)
    with pytest.raises(ValueError, match="different shapes"):
        Episode(x, y, torch.zeros(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="query_y holds label 3, outside 0..2"):
        Episode(x, y, torch.zeros(2, 3), torch.tensor([3, 0]))
    with pytest.raises(ValueError, match="integer class labels"):
        Episode(x, y.float(), x, y)
    with pytest.raises(ValueError, match="negative label"):
        Episode(x, y - 1, x)
    with pytest.raises(ValueError, match=r"shape \[N\*K\]"):
        Episode(x, y.view(1, 2, 3), x)
    with pytest.raises(ValueError, match="has 3 tasks but support_x has 2"):
        Episode(torch.zeros(2, 6, 3), y.repeat(2, 1), torch.zeros(3, 2, 3))


def test_stack_and_task_are_inverse():
    sampler = EpisodeSampler(toy_dataset(), 3, 2, 2, seed=0)
    episodes = [sampler.sample() for _ in range(4)]
    batch = Episode.stack(episodes)
    assert batch.support_x.shape == (4, 6, 3)
    for i, episode in enumerate(episodes):
        assert torch.equal(batch.task(i).query_x, episode.query_x)
        assert torch.equal(batch.task(i).info["classes"], episode.info["classes"])
    moved = batch.to("cpu")
    assert moved.support_x.device.type == "cpu" and moved.info is not None
    with pytest.raises(ValueError, match="single episodes"):
        Episode.stack([batch])


def test_sampler_on_real_omniglot_uses_the_images(data_root):
    omniglot = mb.data.Omniglot("background_small1", root=data_root / "omniglot")
    episode = EpisodeSampler(omniglot, 20, 5, 15, seed=0).sample(batch_size=2)
    assert episode.support_x.shape == (2, 100, 1, 28, 28)
    index = episode.info["indices"]  # [B, N, K+Q] dataset indices
    assert torch.equal(episode.support_x[1, 5], omniglot.images[index[1, 1, 0]])
    assert torch.equal(omniglot.labels[index[0, :, 0]], episode.info["classes"][0])


def test_episodes_within_one_group():
    data = toy_dataset(classes=12)
    group_of = torch.tensor([0] * 5 + [1] * 4 + [2] * 3)  # group 2 is too small for 4-way
    sampler = EpisodeSampler(data, ways=4, shots=1, queries=1, groups=group_of, seed=0)
    seen = set()
    for _ in range(60):
        classes = sampler.sample().info["classes"]
        groups = set(group_of[classes].tolist())
        assert len(groups) == 1 and groups != {2}
        seen |= groups
    assert seen == {0, 1}  # both eligible groups are drawn
    with pytest.raises(ValueError, match="the largest has 5"):
        EpisodeSampler(data, ways=6, shots=1, queries=1, groups=group_of)
    with pytest.raises(ValueError, match="give the group of every class"):
        EpisodeSampler(data, ways=2, shots=1, queries=1, groups=group_of[:5])


def test_an_episode_decides_ways_and_batching_once():
    episode = EpisodeSampler(toy_dataset(), 4, 2, 1, seed=0).sample(batch_size=3)
    assert episode.ways == 4 and episode.batched
    # copies keep what was checked, without looking at the labels again
    moved = episode.to("cpu")
    moved.support_y = None  # a copy never reads its labels to know its classes
    assert moved.ways == 4 and moved.batched
    task = episode.task(1)
    assert task.ways == 4 and not task.batched and task.support_x.shape == (8, 3)


class Recording(mb.FewShotLearner):
    """Returns zeros and records the number of classes it was told."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.told: list[int | None] = []

    def forward(self, support_x, support_y, query_x, ways=None):
        self.told.append(ways)
        return torch.zeros(*query_x.shape[:-1], 6) + self.w


def test_learners_are_told_the_episodes_ways():
    sampler = EpisodeSampler(toy_dataset(), 6, 1, 1, seed=0)
    learner = Recording()
    mb.evaluate(learner, sampler.episodes(3))
    learner.loss(sampler.sample(batch_size=2))
    assert learner.told == [6, 6, 6, 6]


@pytest.mark.parametrize(
    "source",
    [
        lambda: EpisodeSampler(toy_dataset(), 3, 1, 1, seed=2),
        lambda: SineTasks(shots=3, queries=2, seed=2),
        lambda: mb.data.UserTasks(mb.data.simulate_ratings(users=20, items=100), shots=3),
        lambda: mb.data.AugmentedTasks(
            EpisodeSampler(
                TensorDataset(torch.rand(40, 1, 8, 8), torch.arange(4).repeat(10)), 3, 1, 1
            ),
            mb.data.RandomAffine(),
        ),
    ],
    ids=["EpisodeSampler", "SineTasks", "UserTasks", "AugmentedTasks"],
)
def test_every_task_source_samples_and_makes_fixed_lists(source):
    tasks = source()
    assert isinstance(tasks, TaskSource)
    first = tasks.episodes(3, seed=5)
    tasks.sample(batch_size=4)  # drawing more changes nothing in a fixed list
    again = tasks.episodes(3, seed=5)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_y, b.query_y)
    assert not torch.equal(tasks.episodes(1, seed=6)[0].support_x, first[0].support_x)
    assert tasks.sample(batch_size=2).num_tasks == 2
    with pytest.raises(TypeError, match="draws them without end: pass source.episodes"):
        mb.evaluate(mb.NearestNeighbour(), tasks)
    with pytest.raises(TypeError):
        iter(tasks)  # a source never ends, so it is not iterable


def test_what_would_be_scored_silently_is_refused_where_the_episode_is_built():
    x, y = torch.zeros(4, 3), torch.tensor([0, 0, 1, 1])
    bad = x.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="support_x holds NaN or infinite values"):
        Episode(bad, y, x)
    with pytest.raises(ValueError, match="query_x holds NaN or infinite values"):
        Episode(x, y, x / 0)
    with pytest.raises(ValueError, match="no example of class 1"):
        Episode(x, torch.tensor([0, 0, 2, 2]), x)  # labels 0 and 2: class 1 has nothing
    with pytest.raises(ValueError, match="no example of class 2"):
        Episode(torch.zeros(2, 3, 1), torch.tensor([[0, 1, 2], [0, 1, 1]]), torch.zeros(2, 1, 1))
    halves = TensorDataset(torch.zeros(8, 2), torch.tensor([0.0, 0, 1, 1, 2, 2, 2.5, 2.5]))
    with pytest.raises(ValueError, match="whole numbers .* 2.5"):
        EpisodeSampler(halves, 2, 1, 1)


def test_a_huge_label_costs_no_memory():
    """Labels are class ids, not counts: one of 10^12 must not allocate 10^12 counters."""
    labels = torch.tensor([3, 3, 10**12, 10**12, 7, 7])
    data = TensorDataset(torch.arange(6.0).view(6, 1), labels)
    sampler = EpisodeSampler(data, ways=3, shots=1, queries=1, seed=0)
    episode = sampler.sample()
    assert sorted(episode.info["classes"].tolist()) == [3, 7, 10**12]
    true = labels[episode.info["indices"][:, 0]]
    assert torch.equal(true, episode.info["classes"])
