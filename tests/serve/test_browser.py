"""The page in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
driven by Selenium) uploads a video to ``finecliper serve``, waits for the result, finds the
predicted class, saves a screenshot; bad uploads show their error and the server stays up."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from serve_fixtures import request

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless browser test needs Debian's chromium and chromium-driver "
    "(apt-get install -y chromium chromium-driver)",
)
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "serve.png"
WIDTH = 1280


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in containers
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WIDTH},1000",
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_visible(driver, element_id: str, seconds: float = 45):
    return WebDriverWait(driver, seconds).until(
        expected_conditions.visibility_of_element_located((By.ID, element_id))
    )


def open_page(driver, url: str) -> None:
    driver.get(url + "/")
    # The sample list fills in once /api/config answered.
    WebDriverWait(driver, 20).until(
        lambda d: len(Select(d.find_element(By.ID, "sample")).options) > 1
    )


def upload(driver, path: Path) -> None:
    driver.find_element(By.ID, "video").send_keys(str(path))
    driver.find_element(By.ID, "submit").click()


def test_upload_shows_prediction(
    browser, running_server, bundled_predictor, astronaut_video: Path, tmp_path
) -> None:
    server = running_server(max_duration_s=10.0, serving=bundled_predictor)
    open_page(browser, server.url)
    assert "trained on SynthDFER" in browser.find_element(By.ID, "demo-note").text
    upload(browser, astronaut_video)
    result = wait_visible(browser, "result")
    shown = browser.find_element(By.ID, "top-class").text
    expected = request(server.url, "GET", f"/results/{result.get_attribute('data-id')}/result.json")
    assert shown == expected.json()["top"] and shown in server.app.predictor.classes
    assert len(browser.find_elements(By.CSS_SELECTOR, "#probabilities .bar")) == 7
    assert len(browser.find_elements(By.CSS_SELECTOR, "#weights .bar")) == 4
    assert browser.find_element(By.ID, "description").text.endswith(".")
    # The timeline image and the annotated video both load from the server.
    WebDriverWait(browser, 20).until(
        lambda d: d.execute_script(
            "return document.getElementById('timeline').naturalWidth > 0 && "
            "document.getElementById('annotated').readyState >= 1"
        )
    )
    assert not browser.find_element(By.ID, "error").is_displayed()
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(WIDTH, height + 140)  # the whole page in one screenshot
    shot = tmp_path / "serve.png"
    assert browser.save_screenshot(str(shot))
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT)


def test_bad_uploads_show_errors(browser, running_server, tmp_path) -> None:
    server = running_server(max_upload_bytes=100_000)
    open_page(browser, server.url)
    assert not browser.find_element(By.ID, "demo-note").is_displayed()  # a checkpoint of ours
    fake = tmp_path / "holiday.mp4"
    fake.write_bytes(b"this is not a video" * 100)
    upload(browser, fake)
    error = wait_visible(browser, "error", 20)
    assert "'holiday.mp4' is not a readable video" in error.text
    assert not browser.find_element(By.ID, "result").is_displayed()
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\x00" * 300_000)
    upload(browser, big)
    WebDriverWait(browser, 20).until(lambda d: "big.mp4" in d.find_element(By.ID, "error").text)
    assert error.text == "'big.mp4' is 0.3 MB; the limit is 0.1 MB."
    assert request(server.url, "GET", "/api/health").json() == {"status": "ok"}
    # The page still works: a sample predicts after the refusals.
    browser.find_element(By.ID, "video").clear()
    Select(browser.find_element(By.ID, "sample")).select_by_value("synth_00003")
    browser.find_element(By.ID, "submit").click()
    wait_visible(browser, "result")
    assert browser.find_element(By.ID, "top-class").text in server.app.predictor.classes
    assert "true class" in browser.find_element(By.ID, "truth").text
    assert not browser.find_element(By.ID, "error").is_displayed()
