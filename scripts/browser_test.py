#!/usr/bin/env python3
"""Drives the Cloacina dashboard in headless Chromium (Debian's chromium and chromium-driver,
through Selenium): open a failed run and see its graph, error and attempts, start a run and watch it
complete (the pages follow the event stream), keep a task panel open across re-renders, cancel a run, create, edit and delete a schedule,
keep the token for the tab's session only, tell runs apart by their labels, check the runs page
fits a phone's width, upload a package with the file picker (a worker loads it), run its workflow,
drop a broken archive and see why it was refused, delete the package, and that the
Content-Security-Policy blocked nothing. Screenshots go to
--screenshots. Run by cloacina-server/tests/browser.rs against a database a real runner wrote."""

import argparse
import os
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--failed", required=True, help="id of a failed run")
    ap.add_argument("--error", required=True, help="text of its task's error")
    ap.add_argument("--screenshots", required=True)
    ap.add_argument("--archive", required=True, help="a .cloacina archive to upload")
    args = ap.parse_args()
    os.makedirs(args.screenshots, exist_ok=True)

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"]:
        options.add_argument(flag)
    # Console errors (a script error, a Content-Security-Policy violation) are read at the end.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    # The pages re-render themselves: an element found a moment ago may be gone; look again.
    wait = WebDriverWait(driver, 30, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException))
    shot = lambda name: driver.save_screenshot(os.path.join(args.screenshots, name))
    try:
        # The runs list shows the runs the runner wrote.
        driver.get(args.url + "#/runs")
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f'tr[data-run="{args.failed}"]')))
        shot("runs.png")

        # A failed run: its graph colours the task Failed, clicking it shows the error.
        driver.get(args.url + f"#/runs/{args.failed}")
        node = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, '.graph .node[data-status="Failed"]')))
        assert driver.find_element(By.ID, "run-error").text, "the run shows why it failed"
        node.click()
        error = wait.until(ec.visibility_of_element_located((By.ID, "task-error")))
        assert args.error in error.text, error.text
        # Its attempts: the first failed and was retried, the second failed for good.
        rows = driver.find_elements(By.CSS_SELECTOR, "#attempts tbody tr")
        outcomes = [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows]
        assert outcomes == ["retried", "failed"], outcomes
        shot("failed-run.png")
        # Its timeline: the task's two attempts as two bars, both failed colours, on one lane.
        lane = driver.find_element(By.CSS_SELECTOR, f'#timeline .lane[data-task="{node.get_attribute("data-task")}"]')
        bars = [b.get_attribute("data-outcome") for b in lane.find_elements(By.CSS_SELECTOR, "rect.bar")]
        assert bars == ["retried", "failed"], bars
        driver.execute_script("document.getElementById('timeline').scrollIntoView()")
        shot("timeline-failed.png")

        # The failing workflow's overview: its failed run in the chart, the queue empty.
        driver.get(args.url + "#/workflows/bad_flow")
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, '#runs-chart rect.seg[data-status="Failed"]')))
        assert "0 tasks ready" in driver.find_element(By.ID, "queue").text

        # The packages daemons recorded are listed on the packages page.
        driver.get(args.url + "#/packages")
        row = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-package="dashboard-demo"]')))
        cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
        assert cells[:4] == ["dashboard-demo", "1.0.0", "failed", ""], cells
        assert cells[6] == "the package did not compile: <b>bold</b>", cells  # first line, escaped

        # Upload a package with the file picker: a worker loads it (the page looks again until it
        # has); then start its workflow from the workflows page and watch the run complete.
        driver.find_element(By.ID, "package-file").send_keys(os.path.abspath(args.archive))
        loaded = 'tr[data-package="simple-packaged"] .status[data-status="loaded"]'
        WebDriverWait(driver, 240, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, loaded)))
        shot("packages.png")
        driver.get(args.url + "#/workflows")
        form = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'form.start[data-workflow="data_processing"]')))
        form.find_element(By.TAG_NAME, "button").click()
        wait.until(ec.alert_is_present()).accept()
        wait.until(lambda d: "#/runs/" in d.current_url)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'p .status[data-status="Completed"]')))
        shot("packaged-run.png")
        # Its timeline: one completed bar per task, the chain of three as the critical path.
        timeline = wait.until(ec.presence_of_element_located((By.ID, "timeline")))
        bars = [b.get_attribute("data-outcome") for b in timeline.find_elements(By.CSS_SELECTOR, "rect.bar")]
        assert bars == ["completed"] * 3, bars
        assert timeline.get_attribute("data-critical") == "collect_data,process_data,generate_report"
        assert len(timeline.find_elements(By.CSS_SELECTOR, "rect.bar.critical")) == 3
        driver.execute_script("arguments[0].scrollIntoView()", timeline)
        shot("timeline.png")

        # Drop a broken archive on the page: refused, with the reason.
        driver.get(args.url + "#/packages")
        wait.until(ec.presence_of_element_located((By.ID, "drop")))
        driver.execute_script("""
            const data = new DataTransfer();
            data.items.add(new File([new TextEncoder().encode("BZh9 not a package")], "broken.cloacina"));
            document.getElementById("drop").dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
        """)
        toast = lambda d: d.execute_script("return document.getElementById('toast').textContent")
        wait.until(lambda d: "not a package archive" in toast(d))

        # Delete the package (with confirmation): recorded removed. (The page first settles: the
        # failed upload re-renders it.)
        driver.get(args.url + "#/workflows")
        driver.get(args.url + "#/packages")
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, 'tr[data-package="simple-packaged"] button[data-delete-package]'))).click()
        wait.until(ec.alert_is_present()).accept()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-package="simple-packaged"] .status[data-status="removed"]')))

        # Start a run from the workflows page and watch it complete (the page refreshes itself).
        driver.get(args.url + "#/workflows")
        form = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'form.start[data-workflow="ok_flow"]')))
        area = form.find_element(By.NAME, "context")
        area.clear()
        area.send_keys('{"from": "browser"}')
        form.find_element(By.TAG_NAME, "button").click()
        wait.until(ec.alert_is_present()).accept()
        wait.until(lambda d: "#/runs/" in d.current_url)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'p .status[data-status="Completed"]')))
        assert "browser" in driver.find_element(By.ID, "input").text
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, '.graph .node[data-status="Completed"]')))
        shot("started-run.png")

        # Its workflow's overview, reached from the workflows page: completed runs in the chart,
        # each task's durations.
        driver.get(args.url + "#/workflows")
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, 'section[data-workflow="ok_flow"] h2 a'))).click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, '#runs-chart rect.seg[data-status="Completed"]')))
        rows = driver.find_elements(By.CSS_SELECTOR, "#durations-table tbody tr")
        assert rows and all(r.find_elements(By.TAG_NAME, "td")[1].text != "0" for r in rows), [r.text for r in rows]
        assert driver.find_elements(By.CSS_SELECTOR, "#durations g.task-durations"), "the durations are drawn"
        shot("overview.png")

        # Start the waiting workflow; open its task panel, which stays open while the page
        # refreshes itself; then cancel the run from its page.
        driver.get(args.url + "#/workflows")
        form = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'form.start[data-workflow="slow_flow"]')))
        form.find_element(By.TAG_NAME, "button").click()
        wait.until(ec.alert_is_present()).accept()
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, '.graph .node[data-status="Running"]'))).click()
        # The page re-renders on the run's event stream: pause and resume it behind the page's
        # back (two changes) and the page follows each.
        renders = lambda: int(driver.find_element(By.ID, "main").get_attribute("data-renders") or 0)
        run_id = driver.current_url.rsplit("/", 1)[-1]
        before = renders()
        driver.execute_script("fetch(`api/v1/runs/${arguments[0]}/pause`, { method: 'POST' })", run_id)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'p .status[data-status="Paused"]')))
        wait.until(lambda d: renders() >= before + 1)
        driver.execute_script("fetch(`api/v1/runs/${arguments[0]}/resume`, { method: 'POST' })", run_id)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'p .status[data-status="Running"]')))
        wait.until(lambda d: renders() >= before + 2)
        panel = driver.find_element(By.ID, "task-panel").text
        assert "attempts run" in panel, f"the task panel closed on refresh: {panel!r}"
        assert driver.find_elements(By.CSS_SELECTOR, ".graph .node.selected"), "the task stays selected"
        wait.until(ec.element_to_be_clickable((By.ID, "cancel"))).click()
        wait.until(ec.alert_is_present()).accept()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'p .status[data-status="Cancelled"]')))
        shot("cancelled-run.png")

        # Runs are told apart by their labels (not the time prefix every UUIDv7 of a moment shares).
        driver.get(args.url + "#/runs")
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "tr[data-run]")))
        labels = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "tr[data-run] td a")]
        assert len(labels) >= 3 and len(set(labels)) == len(labels), labels

        # Schedules: create, edit, delete from the page.
        driver.get(args.url + "#/schedules")
        form = wait.until(ec.presence_of_element_located((By.ID, "schedule-form")))
        form.find_element(By.NAME, "workflow").send_keys("ok_flow")
        form.find_element(By.NAME, "expression").send_keys("0 3 * * *")
        form.find_element(By.NAME, "timezone").send_keys("Europe/Berlin")
        form.find_element(By.ID, "schedule-save").click()
        row = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "tr[data-schedule]")))
        assert "0 3 * * *" in row.text and "Europe/Berlin" in row.text, row.text
        row.find_element(By.CSS_SELECTOR, "button[data-edit]").click()
        expression = driver.find_element(By.NAME, "expression")
        expression.clear()
        expression.send_keys("30 4 * * *")
        driver.find_element(By.ID, "schedule-save").click()
        wait.until(lambda d: "30 4 * * *" in d.find_element(By.CSS_SELECTOR, "tr[data-schedule]").text)
        shot("schedules.png")
        driver.find_element(By.CSS_SELECTOR, "tr[data-schedule] button[data-delete]").click()
        wait.until(ec.alert_is_present()).accept()
        wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "tr[data-schedule]"))

        # The token is kept for this tab's session only, never in localStorage.
        token = driver.find_element(By.ID, "token")
        token.send_keys("a-token-typed-in-the-page")
        driver.execute_script("arguments[0].dispatchEvent(new Event('change'))", token)
        stored = driver.execute_script("return [localStorage.length, sessionStorage.getItem('cloacina-token')]")
        assert stored == [0, "a-token-typed-in-the-page"], stored

        # A phone's width: nothing wider than the screen.
        driver.set_window_size(390, 844)
        driver.get(args.url + "#/runs")
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "tr[data-run]")))
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the runs page is {overflow}px wider than a phone"
        shot("runs-phone.png")
        # The broken archive's 400 is expected (the browser logs every failed request).
        expected = lambda e: e.get("source") == "network" and "/api/v1/packages" in e["message"] and "400" in e["message"]
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE" and not expected(e)]
        assert not errors, errors
        print("browser test: failed run, timelines, overviews, start and complete, panel across refreshes, cancel, schedules, token, labels, phone width, package upload, drop and delete, CSP: ok")
        return 0
    except Exception:
        shot("failure.png")
        raise
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
