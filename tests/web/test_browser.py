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
    expect(page.get_by_label("Explanation method")).to_have_value("gradcam")
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
    expect(progress).to_have_attribute("aria-busy", "true")
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
    assert before == "0.5" and after == "0.9"

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

    expect(page.locator("#findings tbody tr")).to_have_count(2, timeout=ANALYSIS_TIMEOUT_MS)
    expect(page.locator("#warnings")).to_contain_text("Analysed at the user's request")
    expect(page.locator("#error")).to_be_hidden()
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
