"""Bulk archive captioning: walk a folder (`walk`), run it resumably on the embedded default (`caption`) or
against a running service (`remote`), with S3 prefixes mirrored in and out (`s3_mirror`)."""
