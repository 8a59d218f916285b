"""MCP Apps views (`io.modelcontextprotocol/ui`): a job view, a report card view and a dataset view.

Each view is one self-contained HTML file in this package, served as a `ui://nanodistill/...`
resource. Tools keep their registrations and results; `AppViews` stamps `_meta.ui.resourceUri` on
the bound tools only for a client that announced the extension, so any other client sees today's
tools/list and resources/list unchanged.
"""

from server.apps.views import CARD_URI, DATASET_URI, JOB_URI, AppViews, bound_tools, build_apps

__all__ = ["CARD_URI", "DATASET_URI", "JOB_URI", "AppViews", "bound_tools", "build_apps"]
