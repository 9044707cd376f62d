"""What the ward tests read off the board, each in one script run in the page.

The board redraws its rows on every change from the stream and every 30 s: elements found in one
WebDriver call may be gone by the next (a stale element), so a reading of the rows happens inside
the page, at once."""

from selenium.webdriver.remote.webdriver import WebDriver

ROWS = """return [...document.querySelectorAll("#board tbody tr")].map(row => [
    row.getAttribute("data-patient-id"), row.getAttribute("data-news2"), row.lastElementChild.innerText.trim()])"""


def board(browser: WebDriver) -> list[tuple[str, str, str]]:
    """Each row's patient id, NEWS2 and due cell, top to bottom."""
    return [tuple(row) for row in browser.execute_script(ROWS)]


def rows(browser: WebDriver) -> list[tuple[str, str]]:
    """Each row's patient id and NEWS2, top to bottom."""
    return [(patient, news2) for patient, news2, _ in board(browser)]
