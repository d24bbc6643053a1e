"""The browser UI against the real web service: Playwright driving Debian's Chromium.

The server runs in a thread on 127.0.0.1 with the demonstration model installed. The tests walk
the whole path a clinician takes: sign in (by keyboard), upload a DICOM with a note, read the
findings and the heatmap, ask a question and open a citation, download reports, use the history,
and sign out. Screenshots go to ``$SAHAY_TEST_ARTIFACTS`` (default ``test-artifacts/browser``).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from playwright import sync_api

from sahay.config import Settings
from sahay.explain.options import DEFAULT_METHOD
from sahay.training.synthetic import make_image
from tests.factories import write_dicom
from tests.system import missing

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("SAHAY_TEST_ARTIFACTS") or REPO / "test-artifacts" / "browser")
DEMO = "sahay-demo-synthetic"
USERNAME = "dr.rao"
PASSWORD = "a long enough passphrase"
NOTE = "Cough for three weeks. No pleural effusion. Possible nodule in the right upper lobe."
DISCLAIMER = (
    "Sahay is decision support, not a diagnosis. Its outputs are model estimates that a qualified "
    "clinician must review together with the full clinical picture."
)
ANALYSIS_TIMEOUT_MS = 180_000

pytestmark = pytest.mark.slow
expect = sync_api.expect


@pytest.fixture(autouse=True)
def _chromium_installed() -> None:
    if not CHROMIUM.is_file():
        missing(f"Chromium ({CHROMIUM})")


@dataclass
class Server:
    url: str
    settings: Settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(demo_installed: Settings) -> Iterator[Server]:
    """The real web service in a background thread, with one clinician account."""
    import uvicorn

    from sahay.api.app import create_app
    from sahay.store.accounts import create_user
    from sahay.store.db import session_scope

    with session_scope(demo_installed) as session:
        create_user(session, USERNAME, PASSWORD, role="clinician")
    port = _free_port()
    config = uvicorn.Config(create_app(demo_installed), host="127.0.0.1", port=port, log_level="warning")
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, name="sahay-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the web service did not start")
        time.sleep(0.05)
    try:
        yield Server(url=f"http://127.0.0.1:{port}", settings=demo_installed)
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def page(server: Server) -> Iterator[sync_api.Page]:
    """A fresh browser page; page errors fail the test."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        # Every request the page makes on its own answers (no favicon 404 in the console).
        page.on(
            "response",
            lambda r: (
                errors.append(f"{r.status} {r.url}") if r.status == 404 and "/api/" not in r.url else None
            ),
        )
        page.goto(server.url)
        try:
            yield page
        finally:
            context.close()
            browser.close()
        assert not errors, f"JavaScript errors in the page: {errors}"


