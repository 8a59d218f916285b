"""The fast BLAS for mlx-cpu on Linux: build, self-check, fallbacks, same numbers, doctor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nanodistill.platform.blas import (
    SHIM_NAME,
    blas_status,
    build_shim,
    default_blas_threads,
    detect,
    fast_blas_env,
    find_compiler,
    physical_cores,
    preload_env,
    self_check,
    shim_dir,
)
from nanodistill.settings import Settings, load_settings
from nanodistill.testing.tiny_student import build_tiny_student
from server.cli import main

TARGET, WHY_NOT = detect()
needs_slow_blas = pytest.mark.skipif(TARGET is None, reason=f"fast BLAS not applicable: {WHY_NOT}")
needs_compiler = pytest.mark.skipif(find_compiler() is None, reason="no C compiler")

# A shim that loads and claims to be fast, but multiplies every matrix into zeros.
ZERO_SHIM = r"""
#include <string.h>
int nanodistill_blas_fast(void) { return 1; }
static void zero(void *c, int rows, int cols, int ld, int row_major, int size) {
  int outer = row_major == 101 ? rows : cols, inner = row_major == 101 ? cols : rows;
  for (int i = 0; i < outer; i++) memset((char *)c + (long)i * ld * size, 0, (size_t)inner * size);
}
void cblas_sgemm(int o, int ta, int tb, int m, int n, int k, float al, const float *a, int lda,
                 const float *b, int ldb, float be, float *c, int ldc) { zero(c, m, n, ldc, o, 4); }
void cblas_dgemm(int o, int ta, int tb, int m, int n, int k, double al, const double *a, int lda,
                 const double *b, int ldb, double be, double *c, int ldc) { zero(c, m, n, ldc, o, 8); }
void cblas_cgemm(int o, int ta, int tb, int m, int n, int k, const void *al, const void *a, int lda,
                 const void *b, int ldb, const void *be, void *c, int ldc) { zero(c, m, n, ldc, o, 8); }
"""

# A few LoRA steps on the tiny student; prints the losses and whether the shim is loaded. The
# learning rate is a realistic one: at 1e-2, Adam turns float rounding noise in near-zero
# gradients into full-size steps, and any two BLAS (or summation orders) drift apart.
TRAIN_SCRIPT = r"""
import json, sys
import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx_lm import load
from mlx_lm.tuner.utils import linear_to_lora_layers

model, tokenizer = load(sys.argv[1])[:2]
mx.random.seed(0)
model.freeze()
linear_to_lora_layers(model, 2, {"rank": 8, "scale": 10.0, "dropout": 0.0})
text = "The movie was wonderful, the acting was great and I loved the ending. " * 4
ids = mx.array([tokenizer.encode(text)[:64]] * 4)

def loss_fn(model, x):
    return nn.losses.cross_entropy(model(x[:, :-1]), x[:, 1:]).mean()

step = nn.value_and_grad(model, loss_fn)
optimizer = optim.Adam(learning_rate=1e-4)
losses = []
for _ in range(6):
    loss, grads = step(model, ids)
    optimizer.update(model, grads)
    mx.eval(model.parameters(), optimizer.state)
    losses.append(loss.item())
with open("/proc/self/maps") as maps:
    shim = any(line.rstrip().endswith("SHIM_NAME") for line in maps)
print(json.dumps({"losses": losses, "shim": shim}))
""".replace("SHIM_NAME", SHIM_NAME)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A home of its own, with no shim built yet (for the build, cache and fallback tests)."""
    monkeypatch.setenv("NANODISTILL_HOME", str(tmp_path / "fresh-home"))
    monkeypatch.delenv("NANODISTILL_FAST_BLAS", raising=False)
    return load_settings()


