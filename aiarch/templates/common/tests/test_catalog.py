from shop.catalog import CATEGORIES, Catalog, synthetic_products


def test_the_catalog_is_the_same_for_the_same_seed_and_differs_for_another():
    assert synthetic_products(500, seed=0) == synthetic_products(500, seed=0)
    assert synthetic_products(500, seed=0) != synthetic_products(500, seed=1)


def test_catalog_holds_every_item_and_filters_by_category():
    catalog = Catalog(300)
    assert catalog.get(0)["id"] == 0
    assert catalog.get(299) is not None
    assert catalog.get(300) is None
    books = catalog.list("books", limit=100)
    assert books and all(p["category"] == "books" for p in books)
    assert [p["id"] for p in books] == sorted(p["id"] for p in books)
    assert {p["category"] for p in catalog.list(limit=100)} <= set(CATEGORIES)
    assert set(catalog.get_many([1, 2, 999])) == {1, 2}