def _shot(page: sync_api.Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _disclaimer_visible(page: sync_api.Page) -> None:
    disclaimer = page.locator("#disclaimer")
    expect(disclaimer).to_be_visible()
    assert " ".join(disclaimer.inner_text().split()) == DISCLAIMER
    box = disclaimer.bounding_box()
    viewport = page.viewport_size
    assert box is not None and viewport is not None
    # On screen, not scrolled away.
    assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"] + 1


def _focused(page: sync_api.Page) -> str:
    return str(page.evaluate("document.activeElement && document.activeElement.id"))


def _login_by_keyboard(page: sync_api.Page, password: str = PASSWORD) -> None:
    page.locator("#username").focus()
    page.keyboard.type(USERNAME)
    page.keyboard.press("Tab")
    assert _focused(page) == "password"
    page.keyboard.type(password)
    page.keyboard.press("Tab")
    assert _focused(page) == "login-button"
    page.keyboard.press("Enter")


def _dicom_the_demo_model_accepts(folder: Path) -> Path:
    """A synthetic image like the demo model's training images (a bright disc), stored as DICOM."""
    image = make_image(np.random.default_rng(7), 224, disc=True, stripes=False)
    stored = np.round(image.pixels * 4095).astype(np.uint16)
    return write_dicom(
        folder / "case.dcm",
        stored,
        bits_stored=12,
        window=(2048, 4096),
        modality="OT",
        body_part=None,
        view_position=None,
    )


def test_login_refuses_a_wrong_password_and_shows_the_reason(page: sync_api.Page) -> None:
    _disclaimer_visible(page)
    _login_by_keyboard(page, password="not the password at all")
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_contain_text(re.compile(r"\S+"))
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#app-screen")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('sahay.access_token')") is None


def test_the_whole_path_in_a_browser(page: sync_api.Page, tmp_path: Path) -> None:
    # Sign in with the keyboard only.
    expect(page.locator("#login-form")).to_be_visible()
    _disclaimer_visible(page)
    _shot(page, "01-login")
    # The UI asks the server once what it offers; the model, method and report lists come from it.
    with page.expect_response(lambda r: r.url.endswith("/api/v1/capabilities")) as capabilities:
        _login_by_keyboard(page)
    assert capabilities.value.status == 200
    offered = capabilities.value.json()
    expect(page.locator("#logout")).to_be_visible()
    expect(page.locator("#session-user")).to_contain_text(USERNAME)
    expect(page.locator("#login-form")).to_be_hidden()
    _disclaimer_visible(page)
    expect(page.locator("#history-empty")).to_be_visible()
    expect(page.locator(f"#model option[value='{DEMO}']")).to_have_count(1)
    expect(page.locator("#model option").first).to_have_text("Automatic (default)")
    methods = [method["name"] for method in offered["explain_methods"]]
    assert page.locator("#explain option").evaluate_all("os => os.map((o) => o.value)") == methods
    expect(page.get_by_label("Explanation method")).to_have_value(DEFAULT_METHOD)
    _shot(page, "02-upload")

    # A file that is not an image: the API's reason is shown, in an alert.
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("Cough for three weeks.")
    page.set_input_files("#file-input", str(not_an_image))
    page.click("#analyze-button")
    expect(page.locator("#error[role=alert]")).to_contain_text("The analysis failed: ")
    expect(page.locator("#error")).to_contain_text("notes.txt")
    expect(page.locator("#analyze-button")).to_be_enabled()

    # Upload a DICOM with a note; the indeterminate progress bar shows while it runs.
    page.set_input_files("#file-input", str(_dicom_the_demo_model_accepts(tmp_path)))
    expect(page.locator("#file-chosen")).to_contain_text("case.dcm")
    page.fill("#notes", NOTE)
    page.select_option("#model", DEMO)
    page.select_option("#explain", "gradcam++")  # not the server's default, so the choice shows
    page.click("#analyze-button")
    progress = page.locator("[role=progressbar]")
    expect(progress).to_be_visible()
    # Once the upload is sent, the bar says that the server is analysing it.
    expect(progress).to_have_attribute("aria-valuetext", "Analysing")
    expect(page.locator("#progress-label")).to_have_text("Uploaded. Analysing the image…")
    expect(page.locator("#analyze-button")).to_be_disabled()
    _shot(page, "03-analysing")

    # The findings: positives first, with words, not colour only.
    rows = page.locator("#findings tbody tr")
    expect(rows).to_have_count(2, timeout=ANALYSIS_TIMEOUT_MS)
    expect(progress).to_be_hidden()
    expect(page.locator("#analyze-button")).to_be_enabled()
    expect(page.locator("#error")).to_be_hidden()
    expect(rows.first.locator("th")).to_have_text("synthetic disc")
    expect(rows.first).to_contain_text("Positive")
    expect(rows.nth(1)).to_contain_text("Negative")
    expect(rows.first.locator(".bar-threshold")).to_have_count(1)
    expect(rows.first.locator("td").nth(1)).to_have_text("50%")  # the demo's threshold, not "50.0 %"
    expect(page.locator("#demonstration-notice")).to_be_visible()
    expect(page.locator("#demonstration-notice")).to_contain_text("DEMONSTRATION MODEL")
    expect(page.locator("#history-list li")).to_have_count(1)
    _disclaimer_visible(page)

    # The image and its heatmap layer, both fetched with the token, stacked at the same size.
    page.wait_for_function("document.querySelector('#viewer-image').naturalWidth > 0")
    page.wait_for_function("document.querySelector('#heatmap-layer').naturalWidth > 0")
    sizes = page.evaluate(
        """() => ['#viewer-image', '#heatmap-layer'].map((s) => {
            const img = document.querySelector(s);
            return [img.naturalWidth, img.naturalHeight, img.src.slice(0, 5)];
        })"""
    )
    assert sizes[0] == sizes[1] == [224, 224, "blob:"]
    expect(page.locator("#heatmap-layer")).to_be_visible()
    expect(page.locator("#heatmap-select")).to_have_value("synthetic_disc")
    assert page.locator("#regions-layer g.region").count() >= 1
    expect(page.locator("#explanation")).to_contain_text("synthetic_disc")
    chosen = next(m for m in offered["explain_methods"] if m["name"] == "gradcam++")
    expect(page.locator("#explanation")).to_contain_text(f"{chosen['title']}.")

    layer_opacity = "getComputedStyle(document.querySelector('#heatmap-layer')).opacity"
    expect(page.get_by_label("Heatmap opacity")).to_have_attribute("id", "opacity")
    before = page.evaluate(layer_opacity)
    page.fill("#opacity", "90")
    after = page.evaluate(layer_opacity)
    assert before == "0.7" and after == "0.9"

    page.click("#zoom-in")
    assert "scale(1.25)" in page.locator("#viewer-stage").evaluate("e => e.style.transform")
    page.click("#zoom-reset")
    assert "scale(1)" in page.locator("#viewer-stage").evaluate("e => e.style.transform")

    # Window and level re-fetch the DICOM image with query parameters.
    expect(page.locator("#window-controls")).to_be_visible()
    with page.expect_response(lambda r: "/image?" in r.url and "window_center=1000" in r.url) as windowed:
        page.fill("#window-center", "1000")
    assert windowed.value.status == 200

    # The note, with its entities marked by status.
    expect(page.locator("#notes-section")).to_be_visible()
    expect(page.locator("#notes-text")).to_contain_text("for three weeks. No")
    assert page.locator("#notes-text mark.entity").count() >= 1
    expect(page.locator("#notes-text mark.negated").first).to_contain_text("effusion")
    fused = page.locator("#fusion li").all_inner_texts()
    assert fused and all(item.count(item.split(":")[0]) == 1 for item in fused), fused  # each label once
    _shot(page, "04-result")

    # A question, answered as a stream, with a citation that opens its passage.
    page.fill("#chat-question", "What are the usual next steps?")
    page.press("#chat-question", "Enter")
    answer = page.locator("#chat-answers li.assistant").last
    passage_cite = answer.locator(".cite:not([data-cite^='A'])").first
    expect(passage_cite).to_be_visible(timeout=120_000)
    expect(answer).not_to_have_attribute("aria-busy", "true")
    expect(answer.locator(".answer-disclaimer")).to_be_visible()
    passage_cite.click()
    box = page.locator("#citation-box")
    expect(box).to_be_visible()
    expect(page.locator("#citation-title")).to_contain_text(re.compile(r"\[\d+\] \S"))
    assert len(page.locator("#citation-body blockquote").inner_text().strip()) > 20
    assert page.locator("#citation-body a[href^='http']").count() >= 1
    _shot(page, "05-chat")
    page.click("#citation-close")
    expect(box).to_be_hidden()

    # Reports, fetched with the token and saved under the server's file name.
    # A DICOM upload: a button for every format the server offers, DICOM formats included.
    formats = [report["name"] for report in offered["report_formats"]]
    assert {"html", "pdf", "fhir", "dicom-sr", "dicom-sc"} <= set(formats)
    expect(page.locator("#reports button")).to_have_count(len(formats))
    assert page.locator("#reports button").evaluate_all("bs => bs.map((b) => b.dataset.format)") == formats
    with page.expect_download() as pdf:
        page.click("#reports button[data-format='pdf']")
    assert pdf.value.suggested_filename.endswith(".pdf")
    assert Path(pdf.value.path()).read_bytes().startswith(b"%PDF")
    with page.expect_download() as html:
        page.click("#reports button[data-format='html']")
    assert html.value.suggested_filename.endswith(".html")
    body = Path(html.value.path()).read_bytes().decode("utf-8").lower()
    assert "<html" in body and "synthetic_disc" in body

    # Similar cases: a list, "no similar cases", or a short note that the library is unavailable.
    expect(page.locator("#similar")).not_to_contain_text("Looking for similar cases", timeout=60_000)
    expect(page.locator("#similar")).to_contain_text(re.compile(r"\S"))

    # An expired access token is refreshed once, silently.
    page.evaluate("sessionStorage.setItem('sahay.access_token', 'expired')")
    page.click("#history-list .history-open")
    expect(page.locator("#status")).to_contain_text("Showing the analysis of case.dcm")
    expect(page.locator("#error")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('sahay.access_token')") != "expired"
    expect(page.locator("#chat-answers li")).to_have_count(2)  # the stored conversation comes back

    # Delete from the history, after a confirm().
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#history-list button.danger")
    expect(page.locator("#history-list li")).to_have_count(0)
    expect(page.locator("#result")).to_be_hidden()
    expect(page.locator("#history-empty")).to_be_visible()

    # Sign out: back to the login form, the tokens gone, the disclaimer still there.
    page.click("#logout")
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#app-screen")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('sahay.refresh_token')") is None
    _disclaimer_visible(page)
    _shot(page, "06-logged-out")


def test_a_revoked_session_goes_back_to_the_login(page: sync_api.Page) -> None:
    _login_by_keyboard(page)
    expect(page.locator("#logout")).to_be_visible()
    page.evaluate("sessionStorage.setItem('sahay.access_token', 'x')")
    page.evaluate("sessionStorage.setItem('sahay.refresh_token', 'y')")
    page.reload()
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#error")).to_contain_text("session has expired")
    _disclaimer_visible(page)


def test_a_refused_image_clears_the_old_result_and_can_be_analysed_anyway(
    page: sync_api.Page, server: Server, tmp_path: Path
) -> None:
    from pydicom.data import get_testdata_file

    from sahay.store import audit
    from sahay.store.db import session_scope

    _login_by_keyboard(page)
    page.select_option("#model", DEMO)
    page.set_input_files("#file-input", str(_dicom_the_demo_model_accepts(tmp_path)))
    page.click("#analyze-button")
    expect(page.locator("#findings tbody tr")).to_have_count(2, timeout=ANALYSIS_TIMEOUT_MS)

    # A CT slice the demonstration model was not made for: the old result goes at once, and the
    # refusal is worded for the browser, with the override as a button where the user is looking.
    page.set_input_files("#file-input", str(get_testdata_file("CT_small.dcm", download=False)))
    page.click("#analyze-button")
    expect(page.locator("#result")).to_be_hidden()
    error = page.locator("#error[role=alert]")
    expect(error).to_contain_text(
        "does not look like an image this model was made for", timeout=ANALYSIS_TIMEOUT_MS
    )
    expect(error).not_to_contain_text("--force")
    expect(error).not_to_contain_text("force=true")
    assert error.evaluate(
        "e => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; }"
    )
    _shot(page, "10-refused")
    error.get_by_role("button", name="Analyse anyway").click()

    # The old result's rows may still be in the (hidden) table: wait for the forced one's notice.
    expect(page.locator("#warnings")).to_contain_text(
        "Analysed at the user's request", timeout=ANALYSIS_TIMEOUT_MS
    )
    expect(page.locator("#findings tbody tr")).to_have_count(2, timeout=ANALYSIS_TIMEOUT_MS)
    expect(page.locator("#error")).to_be_hidden()

    # The page says what the API says: every notice, the decision rule, the same positives.
    answer = page.evaluate(
        """async () => {
            const id = sessionStorage.getItem('sahay.current_analysis');
            const headers = { Authorization: `Bearer ${sessionStorage.getItem('sahay.access_token')}` };
            return (await fetch(`/api/v1/analyses/${id}`, { headers })).json();
        }"""
    )
    statement = answer["statement"]
    assert [n["kind"] for n in statement["notices"]][:2] == ["demonstration", "forced"]
    shown = " ".join(page.locator("#result").inner_text().split())
    for notice in statement["notices"]:
        assert " ".join(notice["text"].split()) in shown, notice["kind"]
    expect(page.locator("#decision-rule")).to_have_text(statement["rule_text"])
    # The model's card opens beside the findings, from GET /models/{name}/card.
    page.click("#model-card summary")
    expect(page.locator("#model-card-body")).to_contain_text("Intended use: Demonstration")
    expect(page.locator("#model-card-body")).to_contain_text("Weights: trained by Sahay")
    positives = page.locator("#findings tbody tr.positive th").all_inner_texts()
    assert sorted(positives) == sorted(d["display"] for d in statement["positives"])
    with session_scope(server.settings) as session:
        created = [e for e in audit.events(session, actor=USERNAME) if e.action == "create"]
        assert "override" in (created[0].detail or {}) and "override" not in (created[1].detail or {})

    # Sign out: the next user of this workstation finds an empty form.
    page.fill("#notes", "Private note about the patient.")
    page.click("#logout")
    expect(page.locator("#login-form")).to_be_visible()
    _login_by_keyboard(page)
    expect(page.locator("#notes")).to_have_value("")
    expect(page.locator("#file-chosen")).to_have_text("No file chosen.")
    assert page.evaluate("document.querySelector('#file-input').files.length") == 0


# The browser walkthrough (issue 21): layout, viewer, heatmap, links, administration, similar cases.

WIDTHS = {"1280": (1280, 900), "1920": (1920, 1080), "390": (390, 844)}
# Resolved now: tests run in a temporary working folder.
SCREENSHOTS = (
    str(Path(os.environ["SAHAY_WEB_SCREENSHOTS"]).resolve())
    if os.environ.get("SAHAY_WEB_SCREENSHOTS")
    else None
)
"""A folder for the documentation's screenshots (docs/images); test artifacts otherwise."""
if SCREENSHOTS:
    Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)


def _analyse(page: sync_api.Page, image: Path, model: str = DEMO) -> None:
    page.select_option("#model", model)
    page.set_input_files("#file-input", str(image))
    page.click("#analyze-button")
    expect(page.locator("#findings tbody tr").first).to_be_visible(timeout=ANALYSIS_TIMEOUT_MS)
    expect(page.locator("#progress-box")).to_be_hidden()


def _no_sideways_scroll(page: sync_api.Page) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    wide = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter((e) => e.getBoundingClientRect().right > innerWidth + 1 && e.offsetParent !== null)
            .slice(0, 8)
            .map((e) => `${e.tagName}#${e.id} ${Math.round(e.getBoundingClientRect().right)}`)"""
    )
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}; too wide: {wide}"


def _inside_viewport_width(page: sync_api.Page, selector: str) -> None:
    box = page.locator(selector).bounding_box()
    width = page.viewport_size["width"] if page.viewport_size else 0
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 1, (selector, box)


def _center_crop_copy_of_the_demo(settings: Settings) -> str:
    """The demonstration bundle as a centre-cropping model, which sees only a landscape image's middle."""
    from sahay.models.bundle import save_bundle
    from sahay.models.registry import find_installed

    demo = find_installed(DEMO, settings)
    assert demo is not None
    manifest = demo.manifest.model_copy(
        update={
            "name": "demo-center-crop",
            "ood": None,  # its reference was fitted on stretched inputs
            "input": demo.manifest.input.model_copy(update={"resize": "center_crop"}),
        }
    )
    save_bundle(settings.models_dir / "demo-center-crop", manifest, demo.load_model().state_dict())
    return "demo-center-crop"


def test_the_viewer_layout_and_heatmap_at_three_widths(
    page: sync_api.Page, server: Server, tmp_path: Path
) -> None:
    from tests.factories import write_png

    # "Automatic" with no fitting model installed (offline, the demo only): said plainly, no URLs.
    _login_by_keyboard(page)
    landscape = make_image(np.random.default_rng(11), 224, disc=True, stripes=False).pixels
    png = write_png(tmp_path / "landscape.png", np.round(np.tile(landscape, (1, 2)) * 255).astype(np.uint8))
    page.set_input_files("#file-input", str(png))
    page.click("#analyze-button")
    error = page.locator("#error")
    expect(error).to_contain_text("no installed model fits this image", timeout=ANALYSIS_TIMEOUT_MS)
    expect(error).to_contain_text("Choose a model in the Model list")
    for cli_or_url in ("http", "sahay models", "--model", "`"):
        expect(error).not_to_contain_text(cli_or_url)

    # A centre-cropping model sees the middle of a landscape image: the viewer outlines it.
    cropping = _center_crop_copy_of_the_demo(server.settings)
    page.reload()
    _analyse(page, png, cropping)
    fov = page.locator("#regions-layer g.field-of-view rect")
    expect(fov).to_have_count(1)
    assert [fov.get_attribute(a) for a in ("x", "width", "height")] == ["112", "224", "224"]
    expect(page.locator("#field-of-view-note")).to_be_visible()
    expect(page.locator("#warnings")).not_to_contain_text("sahay models")  # UI words, not CLI

    _analyse(page, _dicom_the_demo_model_accepts(tmp_path))
    expect(page.locator("#regions-layer g.field-of-view")).to_have_count(0)  # the whole image was seen
    page.wait_for_function("() => !document.querySelector('#heatmap-layer').hidden")

    # The colour scale says what the colours mean; the default opacity is strong enough to see.
    expect(page.locator("#heatmap-scale")).to_be_visible()
    expect(page.locator("#heatmap-caption")).to_contain_text("synthetic disc")
    expect(page.locator("#heatmap-caption")).to_contain_text("not where disease is")
    # Switching maps: the old layer goes at once, with a loading cue, never under the new name.
    hidden_at_once = page.evaluate(
        """() => {
            const select = document.querySelector('#heatmap-select');
            select.value = '';
            select.dispatchEvent(new Event('change'));
            select.value = 'synthetic_disc';
            select.dispatchEvent(new Event('change'));
            return [document.querySelector('#heatmap-layer').hidden,
                    document.querySelector('#heatmap-loading').hidden];
        }"""
    )
    assert hidden_at_once == [True, False]
    page.wait_for_function("() => !document.querySelector('#heatmap-layer').hidden")
    expect(page.locator("#heatmap-loading")).to_be_hidden()

    # Zoom and pan survive a window resize.
    page.click("#zoom-in")
    page.set_viewport_size({"width": 1300, "height": 950})
    page.wait_for_timeout(600)  # the resize handler is debounced
    assert "scale(1.25)" in page.locator("#viewer-stage").evaluate("e => e.style.transform")
    page.click("#zoom-reset")

    for name, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(400)
        _no_sideways_scroll(page)
        _disclaimer_visible(page)
        _inside_viewport_width(page, "#result")
        _inside_viewport_width(page, "#disclaimer")
        viewer = page.locator("#viewer").bounding_box()
        assert viewer is not None
        if width >= 1280:
            # A radiograph gets most of the screen, and the findings table shows every column.
            assert viewer["width"] >= 0.45 * width, (name, viewer)
            map_button = page.locator("#findings tbody tr").first.get_by_role(
                "button", name=re.compile("heatmap")
            )
            card = page.locator("#findings-section").bounding_box()
            button = map_button.bounding_box()
            assert card and button and button["x"] + button["width"] <= card["x"] + card["width"], name
            expect(page.locator("#findings tbody tr").first).to_contain_text("Positive")
        page.screenshot(path=str(Path(SCREENSHOTS or ARTIFACTS) / f"web-{name}.png"), full_page=True)

    # A table scrolled sideways does not carry over to the next analysis, and names stay in view.
    page.set_viewport_size({"width": 390, "height": 844})
    page.locator("#findings-scroll").scroll_into_view_if_needed()
    page.locator("#findings-scroll").evaluate("e => { e.scrollLeft = 300; }")
    name_cell = page.locator("#findings tbody tr").first.locator("th").bounding_box()
    frame = page.locator("#findings-scroll").bounding_box()
    assert name_cell and frame and name_cell["x"] >= frame["x"] - 1  # sticky: the name stays in view
    page.locator("#history-list .history-open").first.click()
    expect(page.locator("#status")).to_contain_text("Showing the analysis")
    assert page.locator("#findings-scroll").evaluate("e => e.scrollLeft") == 0

    # Enlarge: the viewer fills the screen above the disclaimer; Escape closes it.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.click("#enlarge")
    enlarged = page.locator("#viewer").bounding_box()
    assert enlarged is not None and enlarged["width"] >= 1180
    _disclaimer_visible(page)
    page.keyboard.press("Escape")
    expect(page.locator("#enlarge")).to_have_attribute("aria-pressed", "false")


@pytest.fixture
def library_cases(demo_installed: Settings, tmp_path: Path) -> list[str]:
    """Two cases in the library, added as an administrator would before the service starts."""
    from sahay.cases.library import CaseLibrary
    from sahay.services.analyze import analyze
    from tests.factories import write_png

    added = []
    with CaseLibrary(demo_installed) as cases:
        for seed, diagnosis in ((21, "round lesion"), (22, "round lesion, second")):
            drawn = make_image(np.random.default_rng(seed), 224, disc=True, stripes=False).pixels
            image = write_png(tmp_path / f"case-{seed}.png", np.round(drawn * 255).astype(np.uint8))
            out = tmp_path / f"out-{seed}"
            analyze(image, model=DEMO, out_dir=out, settings=demo_installed)
            added.append(cases.add_analysis(out / "analysis.json", image_path=image, diagnosis=diagnosis).id)
    return added


def test_links_back_similar_cases_and_administration(
    library_cases: list[str], page: sync_api.Page, server: Server, tmp_path: Path
) -> None:
    from sahay.store.accounts import create_user
    from sahay.store.db import session_scope

    with session_scope(server.settings) as session:
        create_user(session, "admin.iyer", PASSWORD, role="admin")

    _login_by_keyboard(page)

    # Over a slow link the bar shows the share of the file sent (here 1 MB at 200 kB/s).
    from tests.factories import write_png

    noise = np.random.default_rng(5).integers(0, 255, (1024, 1024), dtype=np.uint8)
    large = write_png(tmp_path / "large.png", noise)
    assert large.stat().st_size > 1_000_000
    network = page.context.new_cdp_session(page)
    network.send("Network.enable")
    slow = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 200_000}
    network.send("Network.emulateNetworkConditions", slow)
    page.select_option("#model", DEMO)
    page.set_input_files("#file-input", str(large))
    page.click("#analyze-button")
    expect(page.locator("#progress-label")).to_have_text(re.compile(r"Uploading the image: [1-9]\d?% sent"))
    network.send("Network.emulateNetworkConditions", {**slow, "uploadThroughput": -1})
    expect(page.locator("#progress-box")).to_be_hidden(timeout=ANALYSIS_TIMEOUT_MS)

    # The clinician's analysis has its own link.
    _analyse(page, _dicom_the_demo_model_accepts(tmp_path))
    analysis_id = page.evaluate("sessionStorage.getItem('sahay.current_analysis')")
    assert page.url.endswith(f"#analysis/{analysis_id}")
    assert page.locator("#result-link").get_attribute("href").endswith(f"#analysis/{analysis_id}")

    # Similar cases: thumbnails, short ids, "Model findings", the signals, and a case that opens.
    rows = page.locator("#similar tbody tr")
    expect(rows).to_have_count(2, timeout=120_000)
    expect(page.locator("#similar thead")).to_contain_text("Model findings")
    expect(page.locator("#similar thead")).not_to_contain_text("Labels")
    first_id = rows.first.get_attribute("data-case")
    assert first_id in library_cases
    expect(rows.first.locator("th button")).to_have_text(first_id[:8])
    page.wait_for_function("() => document.querySelector('#similar img.thumb').naturalWidth > 0")
    expect(rows.first.locator("[data-testid=signals]")).to_contain_text("image")
    rows.first.locator("th button").click()
    detail = page.locator("#case-detail")
    expect(detail).to_contain_text("Model findings for this case")
    expect(detail).to_contain_text("synthetic disc")
    expect(detail).to_contain_text("round lesion")

    # A PDF report: the status is said beside the buttons.
    with page.expect_download():
        page.click("#reports button[data-format='pdf']")
    expect(page.locator("#reports-status")).to_contain_text("Downloaded")

    # Sign out, then Back: the app stays on the sign-in screen, showing nothing of the last user.
    page.click("#logout")
    expect(page.locator("#login-form")).to_be_visible()
    app_url = page.url.split("#")[0]
    page.go_back()
    assert page.url.startswith(app_url)
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#result")).to_be_hidden()

    # The link opened in a new tab asks for a sign-in, then shows that analysis.
    linked = page.context.new_page()
    linked.goto(f"{app_url}#analysis/{analysis_id}")
    linked.locator("#username").fill("admin.iyer")
    linked.locator("#password").fill(PASSWORD)
    linked.click("#login-button")
    expect(linked.locator("#result-title")).to_contain_text("case.dcm")

    # The administrator: whose analysis each row is, the users, and the audit log.
    expect(linked.locator("#history-list .h-owner").first).to_have_text(f"by {USERNAME}")
    expect(linked.locator("#admin")).to_be_visible()
    expect(linked.locator(f"#users tr[data-user='{USERNAME}']")).to_contain_text("active")
    expect(linked.locator("#audit tbody tr").first).to_be_visible()
    expect(linked.locator("#audit")).to_contain_text("create")
    linked.fill("#new-username", "dr.new")
    linked.fill("#new-password", "another long passphrase")
    linked.click("#new-user-form button[type=submit]")
    expect(linked.locator("#users tr[data-user='dr.new']")).to_contain_text("clinician")
    linked.locator("#users tr[data-user='dr.new']").get_by_role("button", name="Disable dr.new").click()
    expect(linked.locator("#users tr[data-user='dr.new']")).to_contain_text("disabled")
    if SCREENSHOTS:
        linked.set_viewport_size({"width": 1280, "height": 900})
        linked.locator("#admin").screenshot(path=str(Path(SCREENSHOTS) / "web-admin.png"))
    linked.close()
