"""Drives a real headless Chromium (through selenium and Debian's chromedriver) against ionlab's dashboard
while a fleet comes up, and prints what it saw as one JSON object; DashboardTests holds it to the acceptance
items. It waits, it does not judge: every observation is reported, and the Swift test decides.

Chromium is kept on loopback: no background networking, no component updates, and a resolver that finds
nothing but 127.0.0.1.
"""
import argparse
import http.server
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from headless_chromium import browser  # noqa: E402

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

parser = argparse.ArgumentParser()
parser.add_argument("--url", required=True)             # http://127.0.0.1:PORT
parser.add_argument("--token", required=True)
parser.add_argument("--ionlab", required=True)          # the ionlab binary
parser.add_argument("--state-dir", required=True)
parser.add_argument("--spec", required=True)            # the fleet brought up while the page is open
parser.add_argument("--fleet", required=True)
parser.add_argument("--attacker-port", type=int, required=True)
parser.add_argument("--screenshot", required=True)
args = parser.parse_args()

seen = {"errors": []}


def wait(driver, what, predicate, timeout=60):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: predicate(d))
    except TimeoutException:
        seen["errors"].append("timed out waiting for " + what)
        return None


def rows(driver):
    """Every VM row as the page shows it now."""
    return driver.execute_script("""
        return [...document.querySelectorAll('tr.vm')].map(row => ({
            name: row.dataset.vm, state: row.dataset.state, phase: row.dataset.phase, agent: row.dataset.agent,
            step: row.querySelector('.step').textContent, facts: row.querySelector('.facts').textContent,
            backend: row.querySelector('.backend').textContent,
            bars: Number(row.querySelector('.bars').dataset.bars || 0),
            seconds: Number(row.querySelector('.bars').dataset.seconds || 0),
            screen: !row.querySelector('.screen img').hidden }));""")


class Attacker(http.server.BaseHTTPRequestHandler):
    """Another origin on loopback (a different port is the same *site*, so SameSite cookies still go): its page
    tries a state change on the dashboard, with a form and with a no-CORS fetch."""

    def do_GET(self):
        vm = self.path.strip("/") or "none"
        page = f"""<!doctype html><html><body>
            <form id="f" method="post" action="{args.url}/api/vms/{vm}/restart"></form>
            <script>
              fetch("{args.url}/api/vms/{vm}/restart", {{method: "POST", mode: "no-cors", credentials: "include",
                    headers: {{"Content-Type": "text/plain"}}, body: "x"}}).finally(() => document.getElementById("f").submit());
            </script></body></html>"""
        body = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_):
        pass


