"""MCP Apps views (ui://nanodistill/job, card, dataset) rendered in real headless Chromium.

The host is `tests/apphost/host.html`: a sandboxed iframe per view and `@modelcontextprotocol/ext-apps`'
AppBridge (from node_modules, `npm ci --prefix tests/apphost`), served by a small HTTP server on
127.0.0.1. The host's MCP client is a real session with the nanodistill server that announces the
Apps extension: the page's tool calls go through Playwright's exposed `hostCallTool` to it. Each
view's HTML is read from the server (`resources/read` of the tool's `_meta.ui.resourceUri`), and the
view gets the tool's real result, as a host would hand it over. Screenshots go under tmp_path.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from mcp import Client
from mcp.client import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID

from nanodistill.testing import toy_sentiment
from nanodistill.testing.teacher_server import TeacherServer
from nanodistill.testing.tiny_student import build_tiny_student
from server.app import build_server
from server.apps import CARD_URI, DATASET_URI, JOB_URI, bound_tools
from server.apps.views import view_html
from tests.mcp_helpers import call

pytestmark = pytest.mark.anyio

CHROMIUM = Path("/usr/bin/chromium")
APPHOST = Path(__file__).parent / "apphost"
BRIDGE = APPHOST / "node_modules/@modelcontextprotocol/ext-apps/dist/src/app-bridge.js"
VIEW_BUDGET = 40 * 1024
APPS = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
SEEDS = [{"input": text, "output": label} for text, label in toy_sentiment.SEEDS]


def _browser_missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install playwright)"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if not BRIDGE.exists():
        return f"no ext-apps AppBridge at {BRIDGE} (npm ci --prefix tests/apphost)"
    return None


needs_browser = pytest.mark.skipif(_browser_missing() is not None, reason=_browser_missing() or "")


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 120.0) -> None:
    """Poll `check` until it holds; fail naming `what` after a generous deadline."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"


# -- views as resources, and clients without Apps ----------------------------------------------------


def test_each_view_is_one_self_contained_file_under_the_budget() -> None:
    for uri in (JOB_URI, CARD_URI, DATASET_URI):
        html = view_html(uri)
        assert len(html.encode("utf-8")) <= VIEW_BUDGET, f"{uri} is over {VIEW_BUDGET} bytes"
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html), f"{uri} loads something from outside"
        assert "default-src 'none'" in html, f"{uri} lacks its strict CSP"


async def test_client_without_apps_gets_todays_lists_and_results(home: Path) -> None:
    async with Client(build_server()) as plain, Client(build_server(), extensions=[APPS]) as apps:
        await call(plain, "create_dataset", name="reviews", examples=SEEDS, instruction=toy_sentiment.INSTRUCTION)
        plain_tools = {t.name: t.model_dump(by_alias=True, exclude_none=True) for t in (await plain.list_tools()).tools}
        apps_tools = {t.name: t.model_dump(by_alias=True, exclude_none=True) for t in (await apps.list_tools()).tools}

        bindings = bound_tools()
        assert not any("_meta" in entry for entry in plain_tools.values())
        assert set(apps_tools) - set(plain_tools) == {"get_report_card"}
        for name, entry in apps_tools.items():
            ui = entry.get("_meta", {}).get("ui")
            assert (ui or {}).get("resourceUri") == bindings.get(name), name
            if name in plain_tools:
                assert {k: v for k, v in entry.items() if k != "_meta"} == plain_tools[name]
        assert apps_tools["get_report_card"]["_meta"]["ui"]["visibility"] == ["app"]

        plain_uris = {str(r.uri) for r in (await plain.list_resources()).resources}
        apps_uris = {str(r.uri) for r in (await apps.list_resources()).resources}
        assert apps_uris - plain_uris == {JOB_URI, CARD_URI, DATASET_URI}
        assert not any(uri.startswith("ui://") for uri in plain_uris)
        view = (await apps.read_resource(JOB_URI)).contents[0]
        assert view.mime_type == APP_MIME_TYPE

        with_apps = await apps.call_tool("get_dataset", {"dataset": "reviews", "sample": 3})
        without = await plain.call_tool("get_dataset", {"dataset": "reviews", "sample": 3})
        assert with_apps.model_dump() == without.model_dump()
        assert with_apps.structured_content and len(with_apps.structured_content["sample"]) == 3


# -- the host page in Chromium ---------------------------------------------------------------------


