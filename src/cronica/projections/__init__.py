"""Projections: read models built from the global log, rebuildable from zero.

- :class:`Projection` and :func:`on`: define a read model (tables, views, handlers).
- :class:`Projector`: run projections, checkpointed in the read model's own transactions.
- :func:`projection_status`: position, lag, state and rebuild progress of each projection.
- :func:`projection_as_of`: a projection as it stood at a past position or time.
"""

from cronica.projections.as_of import projection_as_of
from cronica.projections.base import Projection, ProjectionWriter, Retention, on
from cronica.projections.catalog import Catalog, ProjectionAction, ProjectionRecord
from cronica.projections.runner import Projector
from cronica.projections.status import ProjectionStatus, RebuildProgress, projection_status

__all__ = [
    "Catalog",
    "Projection",
    "ProjectionAction",
    "ProjectionRecord",
    "ProjectionStatus",
    "ProjectionWriter",
    "Projector",
    "RebuildProgress",
    "Retention",
    "on",
    "projection_as_of",
    "projection_status",
]
