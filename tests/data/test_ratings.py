"""Ratings for cold-start recommendation: the simulator's model, the MovieLens loader on a
fixture in the published layout, the user-task sampler's invariants, and MAML on users."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import metabook as mb
from metabook.data.ratings import (
    UserTasks,
    cold_start_episodes,
    load_movielens_100k,
    simulate_ratings,
)
from metabook.files import DataNotFoundError


def test_simulated_ratings_follow_their_model():
    data = simulate_ratings(users=50, items=40, genres=5, groups=3, ratings_per_user=(5, 9))
    assert data.simulated and "SIMULATED" in repr(data) and "SIMULATED" in data.description
    counts = data.ratings_per_user()
    assert counts.min() >= 5 and counts.max() <= 9 and counts.sum() == data.ratings.numel()
    assert set(data.ratings.unique().tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    genres_per_item = data.item_features.sum(1)
    assert genres_per_item.min() >= 1 and genres_per_item.max() <= 3
    assert torch.equal(data.user_features.sum(1), torch.ones(50))
    again = simulate_ratings(users=50, items=40, genres=5, groups=3, ratings_per_user=(5, 9))
    assert torch.equal(data.ratings, again.ratings) and torch.equal(data.items, again.items)
    # no noise and no individuality: a rating depends on the user's group and the item only
    plain = simulate_ratings(
        users=300, items=10, groups=2, ratings_per_user=(10, 10), individuality=0.0, noise=0.0
    )
    group = plain.user_features.argmax(1)[plain.users]
    for g in range(2):
        for item in range(10):
            values = plain.ratings[(group == g) & (plain.items == item)].unique()
            assert values.numel() == 1
    with pytest.raises(ValueError, match="ratings_per_user"):
        simulate_ratings(items=10, ratings_per_user=(5, 20))


def write_movielens(folder):
    folder.mkdir(parents=True)
    rows = [(1, 2, 5, 300), (1, 1, 3, 100), (2, 2, 1, 50), (1, 3, 4, 200), (2, 1, 2, 60)]
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows))
    flags = ["0|1|" + "0|" * 16 + "1", "1|" + "0|" * 17 + "0", "0|0|1|" + "0|" * 15 + "0"]
    (folder / "u.item").write_text(
        "".join(
            f"{i + 1}|Film {i + 1} (1995)|01-Jan-1995||http://x|{f}\n" for i, f in enumerate(flags)
        ),
        encoding="latin-1",
    )
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")


def test_movielens_from_a_fixture(tmp_path):
    write_movielens(tmp_path / "ml-100k")
    data = load_movielens_100k(tmp_path)
    assert not data.simulated and "real" in repr(data)
    assert data.users.tolist() == [0, 0, 1, 0, 1] and data.items.tolist() == [1, 0, 1, 2, 0]
    assert data.ratings.tolist() == [5.0, 3.0, 1.0, 4.0, 2.0]
    assert data.item_features.shape == (3, 19)
    assert data.item_features[0].nonzero().squeeze(1).tolist() == [1, 18]
    # user features: 7 age bands (24 -> band 2, 53 -> band 5), gender, 2 occupations here
    assert data.user_features.shape == (2, 7 + 1 + 2)
    assert data.user_features[0, :7].argmax() == 2 and data.user_features[1, :7].argmax() == 5
    assert data.user_features[:, 7].tolist() == [1.0, 0.0]
    # the cold-start episode of user 0: its first rating by time (item 0, rated 3) is support
    (episode,) = cold_start_episodes(data, [0], shots=1)
    assert episode.support_y.tolist() == [[3.0]] and episode.query_y.squeeze(1).tolist() == [4, 5]
    torch.testing.assert_close(episode.support_x[0], data.inputs(torch.tensor(0), torch.tensor(0)))


def test_movielens_missing_or_broken_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("METABOOK_DATA", raising=False)
    with pytest.raises(DataNotFoundError, match="files.grouplens.org.*accept its terms"):
        load_movielens_100k(tmp_path / "nowhere")
    write_movielens(tmp_path / "bad")
    (tmp_path / "bad" / "u.data").write_text("1\ttwo\t3\t4\n")
    with pytest.raises(ValueError, match="does not look like MovieLens 100k"):
        load_movielens_100k(tmp_path / "bad")


def test_user_tasks_hold_distinct_ratings_of_one_user():
    data = simulate_ratings(users=30, items=50, ratings_per_user=(8, 30), seed=1)
    tasks = UserTasks(data, users=list(range(20)), shots=5, queries=3, seed=0)
    batch = tasks.sample(16)
    assert batch.support_x.shape == (16, 5, data.feature_dim) and batch.query_y.shape == (16, 3, 1)
    items_dim = data.item_features.shape[1]
    for b, user in enumerate(batch.info["users"].tolist()):
        rows = batch.info["rows"][b]
        assert user < 20 and rows.unique().numel() == 8  # eight distinct ratings ...
        assert (data.users[rows] == user).all()  # ... all of this user
        x = torch.cat([batch.support_x[b], batch.query_x[b]])
        y = torch.cat([batch.support_y[b], batch.query_y[b]]).squeeze(-1)
        assert torch.equal(y, data.ratings[rows])  # each example is the rating it claims
        assert torch.equal(x[:, :items_dim], data.item_features[data.items[rows]])
        assert (x[:, items_dim:] == data.user_features[user]).all()
    assert batch.info["users"].unique().numel() > 1  # tasks come from several users
    with pytest.raises(ValueError, match="no user has the 100 ratings"):
        UserTasks(data, shots=50, queries=50)


def test_maml_adapts_to_new_users_on_simulated_ratings():
    data = simulate_ratings(users=400, items=200, seed=0)
    train_users, test_users = list(range(300)), list(range(300, 400))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(data.feature_dim, 64), nn.ReLU(), nn.Linear(64, 1))
    maml = mb.MAML(model, inner_lr=0.05, inner_steps=5, loss_fn=F.mse_loss)
    mb.meta_train(
        maml,
        UserTasks(data, train_users, 10, 10),
        steps=300,
        meta_batch=8,
        lr=3e-3,
        device="cpu",
        progress=False,
    )
    episodes = cold_start_episodes(data, test_users, shots=10)
    adapted = mb.evaluate(maml, episodes).mean
    maml.test_steps = 0
    unadapted = mb.evaluate(maml, episodes).mean
    mean_rating = data.ratings[torch.isin(data.users, torch.tensor(train_users))].mean()
    baseline = torch.stack([(e.query_y - mean_rating).pow(2).mean() for e in episodes]).mean()
    # measured: MSE 0.97 adapted, 9.1 for the initialisation itself, 1.73 for the mean
    # rating (MAML's initialisation is a starting point, not a predictor)
    assert adapted < 0.7 * float(baseline) and adapted < unadapted
