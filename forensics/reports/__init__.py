"""Reports: a self-contained HTML page describing a model and, with labelled data, how it does on it.

:func:`build_report` gathers everything; :mod:`~forensics.reports.plots` draws the figures,
:mod:`~forensics.reports.importance` computes feature and block importance and the block ablation,
:mod:`~forensics.reports.html` lays out the page.
"""

from forensics.reports.build import build_report, REPORT_SECTIONS

__all__ = ["build_report", "REPORT_SECTIONS"]