class _Files(http.server.SimpleHTTPRequestHandler):
    extensions_map: ClassVar[dict[str, str]] = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
    }

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def host_url() -> Iterator[str]:
    """tests/apphost served on 127.0.0.1: the host page and ext-apps from node_modules."""
    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Files, directory=str(APPHOST)))
    thread = threading.Thread(target=files.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{files.server_port}/host.html"
    files.shutdown()
    files.server_close()


@dataclass
class Host:
    """One host page and the MCP session behind it."""

    page: Any
    client: Client
    shots: Path

    async def open(self, tool: str, theme: str = "light", **arguments: Any) -> Any:
        """Call `tool` through the session, render its bound view with the real result; return the frame."""
        listed = {t.name: t for t in (await self.client.list_tools()).tools}
        uri = (listed[tool].meta or {})["ui"]["resourceUri"]
        html = (await self.client.read_resource(uri)).contents[0].text  # type: ignore[union-attr]
        result = await self.client.call_tool(tool, arguments)
        assert not result.is_error, result.content
        view = uri.rsplit("/", 1)[-1]
        payload = {
            "id": view,
            "html": html,
            "args": arguments,
            "result": result.model_dump(by_alias=True, mode="json", exclude_none=True),
            "theme": theme,
        }
        await self.page.evaluate("(view) => window.openView(view)", payload)
        frame = await (await self.page.query_selector(f"#{view}")).content_frame()
        assert frame is not None
        return frame

    async def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path


@pytest.fixture
async def host(home: Path, host_url: str, tmp_path: Path) -> AsyncIterator[Host]:
    from playwright.async_api import async_playwright

    async with Client(build_server(), extensions=[APPS]) as client, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 820, "height": 700})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))

        async def host_call_tool(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
            result = await client.call_tool(name, arguments)
            return result.model_dump(by_alias=True, mode="json", exclude_none=True)

        await page.expose_function("hostCallTool", host_call_tool)
        await page.goto(host_url)
        await holds(page, "window.hostReady === true", 60)
        shots = tmp_path / "screenshots"
        shots.mkdir()
        yield Host(page, client, shots)
        await browser.close()
        assert not errors, errors


async def holds(frame: Any, condition: str, timeout_s: int) -> None:
    """Wait until a JavaScript condition holds in the page or view (a function, not a string to eval:
    the views' CSP forbids eval)."""
    await frame.wait_for_function(f"() => {condition}", timeout=timeout_s * 1000)


async def number(frame: Any, script: str) -> float:
    value = await frame.evaluate(script)
    return float(value or 0)


async def job_is(client: Client, job_id: str, status: str) -> bool:
    return bool((await call(client, "get_job", job_id=job_id, wait_s=2))["status"] == status)


@needs_browser
async def test_job_view_shows_amplify_progress_moving_and_its_cancel_button_cancels(
    host: Host, server: TeacherServer
) -> None:
    await call(host.client, "create_dataset", name="reviews", examples=SEEDS, instruction=toy_sentiment.INSTRUCTION)
    server.faults.latency_s = 0.3  # 400 examples, two at a time: minutes of work, so it is still running below
    frame = await host.open(
        "amplify_dataset",
        theme="dark",
        dataset="reviews",
        teacher=server.model,
        api_base=server.url,
        target_size=400,
        concurrency=2,
        max_cost_usd=50,
        input_cost_per_token=1e-6,
        output_cost_per_token=1e-6,
    )
    job_id = await frame.evaluate("() => jobId")
    progress = "() => document.getElementById('progress').dataset.done"
    await holds(frame, f"({progress})() >= 1", 120)
    first = await number(frame, progress)
    await holds(frame, f"({progress})() > {first}", 120)
    assert await frame.locator("#status").text_content() == "running"
    assert await frame.evaluate("() => document.documentElement.dataset.theme") == "dark"
    assert await frame.evaluate("() => getComputedStyle(document.body).backgroundColor") == "rgb(27, 28, 32)"
    assert "/ 400" in (await frame.locator("#progress").text_content() or "")
    assert " of $50.00" in (await frame.locator("#counts").text_content() or "")  # cost against the budget
    await holds(frame, "document.getElementById('counts').textContent.includes('rejected')", 120)  # live tally
    await host.shot("job-amplify-running")

    await frame.locator("#cancel").click()
    await until(lambda: job_is(host.client, job_id, "cancelled"), "the job to be cancelled")
    await holds(frame, "document.getElementById('status').textContent === 'cancelled'", 60)
    assert await frame.locator("#resume").is_enabled()
    await host.shot("job-amplify-cancelled")


@pytest.mark.slow
@needs_browser
async def test_training_loss_curve_grows_then_the_card_shows_the_verdict_scores_and_answers(
    host: Host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny = build_tiny_student(tmp_path / "tiny")
    examples = toy_sentiment.examples(60, seed=3)
    await call(host.client, "create_dataset", name="toy", examples=examples, instruction=toy_sentiment.INSTRUCTION)
    frame = await host.open(
        "train_student",
        dataset="toy",
        base_model=str(tiny),
        name="toy-lora",
        reasoning="none",
        iters=400,
        num_layers=-1,
        learning_rate=3e-4,
        batch_size=4,
        max_seq_length=128,
        steps_per_eval=10,
        save_every=10,
    )
    # The curve gains points however fast training runs: the points drawn when the view's Cancel stopped the
    # job, then more once its Resume button has run the job to the end from the last checkpoint.
    points = "Number(document.getElementById('loss').dataset.points || 0)"
    await holds(frame, f"{points} >= 1", 600)
    await frame.locator("#cancel").click()
    await holds(frame, "document.getElementById('status').textContent === 'cancelled'", 120)
    before = await number(frame, f"() => {points}")
    assert before >= 1
    await host.shot("job-train-cancelled")
    await frame.locator("#resume").click()
    await holds(frame, "document.getElementById('status').textContent === 'succeeded'", 600)
    after = await number(frame, f"() => {points}")
    assert after > before, f"the loss curve did not gain points after resuming: {before} then {after}"
    assert await number(frame, "() => document.querySelectorAll('#loss circle.pt-val').length") >= 2
    await host.shot("job-train-loss")

    card = await host.open("evaluate_student", model="toy-lora", metric="label", max_tokens=8)
    await holds(card, "!document.getElementById('verdict').hidden", 600)
    model = await call(host.client, "get_model", model="toy-lora")
    summary = model["report_card"]
    assert (await card.locator("#verdict").get_attribute("data-ready")) == str(bool(summary["ready"])).lower()
    assert summary["verdict"] in (await card.locator("#verdict-text").text_content() or "")
    main = summary["sources"][0]
    shown = card.locator(f"section[data-source='{main['name']}'] g.score[data-name='student']")
    assert float(await shown.get_attribute("data-mean") or "nan") == pytest.approx(main["student"]["mean"])
    shown_base = card.locator(f"section[data-source='{main['name']}'] g.score[data-name='base']")
    assert float(await shown_base.get_attribute("data-mean") or "nan") == pytest.approx(main["base"]["mean"])
    assert await card.locator("#confusion td.n").count() >= 4

    prompt = toy_sentiment.examples(1, seed=99)[0]["input"]
    await card.locator("#try-input").fill(prompt)
    await card.locator("#try-go").click()
    await holds(card, "!['', 'asking…'].includes(document.getElementById('try-out').textContent)", 300)
    expected = await call(host.client, "query_student", model=model["id"], prompt=prompt)
    assert await card.locator("#try-out").text_content() == expected["answers"][0]["answer"]
    await host.shot("card")


@needs_browser
async def test_dataset_view_pages_through_rows(host: Host) -> None:
    await call(
        host.client,
        "create_dataset",
        name="toy",
        examples=toy_sentiment.examples(25, seed=4),
        instruction=toy_sentiment.INSTRUCTION,
        holdout_fraction=0,
    )
    frame = await host.open("get_dataset", dataset="toy", sample=10)
    rows = frame.locator("#rows tbody tr")
    await holds(frame, "document.querySelectorAll('#rows tbody tr').length === 10", 60)
    assert await frame.locator("#total").text_content() == "25 examples"
    assert await frame.locator("#by-source [data-key='seed'] b").text_content() == "25"
    await host.shot("dataset-page-1")

    await frame.locator("#next").click()
    await holds(frame, "document.getElementById('page').dataset.offset === '10'", 60)
    page = await call(host.client, "get_dataset", dataset="toy", sample=10, offset=10)
    shown = [await rows.nth(i).get_attribute("data-position") for i in range(await rows.count())]
    assert shown == [str(row["position"]) for row in page["sample"]]
    assert await frame.locator("#page").text_content() == "rows 11–20 of 25"

    await frame.locator("#next").click()
    await holds(frame, "document.getElementById('page').dataset.offset === '20'", 60)
    assert await rows.count() == 5 and await frame.locator("#next").is_disabled()

    first_input = await rows.nth(0).locator("td").nth(1).text_content() or ""
    await frame.locator("#search").fill("no row holds this text")
    await holds(frame, "document.querySelectorAll('#rows tbody tr').length === 0", 60)
    await frame.locator("#search").fill(first_input)
    assert 1 <= await rows.count() < 5
    assert first_input in (await rows.nth(0).text_content() or "")
    await host.shot("dataset-page-3")
