"""llamacpp-ui as a person uses it: headless Chromium opens the page airpods printed, enters the
stack's API key on llama.cpp's own splash, types a message and sees a streamed reply from the
tiny model. A screenshot is saved as an artifact when it fails."""

from __future__ import annotations

import os
import re

import pytest

from tests.integration.conftest import artifacts_folder, openai_env, put_in_volume

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser(tmp_path, request):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("needs Debian's chromium and chromium-driver (scripts/test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    # The closed network refuses Chromium's background calls: switch them off.
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    if getattr(request.node, "rep_call_failed", False):
        out = artifacts_folder() / request.node.name
        out.mkdir(exist_ok=True)
        driver.save_screenshot(str(out / "page.png"))
    driver.quit()


def test_llamacpp_ui_chat_in_a_real_browser(airpods, tiny_model, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    put_in_volume("airpods_llamacpp_models", tiny_model)
    started = airpods("start", "llamacpp-ui")
    assert started.code == 0, started.err
    url = re.search(r"llamacpp-ui\s+ready\s+(http://\S+)", started.out).group(1)
    assert url == "http://127.0.0.1:8082"
    key = openai_env(airpods, "llamacpp-ui")["OPENAI_API_KEY"]

    wait = WebDriverWait(browser, 60)
    browser.get(url + "/")
    # The server wants the key: llama.cpp's own splash asks for it, as it would ask a person.
    wait.until(lambda d: d.find_elements(By.XPATH, "//button[contains(., 'Enter API Key')]"))[0].click()
    wait.until(lambda d: d.find_elements(By.ID, "api-key-input"))[0].send_keys(key)
    browser.find_element(By.XPATH, "//button[contains(., 'Save & Retry')]").click()

    box = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "textarea"))[0]
    wait.until(lambda d: "tiny" in d.find_element(By.TAG_NAME, "body").text)  # the model is offered
    box.click()
    box.send_keys("hello tiny model")
    box.send_keys(Keys.ENTER)

    # The reply streams in; when it is done, the UI shows its generation speed ("… t/s") under it
    # (the prompt's own line says "tokens/s"): that line exists only for a generated reply.
    def reply_line(driver):
        text = driver.find_element(By.TAG_NAME, "body").text  # one read: the page keeps changing
        found = re.search(r"[\d,.]+ t/s", text)
        return (text, found) if found else False

    page, speed = wait.until(reply_line)
    assert page.index("hello tiny model") < speed.start()  # the reply follows the message
