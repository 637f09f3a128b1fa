"""evaluate() and its interval by hand, and the verification metrics (ROC, AUC, equal-error
rate) by hand."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import metabook as mb
from metabook.data import Episode, EpisodeSampler
from metabook.evaluation import equal_error_rate, pair_scores_by_identity, roc_curve


def test_mean_confidence_interval_by_hand():
    mean, half = mb.mean_confidence_interval(torch.tensor([0.6, 0.8, 1.0]))
    assert mean == pytest.approx(0.8)
    # Student's t with 2 degrees of freedom: q = 1 / sqrt(2 * 0.025 * 0.975) - sqrt(2)
    # solved exactly (t_2's quantile is (2p - 1) / sqrt(2 p (1 - p))), p = 0.975
    p = 0.975
    q = (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    assert q == pytest.approx(4.302652729911275)
    assert half == pytest.approx(q * 0.2 / math.sqrt(3))
    # a fixed normal quantile on request
    assert mb.mean_confidence_interval(torch.tensor([0.6, 0.8, 1.0]), z=1.96)[1] == pytest.approx(
        1.96 * 0.2 / math.sqrt(3)
    )
    assert math.isnan(mb.mean_confidence_interval(torch.tensor([0.5]))[1])
    with pytest.raises(ValueError, match="at least one episode"):
        mb.mean_confidence_interval(torch.tensor([]))


def test_the_interval_tends_to_the_normal_one_with_many_episodes():
    """t's quantile falls towards 1.96 as episodes accumulate: 2.262 at 10 values (tables)."""
    values = torch.arange(10, dtype=torch.float64)
    half = mb.mean_confidence_interval(values)[1]
    assert half / (values.std() / math.sqrt(10)) == pytest.approx(2.2622, abs=1e-4)
    values = torch.arange(600, dtype=torch.float64)
    ratio = mb.mean_confidence_interval(values)[1] / (values.std() / math.sqrt(600))
    assert 1.96 < ratio < 1.9640


