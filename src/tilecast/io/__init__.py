"""The only package that opens files and URIs (local paths now; gs:// and s3:// through fsspec)."""
