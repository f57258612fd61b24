"""Archiving streams to cold storage (seed 1.7.5): Parquet files with a manifest and checksums,
read transparently, restored on demand. See :mod:`cronica.archive.archiver`."""

from cronica.archive.archiver import (
    ARCHIVE_DIR_VARIABLE,
    ArchivePolicy,
    Archiver,
    ArchiveReport,
    RestoreReport,
    default_directory,
)
from cronica.archive.files import ArchiveFileError

__all__ = [
    "ARCHIVE_DIR_VARIABLE",
    "ArchiveFileError",
    "ArchivePolicy",
    "ArchiveReport",
    "Archiver",
    "RestoreReport",
    "default_directory",
]