def main():
    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", args.attacker_port), Attacker)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    driver = browser()
    fleet = None
    try:
        # Without the token: the page sends the browser to the login form, and the API answers 401.
        driver.get(args.url + "/")
        seen["unauthenticatedLanding"] = driver.current_url.replace(args.url, "")
        seen["unauthenticatedOverview"] = driver.execute_async_script(
            "const done = arguments[0]; fetch('/api/overview').then(r => done(r.status), e => done(String(e)));")
        driver.find_element(By.ID, "token").send_keys("0" * 64)
        driver.find_element(By.CSS_SELECTOR, "#login button").click()
        wait(driver, "the login form again", lambda d: "?wrong" in d.current_url, timeout=10)
        seen["wrongTokenLanding"] = driver.current_url.replace(args.url, "")
        seen["wrongTokenShown"] = driver.find_element(By.ID, "wrong").is_displayed()

        driver.find_element(By.ID, "token").send_keys(args.token)
        driver.find_element(By.CSS_SELECTOR, "#login button").click()
        wait(driver, "the dashboard", lambda d: d.current_url == args.url + "/", timeout=10)
        wait(driver, "the live event stream", lambda d: "on" in d.find_element(By.ID, "live").get_attribute("class"))
        seen["landing"] = driver.current_url.replace(args.url, "")
        driver.execute_script("window.ionlabNoReload = 'still here';")

        # Bring the fleet up while the page is open.
        environment = dict(os.environ, IONLAB_STATE_DIR=args.state_dir)
        fleet = subprocess.Popen([args.ionlab, "up", args.spec], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        history = {}

        def observe(driver):
            for row in rows(driver):
                history.setdefault(row["name"], []).append(row)
            return False

        def observe_fleet(driver):
            return [r for r in rows(driver) if r["name"].startswith(args.fleet + "-")]

        started = time.time()
        wait(driver, "rows of the fleet", lambda d: observe(d) or len([r for r in rows(d) if r["name"].startswith(args.fleet + "-")]) >= 2)
        wait(driver, "a live step event", lambda d: observe(d) or d.execute_script(
            "return !!document.querySelector('#events li[data-kind=\"step.done\"]')"), timeout=120)
        while fleet.poll() is None and time.time() - started < 180:
            observe(driver)
            time.sleep(0.2)
        # The page's refreshes after the last event: until no row of the fleet says it is running, at most 15 s
        # (the test then finds the stale row).
        settled = time.time() + 15
        while time.time() < settled and any(r["step"].startswith("running") for r in observe_fleet(driver)):
            time.sleep(0.2)
        observe(driver)
        seen["upExit"] = fleet.returncode
        seen["upOutput"] = (fleet.stdout.read() if fleet.stdout else "")[-2000:]
        seen["history"] = {name: [{k: r[k] for k in ("state", "phase", "step", "bars", "seconds", "agent")} for r in rows_seen]
                           for name, rows_seen in history.items()}
        seen["final"] = rows(driver)
        seen["noReload"] = driver.execute_script("return window.ionlabNoReload || null;")
        seen["events"] = driver.execute_script(
            "return [...document.querySelectorAll('#events li')].map(li => ({kind: li.dataset.kind, vm: li.dataset.vm, "
            "fleet: li.dataset.fleet, text: li.querySelector('.message').textContent, html: li.querySelector('.message').innerHTML}));")

        # The event filter: one VM's events only.
        vm = args.fleet + "-1"
        driver.execute_script("const s = document.getElementById('event-vm'); s.value = arguments[0]; s.dispatchEvent(new Event('change'));", vm)
        seen["filteredEventVMs"] = sorted(set(driver.execute_script(
            "return [...document.querySelectorAll('#events li')].filter(li => !li.hidden).map(li => li.dataset.vm);")))
        driver.execute_script("const s = document.getElementById('event-vm'); s.value = ''; s.dispatchEvent(new Event('change'));")

        # Screens: the test driver's domains have one.
        wait(driver, "a VM screen", lambda d: d.execute_script(
            "return [...document.querySelectorAll('.screen img')].some(i => !i.hidden && i.naturalWidth > 0);"), timeout=30)
        seen["screens"] = driver.execute_script(
            "return [...document.querySelectorAll('.screen img')].filter(i => !i.hidden && i.naturalWidth > 0).length;")
        driver.save_screenshot(args.screenshot)

        # A state change from another origin, with the session cookie: refused.
        driver.get(f"http://127.0.0.1:{args.attacker_port}/{args.fleet}-1")
        wait(driver, "the cross-origin form's answer", lambda d: "/api/vms/" in d.current_url, timeout=20)
        seen["crossOriginAnswer"] = driver.find_element(By.TAG_NAME, "body").text

        # The page's own restart button: allowed (the guard does not refuse everything).
        driver.get(args.url + "/")
        wait(driver, "the page again", lambda d: len(rows(d)) >= 2)
        driver.execute_script("window.confirm = () => true;")
        driver.find_element(By.CSS_SELECTOR, f'tr.vm[data-vm="{args.fleet}-2"] .restart').click()
        wait(driver, "the restart's answer", lambda d: d.find_element(By.ID, "notice").text not in ("", "…"), timeout=60)
        seen["restartNotice"] = driver.find_element(By.ID, "notice").text
    except Exception as error:  # reported, for the Swift test to show
        seen["errors"].append(f"{type(error).__name__}: {error}")
    finally:
        if fleet and fleet.poll() is None:
            fleet.terminate()
        driver.quit()
        attacker.shutdown()
    json.dump(seen, sys.stdout)


main()
