"""Training, checkpoints and answers with real torch on small generated data: sequence
models learn an order popularity cannot, the ODE model uses the time between events,
a checkpoint gives back the same scores, and a recommendation's numbers mean what they
say."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch

from flowloom.tools.rec import Interactions, RecError, Recommender, build_model, train

N_ITEMS = 40


def cycles(n_users: int = 150, seed: int = 3) -> Interactions:
    """Each user walks the items in order from a random start: i, i+1, i+2, ..."""
    rng = random.Random(seed)
    events = []
    for u in range(n_users):
        start, t = rng.randrange(N_ITEMS), 1_000_000.0
        for step in range(rng.randint(8, 14)):
            events.append((f"u{u}", f"i{(start + step) % N_ITEMS}", t))
            t += 3600.0
    return Interactions.from_events(events, name="cycles")


def time_jumps(n_users: int = 200, seed: int = 4) -> Interactions:
    """After a short gap (minutes) the next item is i + 1; after a long one (days) i + 20:
    the order alone cannot tell which, the time since the last event can."""
    rng = random.Random(seed)
    events = []
    for u in range(n_users):
        item, t = rng.randrange(N_ITEMS), 1_000_000.0
        for _ in range(rng.randint(8, 12)):
            events.append((f"u{u}", f"i{item}", t))
            if rng.random() < 0.5:
                t, item = t + 600.0, (item + 1) % N_ITEMS
            else:
                t, item = t + 5 * 86400.0, (item + 20) % N_ITEMS
    return Interactions.from_events(events, name="jumps")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("rec-models")
    data = cycles()
    return {name: train(data, model=model, solver="euler", hidden=16, epochs=15, lr=1e-2,
                        max_len=20, out=out / f"{name}.pt")
            for name, model in (("pop", "pop"), ("gru", "gru"), ("ode", "ode"))}


def test_sequence_models_learn_an_order_popularity_cannot(trained: dict) -> None:
    pop, gru, ode = trained["pop"].metrics, trained["gru"].metrics, trained["ode"].metrics
    assert pop.hr < 0.5
    assert gru.hr > pop.hr + 0.4 and ode.hr > pop.hr + 0.4
    assert gru.ndcg > pop.ndcg + 0.3 and ode.ndcg > pop.ndcg + 0.3


def test_the_ode_model_uses_the_time_between_events(tmp_path: Path) -> None:
    data = time_jumps()
    settings = {"hidden": 16, "epochs": 20, "lr": 1e-2, "batch_size": 32, "max_len": 20,
                "negatives": 0}
    gru = train(data, model="gru", out=tmp_path / "gru.pt", **settings)
    ode = train(data, model="ode", solver="rk4", out=tmp_path / "ode.pt", **settings)
    gru_top1 = Recommender.load(gru.path).evaluate(data, k=1, negatives=0)["test"].hr
    ode_top1 = Recommender.load(ode.path).evaluate(data, k=1, negatives=0)["test"].hr
    assert gru_top1 < 0.75  # about a coin flip between i + 1 and i + 20
    assert ode_top1 > 0.9 and ode_top1 > gru_top1 + 0.2


def test_a_checkpoint_gives_back_the_same_scores(trained: dict) -> None:
    result = trained["ode"]
    rec = Recommender.load(result.path)
    assert rec.kind == "ode" and rec.config["solver"] == "euler" and len(rec.items) == N_ITEMS
    again = rec.evaluate(cycles())
    assert again["test"] == result.metrics and again["valid"] == result.valid
    assert rec.metrics["test"] == result.metrics.to_dict()
    first = rec.recommend(["i3", "i4", "i5"], [0.0, 3600.0, 7200.0], k=5)
    second = Recommender.load(result.path).recommend(["i3", "i4", "i5"], [0.0, 3600.0, 7200.0],
                                                     k=5)
    assert first == second
    assert first.items[0] == "i6"


def test_training_is_seeded(tmp_path: Path) -> None:
    data = cycles(n_users=60)
    runs = [train(data, model="ode", solver="rk4", hidden=8, epochs=2, seed=seed,
                  out=tmp_path / f"{n}.pt") for n, seed in enumerate((5, 5, 6))]
    states = [torch.load(r.path, weights_only=True)["state"] for r in runs]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not torch.equal(states[0]["embed.weight"], states[2]["embed.weight"])


def test_euler_and_rk4_are_different_solvers() -> None:
    torch.manual_seed(0)
    euler = build_model("ode", n_items=5, hidden=4, solver="euler", steps=1)
    rk4 = build_model("ode", n_items=5, hidden=4, solver="rk4", steps=1)
    torch.nn.init.normal_(euler.dynamics.w2)
    rk4.load_state_dict(euler.state_dict())
    h = torch.randn(2, 4)
    dt = torch.tensor([0.5, 2.0])
    with torch.no_grad():
        f = euler.dynamics.f(h)
        assert torch.allclose(euler.evolve(h, dt), h + dt[:, None] * f, atol=1e-6)
        assert bool((f.abs() <= 1).all())
        assert not torch.allclose(rk4.evolve(h, dt), euler.evolve(h, dt), atol=1e-4)
        assert torch.equal(rk4.evolve(h, torch.zeros(2)), h)  # no time, no change
    for solver in ("euler", "rk4"):  # requests step the same formulas without odeint
        for steps in (1, 3):
            model = build_model("ode", n_items=5, hidden=4, solver=solver, steps=steps)
            model.load_state_dict(euler.state_dict())
            with torch.no_grad():
                slow = model.evolve(h, dt)
                model.fast = True
                assert torch.allclose(model.evolve(h, dt), slow, atol=1e-6), (solver, steps)
            assert not torch.allclose(slow, h, atol=1e-3)
    with pytest.raises(RecError, match="solver 'dopri' is not one of rk4, euler"):
        build_model("ode", n_items=5, hidden=4, solver="dopri")
    with pytest.raises(RecError, match="model 'sasrec' is not one of ode, gru, pop"):
        train(cycles(n_users=5), model="sasrec")


def test_probabilities_entropy_and_margin(trained: dict) -> None:
    rec = Recommender.load(trained["gru"].path)
    everything = rec.recommend(["i1", "i2"], k=N_ITEMS)
    assert len(everything.items) == N_ITEMS - 2 and not {"i1", "i2"} & set(everything.items)
    p = torch.tensor(everything.scores, dtype=torch.float64)
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-5)
    assert everything.scores == sorted(everything.scores, reverse=True)
    entropy = float(-(p * p.log()).sum())
    assert everything.entropy == pytest.approx(entropy, abs=1e-4)
    assert everything.entropy_norm == pytest.approx(entropy / math.log(N_ITEMS - 2), abs=1e-4)
    top = rec.recommend(["i1", "i2"], k=3)
    assert top.items == everything.items[:3] and top.entropy == everything.entropy
    assert top.margin == pytest.approx(top.scores[0] - top.scores[1])
    assert top.titles == top.items  # no titles in this data: the ids stand in
    assert 0.0 < top.entropy_norm < 1.0
    seen = rec.recommend(["i1", "i2"], k=N_ITEMS, exclude_seen=False)
    assert len(seen.items) == N_ITEMS and seen.entropy_norm != everything.entropy_norm
    pop = Recommender.load(trained["pop"].path).recommend([], k=N_ITEMS)
    assert pop.entropy_norm > 0.95  # popularity over a near-uniform catalogue


def test_unknown_items_are_skipped_and_listed(trained: dict) -> None:
    rec = Recommender.load(trained["ode"].path)
    plain = rec.recommend(["i7", "i8"])
    mixed = rec.recommend(["nope", "i7", "i8", "also-not"])
    assert mixed.unknown == ["nope", "also-not"] and plain.unknown == []
    assert mixed.items == plain.items and mixed.scores == pytest.approx(plain.scores)
    empty = rec.recommend(["nope"], k=3)
    assert empty.unknown == ["nope"] and len(empty.items) == 3
    with pytest.raises(RecError, match="timestamps: 1 given for 2 history items"):
        rec.recommend(["i1", "i2"], [1.0])
    with pytest.raises(RecError, match="k must be at least 1"):
        rec.recommend(["i1"], k=0)


def test_the_kept_user_state_matches_recomputing_the_history(trained: dict) -> None:
    rec = Recommender.load(trained["ode"].path)
    items = ["i10", "i11", "i12", "i13"]
    times = [0.0, 900.0, 90_000.0, 91_000.0]
    assert rec.observe("ann", items[:2], times[:2]) == []
    assert rec.observe("ann", ["bogus", *items[2:]], [1.0, *times[2:]]) == ["bogus"]
    kept = rec.recommend_user("ann", k=5, now=100_000.0)
    full = rec.recommend(items, times, k=5, now=100_000.0)
    assert kept.items == full.items
    assert kept.scores == pytest.approx(full.scores, abs=1e-5)
    plain = Recommender.load(trained["ode"].path, fast_solver=False)
    assert plain.recommend(items, times, k=5, now=100_000.0).scores == \
        pytest.approx(full.scores, abs=1e-6)
    later = rec.recommend_user("ann", k=5, now=2_000_000.0)
    assert later.scores != pytest.approx(kept.scores, abs=1e-5)  # time moved the state
    rec.observe("bo", items[:3], times[:3])
    at_once = rec.recommend_user("bo", k=5, now=100_000.0, events=["bogus", items[3]],
                                 timestamps=[1.0, times[3]])
    assert at_once.items == kept.items and at_once.unknown == ["bogus"]
    assert at_once.scores == pytest.approx(kept.scores, abs=1e-5)
    rec.forget("ann")
    assert rec.recommend_user("ann", k=5) == rec.recommend([], k=5)


def test_a_checkpoint_that_does_not_fit_is_an_error(trained: dict, tmp_path: Path) -> None:
    from flowloom.tools.rec.checkpoint import read_checkpoint, write_checkpoint

    payload = read_checkpoint(trained["gru"].path)
    del payload["state"]["gru.weight_hh_l0"]
    broken = write_checkpoint(tmp_path / "broken.pt", payload)
    with pytest.raises(RecError, match=r"broken\.pt does not fit this flowloom's models "
                                       r"\(RuntimeError: .*\); train it again"):
        Recommender.load(broken)
    assert not list(tmp_path.glob("*.tmp"))