class AlwaysZero(mb.FewShotLearner):
    """Predicts class 0 for every query: accuracy is exactly 1/N on balanced queries."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, support_x, support_y, query_x, ways=None):
        ways = mb.episode_ways(support_y, ways)
        logits = torch.zeros(*query_x.shape[:-1], ways) + self.bias
        logits[..., 0] += 1
        return logits


def test_evaluate_exact_accuracies_and_mode_restored():
    data = torch.utils.data.TensorDataset(torch.randn(100, 2), torch.arange(10).repeat(10))
    episodes = EpisodeSampler(data, 4, 1, 3, seed=0).episodes(20)
    learner = AlwaysZero().train()
    result = mb.evaluate(learner, episodes)
    assert result.mean == pytest.approx(0.25) and result.ci95 == pytest.approx(0.0)
    assert result.values.shape == (20,) and result.metric == "accuracy"
    assert learner.training  # evaluate() puts the learner back in training mode
    assert "25.00% ± 0.00% (20 episodes)" in str(result)
    # a batch of 20 episodes counts as 20 episodes
    batched = mb.evaluate(learner, [Episode.stack(episodes)])
    assert batched.values.shape == (20,)


def test_evaluate_with_perfect_learner_and_custom_metric():
    x = torch.randn(10, 3)
    y = torch.arange(5).repeat(2)
    episode = Episode(x, y, x.clone(), y.clone())  # queries are copies of the support
    assert mb.evaluate(mb.NearestNeighbour(nn.Identity()), [episode]).mean == 1.0

    def error_rate(prediction, target):
        return (prediction != target).float().mean(-1)

    result = mb.evaluate(AlwaysZero(), [episode], metric=error_rate, higher_is_better=False)
    assert result.mean == pytest.approx(0.8) and result.metric == "error_rate"
    assert result.score == pytest.approx(-0.8)  # lower is better: the score is signed
    with pytest.raises(ValueError, match="higher_is_better"):
        mb.evaluate(AlwaysZero(), [episode], metric=error_rate)
    with pytest.raises(ValueError, match="unknown metric"):
        mb.evaluate(AlwaysZero(), [episode], metric="f1")
    with pytest.raises(ValueError, match="no episodes"):
        mb.evaluate(AlwaysZero(), [])


class Zero(mb.FewShotLearner):
    def forward(self, support_x, support_y, query_x, ways=None):
        return torch.zeros_like(query_x)


def test_regression_is_scored_by_mean_squared_error():
    tasks = mb.data.SineTasks(shots=5, queries=10, seed=0).sample(batch_size=3)
    result = mb.evaluate(Zero(), [tasks])
    expected = tasks.query_y.pow(2).mean(dim=(1, 2))
    torch.testing.assert_close(result.values, expected)
    assert result.metric == "mse"


def test_default_loss_is_query_cross_entropy():
    torch.manual_seed(0)
    learner = AlwaysZero()
    episode = Episode(
        torch.zeros(4, 2), torch.tensor([0, 0, 1, 1]), torch.zeros(2, 2), torch.tensor([0, 1])
    )
    expected = F.cross_entropy(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([0, 1]))
    torch.testing.assert_close(learner.loss(episode), expected)
    with pytest.raises(NotImplementedError):
        mb.FewShotLearner()(episode.support_x, episode.support_y, episode.query_x)
    with pytest.raises(ValueError, match="needs query_y"):
        learner.loss(Episode(episode.support_x, episode.support_y, episode.query_x))


def test_roc_and_auc_by_hand():
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    same = torch.tensor([1, 1, 0, 1, 0, 0])
    roc = roc_curve(scores, same)
    third = 1 / 3
    torch.testing.assert_close(
        roc.fpr, torch.tensor([0, 0, 0, third, third, 2 * third, 1]).double()
    )
    torch.testing.assert_close(
        roc.tpr, torch.tensor([0, third, 2 * third, 2 * third, 1, 1, 1]).double()
    )
    # AUC = P(a same pair outscores a different one) = 8 of 9 pairs
    assert roc.auc() == pytest.approx(8 / 9)
    # ties make one point
    tied = roc_curve(torch.tensor([0.5, 0.5]), torch.tensor([1, 0]))
    assert tied.fpr.tolist() == [0, 1] and tied.tpr.tolist() == [0, 1] and tied.auc() == 0.5
    with pytest.raises(ValueError, match="both same-identity and different"):
        roc_curve(torch.tensor([0.1, 0.2]), torch.tensor([1, 1]))


def test_equal_error_rate_by_hand():
    # at threshold 0.7 one different pair of three is accepted and one same pair of three
    # rejected: FPR = FNR = 1/3 exactly
    eer, threshold = equal_error_rate(
        torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4]), torch.tensor([1, 1, 0, 1, 0, 0])
    )
    assert eer == pytest.approx(1 / 3) and threshold == pytest.approx(0.7)
    # between ROC points (FPR 0, FNR 1/3) and (1/2, 1/3): equal at FPR = 1/3, two thirds of
    # the way from threshold 0.8 to 0.7
    eer, threshold = equal_error_rate(
        torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5]), torch.tensor([1, 1, 0, 1, 0])
    )
    assert eer == pytest.approx(1 / 3) and threshold == pytest.approx(0.8 - 0.1 * 2 / 3)
    # perfectly separated scores
    assert equal_error_rate(torch.tensor([3.0, 2.0, 1.0]), torch.tensor([1, 0, 0]))[0] == 0


def test_pairs_from_a_similarity_matrix():
    sim = torch.arange(16.0).reshape(4, 4)
    scores, same = pair_scores_by_identity(sim, torch.tensor([0, 0, 1, 1]))
    assert scores.tolist() == [1, 2, 3, 6, 7, 11]
    assert same.tolist() == [True, False, False, False, False, True]
    with pytest.raises(ValueError, match=r"\[3, 3\]"):
        pair_scores_by_identity(sim, torch.tensor([0, 1, 2]))


class _QueryCounter(mb.FewShotLearner):
    """Predicts class 0 for every query and records how many queries each call saw."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def forward(self, support_x, support_y, query_x, ways=None):
        self.seen.append(query_x.shape[-4])
        return torch.zeros(*query_x.shape[:-3], ways or 2)


def test_inductive_evaluation_shows_the_learner_one_query_at_a_time():
    data = torch.utils.data.TensorDataset(torch.randn(40, 1, 4, 4), torch.arange(4).repeat(10))
    episodes = EpisodeSampler(data, 2, 1, 3, seed=0).episodes(3)
    counter = _QueryCounter()
    together = mb.evaluate(counter, episodes)
    assert counter.seen == [6, 6, 6]
    counter.seen.clear()
    alone = mb.evaluate(counter, episodes, transductive=False)
    assert counter.seen == [1] * 18  # 3 episodes of 6 queries, each alone
    torch.testing.assert_close(alone.values, together.values)  # class 0 is half right
    assert together.mean == 0.5
    # a batch of episodes is split into its tasks first
    counter.seen.clear()
    batch = EpisodeSampler(data, 2, 1, 3, seed=0).sample(batch_size=2)
    mb.evaluate(counter, [batch], transductive=False)
    assert counter.seen == [1] * 12