@pytest.fixture
def shared(home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A home that shares the session's already built and checked shim."""
    monkeypatch.delenv("NANODISTILL_FAST_BLAS", raising=False)
    return load_settings()


@needs_slow_blas
@needs_compiler
def test_fast_path_builds_passes_its_self_check_and_is_cached(settings: Settings) -> None:
    env = fast_blas_env(settings)
    assert TARGET is not None
    shim = shim_dir(settings, TARGET) / SHIM_NAME
    assert env["LD_PRELOAD"].split(":")[0] == str(shim)
    assert int(env.get("OPENBLAS_NUM_THREADS", "1")) >= 1
    verdict = json.loads((shim.parent / "verdict.json").read_text())
    assert verdict["passed"] is True
    assert max(verdict["worst_error"].values()) < 1e-5
    assert any(name.startswith("float64") for name in verdict["worst_error"])

    built_at = shim.stat().st_mtime_ns
    assert fast_blas_env(settings) == env
    assert shim.stat().st_mtime_ns == built_at
    status = blas_status(settings)
    assert (status.applicable, status.self_check, status.fallback_reason) == (True, "passed", None)
    assert status.library == str(TARGET.fast_lib)
    assert status.shim == str(shim)
    assert not status.active

    assert self_check(shim).passed


@needs_slow_blas
@needs_compiler
def test_self_check_rejects_a_shim_that_computes_wrong_numbers(tmp_path: Path) -> None:
    compiler = find_compiler()
    assert compiler is not None
    bad = tmp_path / SHIM_NAME
    assert build_shim(ZERO_SHIM, bad, compiler) is None
    result = self_check(bad)
    assert not result.passed
    assert result.reason is not None
    assert "disagree" in result.reason
    for label in ("float32 plain", "float32 a.T b.T", "float64 large", "float32 addmm"):
        assert label in result.reason


@needs_slow_blas
@pytest.mark.parametrize("missing", ["CC", "PATH"])
def test_no_compiler_falls_back_to_the_stock_blas(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, missing: str
) -> None:
    if missing == "CC":
        monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    else:
        monkeypatch.delenv("CC", raising=False)
        monkeypatch.setenv("PATH", str(tmp_path))
    assert fast_blas_env(settings) == {}
    status = blas_status(settings)
    assert status.applicable
    assert status.compiler is None
    assert status.self_check == "not run"
    assert status.library == status.stock_library
    assert status.fallback_reason is not None
    assert ("no-such-cc" if missing == "CC" else "no C compiler") in status.fallback_reason


@needs_slow_blas
def test_opt_out_keeps_the_stock_blas(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANODISTILL_FAST_BLAS", "0")
    disabled = load_settings()
    assert fast_blas_env(disabled) == {}
    status = blas_status(disabled)
    assert not status.enabled
    assert status.fallback_reason is not None
    assert "NANODISTILL_FAST_BLAS" in status.fallback_reason
    assert not (disabled.home / "blas").exists()


def test_thread_count_leaves_a_core_free_unless_the_user_chose(tmp_path: Path) -> None:
    shim = tmp_path / SHIM_NAME
    assert default_blas_threads() == max(1, physical_cores() - 1)
    env = preload_env(shim, {"LD_PRELOAD": f"/other.so:{shim}"})
    assert env == {"LD_PRELOAD": f"{shim}:/other.so", "OPENBLAS_NUM_THREADS": str(default_blas_threads())}
    assert preload_env(shim, {"OMP_NUM_THREADS": "3"}) == {"LD_PRELOAD": str(shim)}


def test_detection_does_not_import_mlx(shared: Settings) -> None:
    code = (
        "import sys\n"
        "from nanodistill.settings import load_settings\n"
        "from nanodistill.platform.blas import blas_status, detect\n"
        "detect(); blas_status(load_settings())\n"
        "print('mlx' in sys.modules, 'mlx.core' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@needs_slow_blas
@needs_compiler
def test_reexec_preloads_the_shim_once(shared: Settings) -> None:
    code = (
        "import os\n"
        "print('start', flush=True)\n"
        "from nanodistill.settings import load_settings\n"
        "from nanodistill.platform.blas import blas_status, reexec_with_fast_blas\n"
        "settings = load_settings()\n"
        "reexec_with_fast_blas(settings)\n"
        "reexec_with_fast_blas(settings)\n"
        "print('active', blas_status(settings).active)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert out.stdout.split("\n")[:-1] == ["start", "start", "active True"]


@needs_slow_blas
@needs_compiler
def test_training_gives_the_same_losses_with_and_without_the_fast_path(shared: Settings, tmp_path: Path) -> None:
    student = build_tiny_student(tmp_path / "tiny", hidden_size=64, num_layers=2)
    fast_env = fast_blas_env(shared)
    assert fast_env
    runs = {}
    for name, extra in (("stock", {}), ("fast", fast_env)):
        proc = subprocess.run(
            [sys.executable, "-c", TRAIN_SCRIPT, str(student)],
            env={**os.environ, **extra},
            capture_output=True,
            text=True,
            check=True,
        )
        runs[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (runs["stock"]["shim"], runs["fast"]["shim"]) == (False, True)
    stock, fast = runs["stock"]["losses"], runs["fast"]["losses"]
    assert stock[-1] < stock[0]
    assert fast == pytest.approx(stock, rel=1e-5)


@needs_slow_blas
@needs_compiler
def test_doctor_json_reports_the_active_blas(shared: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    blas = report["blas"]
    assert TARGET is not None
    assert blas["self_check"] == "passed"
    assert blas["library"] == str(TARGET.fast_lib)
    assert blas["stock_library"] == str(TARGET.stock_lib)
    assert blas["fast_gflops"] > 0
    assert blas["stock_gflops"] > 0
    assert report["device"]["device"] == "cpu"
    assert report["packages"]["mlx_build"] == "cpu"
    assert report["home"]["path"] == str(shared.home)
    assert report["compiler"]["command"]

    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    assert "fast_gflops" in text
    assert "GFLOP/s" in text
