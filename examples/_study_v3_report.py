"""Page section and figures of study v3 (placeholder until the report lands)."""


def write_section(rows, settings, page, images):
    pass
