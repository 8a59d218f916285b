"""The table of job kinds: the one place that lists them.

Each row says what the kind stores (typed params), how a request is checked and prepared (its
`plan_*` function), which handler does the work in the job process, and whether it needs the
compute slot and MLX. MCP tools, `distill()`, the CLI and the job process all go through here;
a new kind is a new row (see docs/ARCHITECTURE.md, "Adding a job kind").
"""

from __future__ import annotations

from typing import get_args

from nanodistill.amplify.plan import AmplifyParams, plan_amplify
from nanodistill.bases.job import ImportParams, plan_import
from nanodistill.distill.plan import DistillParams, plan_distill
from nanodistill.evaluate.plan import EvaluateParams, plan_evaluate
from nanodistill.improve.plan import ImproveParams, plan_improve
from nanodistill.jobs.kind import JobKind
from nanodistill.store.jobs import JobKindName
from nanodistill.train.export_job import ExportParams, plan_export
from nanodistill.train.plan import TrainParams, plan_train

KINDS: dict[str, JobKind] = {
    kind.name: kind
    for kind in (
        JobKind("amplify", AmplifyParams, plan_amplify, "nanodistill.amplify.job:run_amplify_job", False, False),
        JobKind("train", TrainParams, plan_train, "nanodistill.train.job:run_train_job", True, True),
        JobKind("evaluate", EvaluateParams, plan_evaluate, "nanodistill.evaluate.job:run_evaluate_job", True, True),
        JobKind("export", ExportParams, plan_export, "nanodistill.train.export_job:run_export_job", True, True),
        JobKind("import", ImportParams, plan_import, "nanodistill.bases.job:run_import_job", True, True),
        # distill's stages take the slot themselves (train/evaluate), so its amplify stage never holds it.
        JobKind("distill", DistillParams, plan_distill, "nanodistill.distill.job:run_distill_job", False, True),
        # improve, like distill, runs its train and evaluate stages as children that take the slot themselves.
        JobKind("improve", ImproveParams, plan_improve, "nanodistill.improve.job:run_improve_job", False, True),
    )
}
assert set(KINDS) == set(get_args(JobKindName)), "every job kind has one row, and every row a kind name"
