"""A made-up film catalogue and its viewers, drawn from a known process, for the demo and
the tests (MovieLens may not be shipped).

Ten genres of four five-part series each (200 films, "Glass Harbor", "Glass Harbor II",
...). Each viewer watches in sessions: minutes to hours apart within a session, days
apart between them. A viewer keeps to a current genre and, within it, usually goes on
with a series (the next part after the last one watched) or else picks a popular film;
the chance of drifting to a neighbouring genre grows with the time since the last film
(small within a session, likely after a week away). So order matters (series) and time
matters (drift): a popularity list, a sequence model and a continuous-time model can each
be told apart on it. Seeded: the same arguments give the same events.

>>> events, titles, genres = generate(seed=7, n_users=50)               # doctest: +SKIP
>>> events[0]                                                            # doctest: +SKIP
('u0000', 'm137', 1735790400.0)
"""

from __future__ import annotations

import math
import random
from pathlib import Path

__all__ = ["GENRES", "SEED", "generate", "write_atomic_files"]

SEED = 20260611
START = 1_735_689_600  # 2025-01-01T00:00:00Z
GENRES = ("Sci-Fi", "Drama", "Comedy", "Thriller", "Documentary", "Animation", "Romance",
          "Horror", "Western", "Musical")
# Drift goes to a neighbour: Sci-Fi <-> Thriller <-> Horror, Drama <-> Romance, ...
NEIGHBOURS = {0: (3, 5), 1: (6, 4), 2: (5, 6), 3: (0, 7), 4: (1, 8), 5: (2, 0), 6: (1, 9),
              7: (3, 0), 8: (4, 3), 9: (6, 2)}
WORDS = {
    "Sci-Fi": ("Star Harbor", "Nebula Run", "Orbit Zero", "The Quiet Machine"),
    "Drama": ("Paper Houses", "The Long Winter", "Small Hours", "Salt and Iron"),
    "Comedy": ("Uncle Bram", "Office of Lost Things", "Two Left Feet", "The Wrong Wedding"),
    "Thriller": ("Cold Ledger", "Blind Signal", "The Ninth Floor", "Glass Harbor"),
    "Documentary": ("Rivers of Ice", "Hidden Kitchens", "The Bee Keepers", "Deep Roads"),
    "Animation": ("Pip and the Moon", "Cloud Bakers", "Robo Pals", "The Paper Fox"),
    "Romance": ("Letters to June", "Summer in Porto", "The Last Dance", "Second Spring"),
    "Horror": ("The Hollow", "Night Tide", "Whisper House", "Red Lanterns"),
    "Western": ("Dust Creek", "The Long Rider", "Iron Trail", "Silver Mesa"),
    "Musical": ("Broadway Lights", "Sing It Back", "Tap Street", "Harmony Hall"),
}
PARTS = ("", " II", " III", " IV", " V")
SERIES_PER_GENRE, PARTS_PER_SERIES = 4, 5


def _catalogue() -> tuple[list[str], dict[str, str], dict[str, str]]:
    ids, titles, genres = [], {}, {}
    for g, genre in enumerate(GENRES):
        for s, series in enumerate(WORDS[genre]):
            for p, part in enumerate(PARTS):
                item = f"m{(g * SERIES_PER_GENRE + s) * PARTS_PER_SERIES + p + 1:03d}"
                ids.append(item)
                titles[item] = series + part
                genres[item] = genre
    return ids, titles, genres


def generate(seed: int = SEED, n_users: int = 500, min_events: int = 12,
             max_events: int = 40) -> tuple[list[tuple[str, str, float]], dict[str, str],
                                              dict[str, str]]:
    """(user, item, timestamp) events in user and time order, item titles and genres."""
    rng = random.Random(seed)
    ids, titles, genres = _catalogue()
    per_genre = SERIES_PER_GENRE * PARTS_PER_SERIES
    # Genre appeal (a few genres are much more watched) and film appeal within a genre.
    genre_weight = [1.0 / (g + 2) ** 0.7 for g in range(len(GENRES))]
    rng.shuffle(genre_weight)
    film_weight = [1.0 / (p + 1) ** 1.2 + 0.02 for p in range(per_genre)]
    events: list[tuple[str, str, float]] = []
    for u in range(n_users):
        user = f"u{u:04d}"
        genre = rng.choices(range(len(GENRES)), weights=genre_weight)[0]
        t = float(START + rng.randrange(0, 60 * 86400))
        seen: set[int] = set()
        last: int | None = None
        gap = 0.0
        for _ in range(rng.randint(min_events, max_events)):
            p_drift = 1.0 - math.exp(-gap / (5 * 86400.0))  # x 0.9: 16% a day, 68% a week
            if last is not None and rng.random() < 0.9 * p_drift:
                genre = rng.choice(NEIGHBOURS[genre])
            item = _pick(rng, genre, last, seen, film_weight, per_genre)
            if item is None:  # watched the whole genre: move on
                genre = rng.choice(NEIGHBOURS[genre])
                item = _pick(rng, genre, None, seen, film_weight, per_genre)
                if item is None:
                    break
            seen.add(item)
            events.append((user, ids[item], t))
            last = item
            if rng.random() < 0.6:  # same session: 5 minutes to 3 hours
                gap = 60.0 * math.exp(rng.uniform(math.log(5), math.log(180)))
            else:  # another day: half a day to three weeks
                gap = 86400.0 * math.exp(rng.uniform(math.log(0.5), math.log(21)))
            t += round(gap)
    return events, titles, genres


def _pick(rng: random.Random, genre: int, last: int | None, seen: set[int],
          film_weight: list[float], per_genre: int) -> int | None:
    base = genre * per_genre
    if last is not None and last // per_genre == genre and rng.random() < 0.6:
        follow = last + 1  # the next part of the same series
        if follow % PARTS_PER_SERIES and follow not in seen:
            return follow
    choices = [base + p for p in range(per_genre) if base + p not in seen]
    if not choices:
        return None
    return rng.choices(choices, weights=[film_weight[c - base] for c in choices])[0]


def write_atomic_files(folder: Path, name: str = "rec-demo", **kwargs: int) -> list[Path]:
    """Write `<name>.inter` and `<name>.item` (RecBole atomic files) from `generate`."""
    events, titles, genres = generate(**kwargs)
    folder.mkdir(parents=True, exist_ok=True)
    inter = folder / f"{name}.inter"
    item = folder / f"{name}.item"
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    lines += [f"{u}\t{i}\t{int(ts)}" for u, i, ts in events]
    inter.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = ["item_id:token\ttitle:token_seq\tgenre:token"]
    rows += [f"{i}\t{titles[i]}\t{genres[i]}" for i in titles]
    item.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return [inter, item]
