"""The demo database: a small outdoor-gear shop in SQLite, built by code with a fixed seed.

Seven tables with foreign keys and a few hundred rows, so `flows/examples/sql_analyst.json`
and `flowloom sql ask` work on a fresh machine with no dataset. Every name is made up here;
the data is flowloom's own (Apache-2.0), and the same seed always gives the same rows.

Example:
    >>> path = ensure_demo_db(Path("/tmp/fl-home"))
    >>> path.name
    'demo.sqlite'
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

__all__ = ["DEMO_DB_NAME", "DEMO_VERSION", "build_demo_db", "demo_url", "ensure_demo_db"]

DEMO_DB_NAME = "demo.sqlite"
DEMO_VERSION = 1  # stored as PRAGMA user_version; a different one is rebuilt
SEED = 20260611

DDL = """
CREATE TABLE categories (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL
);
CREATE TABLE suppliers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    country TEXT NOT NULL,
    email TEXT NOT NULL
);
CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    category_id INTEGER NOT NULL REFERENCES categories(id),
    supplier_id INTEGER NOT NULL REFERENCES suppliers(id),
    price REAL NOT NULL,
    stock INTEGER NOT NULL
);
CREATE TABLE employees (
    id INTEGER PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    title TEXT NOT NULL,
    hire_date TEXT NOT NULL,
    manager_id INTEGER REFERENCES employees(id)
);
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    email TEXT NOT NULL,
    city TEXT NOT NULL,
    country TEXT NOT NULL,
    joined_on TEXT NOT NULL,
    support_rep_id INTEGER REFERENCES employees(id)
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    order_date TEXT NOT NULL,
    status TEXT NOT NULL,
    total REAL NOT NULL
);
CREATE TABLE order_items (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders(id),
    product_id INTEGER NOT NULL REFERENCES products(id),
    quantity INTEGER NOT NULL,
    unit_price REAL NOT NULL
);
"""

CATEGORIES = [
    ("Tents", "Shelters for one to six people"),
    ("Sleeping Bags", "Down and synthetic bags for every season"),
    ("Backpacks", "Daypacks and expedition packs"),
    ("Footwear", "Hiking boots, trail runners and sandals"),
    ("Clothing", "Jackets, base layers and trousers"),
    ("Cooking", "Stoves, pots and utensils"),
    ("Navigation", "Compasses, maps and GPS units"),
    ("Climbing", "Ropes, harnesses and helmets"),
]

PRODUCTS = {
    "Tents": ["Ridgeline 2 Tent", "Summit Dome 3", "Featherlite Solo", "Basecamp 6 Family Tent",
              "Storm Tunnel 2", "Trekker Tarp Shelter", "Alpine Bivy"],
    "Sleeping Bags": ["Nordic Down -10", "Summer Breeze 15", "Trail Mummy 0", "Kids Explorer Bag",
                      "Double Comfort Bag", "Ultralight Quilt"],
    "Backpacks": ["Daytripper 20", "Ridge Runner 35", "Expedition 70", "Hydration Vest 10",
                  "Commuter Trail 25", "Kids Scout Pack", "Frameless Fastpack 40",
                  "Travel Duffel 60"],
    "Footwear": ["Granite Mid GTX", "Trail Dash Runner", "River Sandal", "Alpine Pro Boot",
                 "Approach Shoe Grip", "Camp Slipper", "Winter Trek Boot", "Kids Trail Shoe"],
    "Clothing": ["Stormshell Jacket", "Merino Base Top", "Fleece Midlayer", "Convertible Trousers",
                 "Down Puffy Vest", "Rain Poncho", "Sun Hoodie", "Thermal Leggings", "Wool Beanie"],
    "Cooking": ["Pocket Gas Stove", "Titanium Pot 750", "Spork Set", "Camp Kettle 1L",
                "Folding Grill", "Water Filter Straw", "Insulated Mug"],
    "Navigation": ["Baseplate Compass", "Handheld GPS 66", "Topo Map Set", "Altimeter Watch",
                   "Emergency Beacon", "Map Case"],
    "Climbing": ["Dynamic Rope 60m", "Sport Harness", "Climbing Helmet", "Quickdraw Set",
                 "Belay Device", "Chalk Bag", "Locking Carabiner 3-pack", "Crash Pad"],
}

PRICE_RANGE = {
    "Tents": (89, 649), "Sleeping Bags": (39, 429), "Backpacks": (29, 329),
    "Footwear": (25, 259), "Clothing": (15, 299), "Cooking": (6, 149),
    "Navigation": (12, 499), "Climbing": (9, 249),
}

SUPPLIERS = [
    ("Fjellwerk AS", "Norway"), ("Cascade Outfitters", "USA"), ("Alpenstoff GmbH", "Germany"),
    ("Tasman Trail Co", "New Zealand"), ("Sierra Forge", "USA"), ("Montagne Équipement", "France"),
    ("Dolomiti Tech", "Italy"), ("Highland Kit Ltd", "United Kingdom"),
    ("Kestrel Gear", "Canada"), ("Sakura Outdoor", "Japan"), ("Andes Textiles", "Peru"),
    ("Nordkapp Supply", "Sweden"),
]

FIRST_NAMES = [
    "Emma", "Liam", "Olivia", "Noah", "Ava", "Lucas", "Mia", "Elias", "Sofia", "Hugo",
    "Amelia", "Mateo", "Freya", "Oscar", "Ingrid", "Tomás", "Chloé", "Jonas", "Aiko", "Ravi",
    "Priya", "Kofi", "Léa", "Marta", "Sven", "Nora", "Diego", "Hannah", "Yusuf", "Ella",
]
LAST_NAMES = [
    "Andersen", "Brooks", "Castillo", "Dubois", "Eriksson", "Fischer", "García", "Hughes",
    "Ivanova", "Jensen", "Kowalski", "Larsen", "Moreau", "Nakamura", "O'Connor", "Patel",
    "Quinn", "Rossi", "Schmidt", "Tanaka", "Újvári", "Varga", "Walsh", "Xu", "Young", "Zimmer",
]
CITIES = [
    ("Oslo", "Norway"), ("Bergen", "Norway"), ("Denver", "USA"), ("Seattle", "USA"),
    ("Boston", "USA"), ("Munich", "Germany"), ("Berlin", "Germany"), ("Lyon", "France"),
    ("Paris", "France"), ("Turin", "Italy"), ("Edinburgh", "United Kingdom"),
    ("London", "United Kingdom"), ("Vancouver", "Canada"), ("Toronto", "Canada"),
    ("Wellington", "New Zealand"), ("Sapporo", "Japan"), ("Stockholm", "Sweden"),
    ("Madrid", "Spain"),
]
EMPLOYEES = [
    ("Greta", "Holm", "General Manager", None),
    ("Marcus", "Bell", "Sales Manager", 1),
    ("Anika", "Rao", "Support Manager", 1),
    ("Paul", "Svensson", "Sales Agent", 2),
    ("Julia", "Meyer", "Sales Agent", 2),
    ("Kenji", "Mori", "Sales Agent", 2),
    ("Sara", "Lindqvist", "Support Agent", 3),
    ("Tom", "Keller", "Support Agent", 3),
]
STATUSES = ["delivered"] * 8 + ["shipped"] * 2 + ["cancelled", "pending"]


def _day(rng: random.Random, start: date, end: date) -> str:
    return (start + timedelta(days=rng.randrange((end - start).days + 1))).isoformat()


def _rows(seed: int = SEED) -> dict[str, Sequence[tuple[object, ...]]]:
    """Every table's rows, from `seed` alone."""
    rng = random.Random(seed)
    rows: dict[str, Sequence[tuple[object, ...]]] = {}
    rows["categories"] = [(i, name, desc) for i, (name, desc) in enumerate(CATEGORIES, 1)]
    rows["suppliers"] = [
        (i, name, country, "orders@" + "".join(c for c in name.lower() if c.isalnum())[:14]
         + ".example")
        for i, (name, country) in enumerate(SUPPLIERS, 1)]
    products: list[tuple[int, str, int, int, float, int]] = []
    for cat_id, (cat, _) in enumerate(CATEGORIES, 1):
        low, high = PRICE_RANGE[cat]
        for name in PRODUCTS[cat]:
            price = round(rng.uniform(low, high)) - 0.01
            products.append((len(products) + 1, name, cat_id, rng.randint(1, len(SUPPLIERS)),
                             price, rng.choice([0, 3, 8, 12, 20, 35, 50, 75, 120])))
    rows["products"] = products
    rows["employees"] = [
        (i, first, last, title, _day(rng, date(2015, 1, 1), date(2022, 12, 31)), manager)
        for i, (first, last, title, manager) in enumerate(EMPLOYEES, 1)]
    customers: list[tuple[object, ...]] = []
    for i in range(1, 81):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        city, country = rng.choice(CITIES)
        handle = "".join(c for c in f"{first}.{last}".lower() if c.isascii() and
                         (c.isalnum() or c == "."))
        customers.append((i, first, last, f"{handle}{i}@mail.example", city, country,
                          _day(rng, date(2021, 1, 1), date(2024, 6, 30)),
                          rng.choice([4, 5, 6, 7, 8, None] if i % 9 else [None])))
    rows["customers"] = customers
    orders: list[tuple[object, ...]] = []
    items: list[tuple[int, int, int, int, float]] = []
    prices = {p[0]: float(p[4]) for p in products}
    for order_id in range(1, 301):
        customer = rng.randint(1, len(customers))
        lines: list[tuple[int, int, int, int, float]] = []
        for product in rng.sample(range(1, len(products) + 1), rng.choice([1, 1, 2, 2, 3, 4])):
            quantity = rng.choice([1, 1, 1, 2, 2, 3, 5])
            lines.append((len(items) + len(lines) + 1, order_id, product, quantity,
                          prices[product]))
        items.extend(lines)
        total = round(sum(q * p for *_, q, p in lines), 2)
        orders.append((order_id, customer, _day(rng, date(2023, 1, 1), date(2024, 12, 31)),
                       rng.choice(STATUSES), total))
    rows["orders"] = orders
    rows["order_items"] = items
    return rows


def build_demo_db(path: Path, seed: int = SEED) -> Path:
    """Write the demo database to `path` (replaced atomically if it exists)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".demo-", suffix=".sqlite", dir=path.parent)
    os.close(fd)
    try:
        with sqlite3.connect(tmp) as conn:
            conn.executescript(DDL)
            for table, table_rows in _rows(seed).items():
                marks = ", ".join("?" * len(table_rows[0]))
                conn.executemany(f"INSERT INTO {table} VALUES ({marks})", table_rows)
            conn.execute(f"PRAGMA user_version = {DEMO_VERSION}")
        conn.close()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _version(path: Path) -> int | None:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def ensure_demo_db(home: Path) -> Path:
    """`<home>/demo.sqlite`, built on first use (or when it is from another version)."""
    path = Path(home) / DEMO_DB_NAME
    if not path.exists() or _version(path) != DEMO_VERSION:
        build_demo_db(path)
    return path


def demo_url(home: Path) -> str:
    """The SQLAlchemy URL of the demo database, built if missing."""
    return f"sqlite:///{ensure_demo_db(home)}"
