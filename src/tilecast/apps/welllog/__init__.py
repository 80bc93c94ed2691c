"""The well-log digitiser: curves lifted off scanned raster logs, written back as LAS 2.0."""
