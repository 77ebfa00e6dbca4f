"""docs/reproduction.md and its figures from the results CSV (no TensorFlow)."""


def write_page(rows, settings, page, images):
    print(f"{len(rows)} rows")