def test_batch_statistics_make_a_protonet_transductive():
    """With BatchNorm's batch statistics (the book's Conv4) a query's scores change with
    the other queries; one at a time, they depend on the support set and the query only."""
    mb.seed_everything(0)
    learner = mb.ProtoNet(mb.models.Conv4(image_size=28)).eval()
    episode = EpisodeSampler(
        torch.utils.data.TensorDataset(torch.rand(60, 1, 28, 28), torch.arange(6).repeat(10)),
        3, 1, 4, seed=0,
    ).sample()  # fmt: skip
    with torch.no_grad():
        together = learner(episode.support_x, episode.support_y, episode.query_x)
        first_pair = learner(episode.support_x, episode.support_y, episode.query_x[:2])
        alone = torch.cat([learner(o.support_x, o.support_y, o.query_x)
                           for o in episode.single_queries()])  # fmt: skip
    assert not torch.allclose(together[:2], first_pair)  # other queries moved the scores
    single = episode.single_queries()[5]
    assert single.query_x.shape[0] == 1 and torch.equal(single.query_x[0], episode.query_x[5])
    with torch.no_grad():
        again = learner(single.support_x, single.support_y, single.query_x)
    torch.testing.assert_close(again, alone[5:6])
    with pytest.raises(ValueError, match="takes a single episode"):
        Episode.stack([episode, episode]).single_queries()


def test_intervals_are_compared_by_overlap_in_every_form():
    # 0.80 +- 0.05 starts at 0.75, above 0.70 +- 0.04 (ends at 0.74): better
    assert mb.compare_intervals((0.80, 0.05), (0.70, 0.04)) == 1
    assert mb.compare_intervals((0.70, 0.04), (0.80, 0.05)) == -1
    # with 0.70 +- 0.06 they overlap: tied; touching intervals are tied too
    assert mb.compare_intervals((0.80, 0.05), (0.70, 0.06)) == 0
    assert mb.compare_intervals((0.5, 0.25), (0.0, 0.25)) == 0
    # a published figure is an interval of width zero; a recorded result is a mapping
    recorded = {"mean": 0.9425, "ci95": 0.0218}  # 92.07 to 96.43
    assert (
        mb.compare_intervals(recorded, 0.92) == 1
        and mb.compare_intervals(recorded, 95.5 / 100) == 0
    )
    result = mb.EvalResult(0.9, 0.01, torch.tensor([0.9]), "accuracy")
    assert mb.compare_intervals(result, recorded) == -1
    with pytest.raises(TypeError, match="cannot read an interval from str"):
        mb.compare_intervals("0.9", 0.8)


@pytest.mark.parametrize(
    "make",
    [
        lambda: mb.MAML(mb.models.Conv4(out_features=3, channels=8), inner_lr=0.4, test_steps=2),
        lambda: mb.MetaSGD(mb.models.Conv4(out_features=3, channels=8), inner_lr=0.4),
        lambda: mb.Reptile(mb.models.Conv4(out_features=3, channels=8), inner_steps=2),
        lambda: mb.MetaLSTM(mb.models.Conv4(out_features=3, channels=8), inner_steps=2),
    ],
    ids=["maml", "metasgd", "reptile", "metalstm"],
)
def test_each_query_alone_is_normalised_with_the_support_set(make):
    """Inductive evaluation of a learner that adapts its parameters: each query's
    prediction is that of the adapted model on the support set and that one query (so its
    BatchNorm sees the support set and the query, Nichol et al.'s non-transductive
    setting), for an episode and for a batch of tasks; predicting each query by itself
    would normalise it by its own statistics and give other answers."""
    mb.seed_everything(0)
    learner = make().eval()
    data = torch.utils.data.TensorDataset(torch.rand(60, 1, 28, 28), torch.arange(6).repeat(10))
    batch = EpisodeSampler(data, 3, 1, 4, seed=0).sample(batch_size=2)

    def definition(task: Episode) -> torch.Tensor:
        with torch.no_grad():
            adapted = learner.adapt(task.support_x, task.support_y)
        model = learner.model
        predictions = []
        for query in task.query_x:
            with torch.no_grad():
                out = torch.func.functional_call(
                    model, adapted, (torch.cat([task.support_x, query[None]]),)
                )
            predictions.append(out[-1].argmax())
        return torch.stack(predictions)

    for episode in (batch.task(0), batch):
        tasks = [episode] if not episode.batched else [episode.task(b) for b in range(2)]
        expected = torch.stack([definition(t) for t in tasks])
        got = learner.predict_each(episode)
        assert got.shape == ((2, 12) if episode.batched else (12,))
        assert torch.equal(got, expected.reshape(got.shape))
    # a query by itself is normalised with its own statistics: other outputs
    task = batch.task(0)
    with torch.no_grad():
        adapted = learner.adapt(task.support_x, task.support_y)
        model, query = learner.model, task.query_x[:1]
        beside = torch.func.functional_call(model, adapted, (torch.cat([task.support_x, query]),))
        alone = torch.func.functional_call(model, adapted, (query,))
    assert not torch.allclose(beside[-1:], alone, atol=1e-3)


