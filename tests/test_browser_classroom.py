"""The dashboard as a class uses it, in headless Chromium: links that hold across the sidebar's pages, bad
link values named in the page, quick key presses on a slider that all count. One server for the module.
"""

import time
from urllib.parse import parse_qs, urlparse

import pytest
from browser_support import app_url, cut_texts, page, shoot, wait_quiet

pytestmark = pytest.mark.browser


def query(page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


def open_page(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector('[data-testid="stSidebar"] [data-testid="stSelectbox"]')
    wait_quiet(page)


def test_settings_stay_in_the_url_after_sidebar_navigation(page, app_url):
    open_page(page, app_url)  # the router runs once, as for a user who starts at Home
    page.goto(f"{app_url}/prune?ratio=60&criterion=l2&finetune_epochs=1")
    page.wait_for_selector("text=l2: just pruned")
    page.locator('[data-testid="stSidebarNav"] a', has_text="Filter-norm histories").click()
    page.wait_for_selector("text=Sort the heatmap by the final norm")
    wait_quiet(page)
    page.wait_for_timeout(500)
    settings = query(page)
    assert settings.get("ratio") == ["60"] and settings.get("criterion") == ["l2"]
    assert settings.get("layer") == ["conv1"]  # every setting, defaults too
    copied = page.url
    open_page(page, app_url)
    open_page(page, copied)  # the copied link, opened afresh, is the same view
    assert "In conv1 at 60%: l2 prunes 12 of 20 filters" in page.inner_text("main")


def test_bad_link_values_are_named_in_one_line_each_and_the_defaults_used(page, app_url):
    open_page(page, f"{app_url}/norms?ratio=abc&criterion=nonexistent&layer=conv9&norm=l3")
    text = page.inner_text("main")
    assert "ratio=abc ignored: a number from 0 to 95 in steps of 5" in text
    assert "criterion=nonexistent ignored: one of l1, l2," in text
    assert "layer=conv9 ignored: one of conv1, conv2" in text and "norm=l3 ignored: one of l1, l2" in text
    assert "In conv1 at 50%: l1 prunes 10 of 20 filters" in text  # every default
    assert query(page)["ratio"] == ["50"] and query(page)["criterion"] == ["l1"]
    for bad in ("33", "999", "-5"):
        open_page(page, f"{app_url}/norms?ratio={bad}")
        assert f"ratio={bad} ignored: a number from 0 to 95 in steps of 5" in page.inner_text("main")
        assert query(page)["ratio"] == ["50"]


# Every message from the server reaches the page this many ms late, as on a loaded server or a classroom's
# wifi: a key press then asks for its rerun while the page still shows the URL of two presses ago.
SLOW_LINK = """
const DELAY_MS = 400;
const listen = WebSocket.prototype.addEventListener;
WebSocket.prototype.addEventListener = function (type, listener, options) {
  const late = type === "message" ? (event) => setTimeout(() => listener.call(this, event), DELAY_MS) : listener;
  return listen.call(this, type, late, options);
};
"""


def settled(tab, thumb) -> tuple[str, str]:
    """The slider's value and the URL's ratio once they agree and have held for 2.5 s (a rerun that sends
    the slider back arrives within that)."""
    seen, since = None, time.monotonic()
    deadline = since + 90
    while time.monotonic() < deadline:
        now = (thumb.input_value(), query(tab)["ratio"][0])
        if now != seen:
            seen, since = now, time.monotonic()
        elif now[0] == now[1] and time.monotonic() - since > 2.5:
            break
        tab.wait_for_timeout(250)
    return seen


def test_quick_arrow_presses_on_the_slider_all_count(page, app_url):
    tab = page.context.browser.new_page(viewport={"width": 1400, "height": 900})  # the slow link for it alone
    try:
        tab.set_default_timeout(120_000)
        tab.add_init_script(SLOW_LINK)
        tab.goto(f"{app_url}/prune?ratio=50&finetune_epochs=1")
        tab.wait_for_selector("text=l1: just pruned")
        tab.wait_for_timeout(1000)
        thumb = tab.locator('[data-testid="stSlider"] input[type="range"]').first
        thumb.focus()
        for _ in range(4):
            thumb.press("ArrowLeft")
            tab.wait_for_timeout(150)  # a quick hand: each press before the previous press's rerun is back
        assert settled(tab, thumb) == ("30", "30")
    finally:
        tab.close()


def test_no_label_or_choice_is_cut_short_at_1280(page, app_url):
    page.set_viewport_size({"width": 1280, "height": 800})
    try:
        for link, button, shown in [
            ("/prune?mask=true&finetune_epochs=1", None, "Also by masking"),
            ("/hbfp", None, "Also run l1 and random"),
            ("/studies?subset_ratios=25&subset_ratios=50&subset_ratios=75&subset_ratios=90", None, "Equal fine-tuning"),
            ("/masks?n_masks=2&finetune_epochs=1", "Score 2 masks and retrain two", "Median, retrained"),
        ]:
            open_page(page, app_url + link)
            if button:
                page.get_by_role("button", name=button).click()
            page.wait_for_selector(f"text={shown}")
            assert cut_texts(page) == [], link
    finally:
        page.set_viewport_size({"width": 1400, "height": 900})
