"""The front ends this installation runs: importing this module registers each of them.

`itemrec.experiment` never imports a front end. Each front end registers its `FrontEnd` object
under its config's `task:` name when its `frontend` module is imported (`register(...)`); this
module is the one place that lists them, and the CLI imports it. A new front end is one more
import here (see the architecture page of the docs).
"""

from __future__ import annotations

from itemrec.experiment.frontend import FRONT_ENDS, front_end
from itemrec.recsys.frontend import FRONT_END as RECSYS
from retrieval.frontend import FRONT_END as RETRIEVAL

__all__ = ["FRONT_ENDS", "RECSYS", "RETRIEVAL", "front_end"]