def test_each_query_of_a_metric_learner_is_embedded_with_the_support_set():
    """ProtoNet's inductive predictions are its predictions on each single-query episode,
    whose forward embeds the support set and the one query together."""
    mb.seed_everything(0)
    learner = mb.ProtoNet(mb.models.Conv4(channels=8)).eval()
    data = torch.utils.data.TensorDataset(torch.rand(60, 1, 28, 28), torch.arange(6).repeat(10))
    episode = EpisodeSampler(data, 3, 1, 4, seed=0).sample()
    expected = []
    for query in episode.query_x:
        with torch.no_grad():
            z = learner.backbone(torch.cat([episode.support_x, query[None]]))
        prototypes = mb.learners.prototypes(z[:-1], episode.support_y, 3)
        expected.append((-(z[-1] - prototypes).pow(2).sum(-1)).argmax())
    assert torch.equal(learner.predict_each(episode), torch.stack(expected))


@pytest.mark.parametrize(
    "make",
    [
        lambda: mb.MANN(mb.models.Conv4(channels=8, norm="layer"), 8, max_ways=3, slots=8),
        lambda: mb.InContextTransformer(
            mb.models.Conv4(channels=8, norm="layer"), 8, max_ways=3, d_model=16
        ),
    ],
    ids=["mann", "in-context"],
)
def test_learners_that_keep_queries_apart_predict_each_query_as_together(make, monkeypatch):
    """The MANN and the Transformer keep queries apart: predict on each single-query episode
    (the definition; the MANN's support order drawn from the same seed every time) gives the
    same logits as the queries together, and predict_each calls predict once."""
    mb.seed_everything(0)
    learner = make().eval()
    data = torch.utils.data.TensorDataset(torch.rand(60, 1, 28, 28), torch.arange(6).repeat(10))
    episode = EpisodeSampler(data, 3, 1, 4, seed=0).sample()
    mb.seed_everything(1)
    together = learner._forward_episode(episode).detach()
    for i, one in enumerate(episode.single_queries()):
        mb.seed_everything(1)
        torch.testing.assert_close(learner._forward_episode(one).detach()[0], together[i])
    calls = []
    predict = learner.predict
    monkeypatch.setattr(learner, "predict", lambda e: calls.append(1) or predict(e))
    mb.seed_everything(1)
    assert torch.equal(learner.predict_each(episode), together.argmax(-1))
    assert len(calls) == 1
    # with a BatchNorm encoder the queries meet in its statistics: back to the definition
    learner.encoder = mb.models.Conv4(channels=8)
    assert mb.uses_batch_statistics(learner)
    calls.clear()
    learner.predict_each(episode)
    assert len(calls) == len(episode.query_y)


def test_inductive_maml_adapts_once_per_episode(monkeypatch):
    mb.seed_everything(0)
    learner = mb.MAML(mb.models.MLP(hidden_sizes=(8,)), inner_lr=0.1, loss_fn=F.mse_loss).eval()
    calls = []
    adapt = learner.adapt
    monkeypatch.setattr(learner, "adapt", lambda *a, **k: calls.append(1) or adapt(*a, **k))
    episodes = mb.data.SineTasks(shots=5, queries=7, seed=0).episodes(3)
    alone = mb.evaluate(learner, episodes, transductive=False)
    assert len(calls) == 3  # not 3 x 7
    # an MLP has no batch statistics: each query alone is the same prediction
    torch.testing.assert_close(alone.values, mb.evaluate(learner, episodes).values)


def test_over_seeds_is_the_t_interval_of_the_seed_means():
    """Three seeds 80, 84 and 88%: mean 84, sample sd 4, t(0.975, 2) = 4.3027, so the
    half-width is 4.3027 * 4 / sqrt(3) = 9.937 points; the episode interval is the mean
    of the three runs' intervals."""
    runs = [(0.80, 0.01), (0.84, 0.02), {"mean": 0.88, "ci95": 0.03}]
    result = mb.over_seeds(runs)
    assert result.mean == pytest.approx(0.84)
    assert result.ci95 == pytest.approx(4.302653 * 0.04 / 3**0.5, rel=1e-6)
    assert result.episode_ci95 == pytest.approx(0.02)
    assert result.seeds == pytest.approx([0.80, 0.84, 0.88])
    # a recorded cell reads back, and rankings use the interval over seeds
    again = mb.SeedResult(**dataclasses.asdict(result))
    assert again == result
    assert mb.compare_intervals(again, 0.741) == 0  # the interval starts at 0.74063
    assert mb.compare_intervals(again, 0.740) == 1
    # one seed: its own interval over episodes, the only one there is
    one = mb.over_seeds([(0.9, 0.02)])
    assert (one.mean, one.ci95, one.episode_ci95, one.seeds) == (0.9, 0.02, 0.02, [0.9])
    with pytest.raises(ValueError, match="no results"):
        mb.over_seeds([])
