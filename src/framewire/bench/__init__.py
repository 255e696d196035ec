"""`framewire bench`: run the real services locally and measure HTTP against Redis."""

from framewire.bench.command import bench

__all__ = ["bench"]
