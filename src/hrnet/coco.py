"""The COCO index of pycocotools, built quietly, for every task that reads or scores COCO-format data.

``pycocotools.coco.COCO`` prints progress lines while it indexes; a library must not write to standard
output behind its caller's back (it would corrupt ``--json -`` output, for one), so the index is
always built here, from a dict the task has already read and checked with errors that name its file.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

from pycocotools.coco import COCO


def coco_index(data: dict[str, Any]) -> COCO:
    """A ``COCO`` object over an already-parsed COCO dict (``images``, ``annotations``, ``categories``).

    The dict is used as it is (not copied): callers pass what their own reader returned.
    """
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco
