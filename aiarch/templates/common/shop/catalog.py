"""The product catalog: SQLite in memory, filled with a deterministic synthetic catalog."""

from __future__ import annotations

import random
import sqlite3
import threading
from typing import TypedDict

CACHE_PRODUCTS = 65_536  # products kept in memory by get_many: bounded whatever the catalog's size

CATEGORIES = (
    "books",
    "electronics",
    "garden",
    "kitchen",
    "toys",
    "sports",
    "beauty",
    "music",
    "games",
    "office",
    "pets",
    "tools",
)
_ADJECTIVES = (
    "Classic",
    "Compact",
    "Deluxe",
    "Eco",
    "Essential",
    "Handmade",
    "Modern",
    "Portable",
    "Premium",
    "Rugged",
    "Smart",
    "Vintage",
    "Wireless",
    "Organic",
    "Pro",
    "Mini",
)
_NOUNS = {
    "books": ("Novel", "Cookbook", "Atlas", "Guide", "Anthology"),
    "electronics": ("Speaker", "Headphones", "Charger", "Camera", "Monitor"),
    "garden": ("Planter", "Hose", "Trowel", "Seed Kit", "Lantern"),
    "kitchen": ("Kettle", "Skillet", "Knife", "Grinder", "Teapot"),
    "toys": ("Puzzle", "Robot", "Kite", "Blocks", "Plush"),
    "sports": ("Racket", "Ball", "Yoga Mat", "Bottle", "Helmet"),
    "beauty": ("Serum", "Brush", "Balm", "Mirror", "Soap"),
    "music": ("Ukulele", "Vinyl", "Metronome", "Drum Pad", "Harmonica"),
    "games": ("Board Game", "Card Deck", "Controller", "Dice Set", "Chess Set"),
    "office": ("Notebook", "Desk Lamp", "Stapler", "Pen Set", "Planner"),
    "pets": ("Leash", "Feeder", "Cat Tree", "Chew Toy", "Bed"),
    "tools": ("Drill", "Wrench", "Level", "Toolbox", "Saw"),
}


class Product(TypedDict):
    id: int
    name: str
    category: str
    price: float


def synthetic_products(n_items: int, seed: int = 0) -> list[tuple[int, str, str, float]]:
    """The same catalog for the same (n_items, seed), on every machine."""
    rng = random.Random(seed)
    rows = []
    for product_id in range(n_items):
        category = CATEGORIES[rng.randrange(len(CATEGORIES))]
        name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS[category])}"
        price = round(rng.uniform(1.0, 500.0), 2)
        rows.append((product_id, name, category, price))
    return rows


class Catalog:
    """Read-only after construction; safe to call from the event loop and from threads."""

    def __init__(self, n_items: int, seed: int = 0) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute(
            "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL, price REAL NOT NULL)"
        )
        self._db.execute("CREATE INDEX products_by_category ON products (category, id)")
        self._db.executemany("INSERT INTO products VALUES (?, ?, ?, ?)", synthetic_products(n_items, seed))
        self._db.commit()
        self.size = n_items
        self._cache: dict[int, Product] = {}

    def get(self, product_id: int) -> Product | None:
        with self._lock:
            row = self._db.execute("SELECT id, name, category, price FROM products WHERE id = ?", (product_id,)).fetchone()
        return _product(row) if row else None

    def get_many(self, product_ids: list[int]) -> dict[int, Product]:
        """Products by id, through a bounded cache (the dicts are shared: do not modify them): recommendations keep
        naming the same few thousand products, and a query costs more than the rest of a
        recommendation's join."""
        found = {pid: product for pid in product_ids if (product := self._cache.get(pid)) is not None}
        missing = [pid for pid in product_ids if pid not in found]
        if missing:
            marks = ",".join("?" * len(missing))
            with self._lock:
                rows = self._db.execute(
                    f"SELECT id, name, category, price FROM products WHERE id IN ({marks})",  # noqa: S608 - only "?" placeholders
                    missing,
                ).fetchall()
            for row in rows:
                found[row[0]] = product = _product(row)
                if len(self._cache) < CACHE_PRODUCTS:
                    self._cache[row[0]] = product
        return found

    def list(self, category: str | None = None, limit: int = 20, offset: int = 0) -> list[Product]:
        query = "SELECT id, name, category, price FROM products"
        params: tuple[str, ...] = ()
        if category is not None:
            query += " WHERE category = ?"
            params = (category,)
        query += " ORDER BY id LIMIT ? OFFSET ?"
        with self._lock:
            rows = self._db.execute(query, (*params, limit, offset)).fetchall()
        return [_product(row) for row in rows]

    def close(self) -> None:
        self._db.close()


def _product(row: tuple[int, str, str, float]) -> Product:
    return {"id": row[0], "name": row[1], "category": row[2], "price": row[3]}
