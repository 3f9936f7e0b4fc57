"""Opens a fleet's report (one self-contained HTML file) in a real headless Chromium and prints what it shows as
one JSON object: its title, each picture (loaded, its size), each verdict line, the timeline's rows, whether any
script or frame is on the page, and what the browser's console said (a policy violation shows there).
DashboardTests holds it to the report's promises; this reports, it does not judge.

  report_browser.py FILE.html [--screenshot FILE.png]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from headless_chromium import browser  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("report")
parser.add_argument("--screenshot")
args = parser.parse_args()

driver = browser()
try:
    driver.get("file://" + os.path.abspath(args.report))
    seen = driver.execute_script("""
        const images = [...document.images].map(i => ({alt: i.alt, loaded: i.complete && i.naturalWidth > 0,
                                                      width: i.naturalWidth, height: i.naturalHeight,
                                                      caption: i.parentElement.querySelector('figcaption')?.textContent || ''}));
        return {title: document.title,
                sections: [...document.querySelectorAll('section.vm')].map(s => s.id),
                images,
                verdicts: [...document.querySelectorAll('ul.verdicts li')].map(li => li.textContent),
                timelineRows: document.querySelectorAll('table.timeline tr').length - document.querySelectorAll('table.timeline').length,
                scripts: document.querySelectorAll('script').length,
                frames: document.querySelectorAll('iframe, frame, object, embed').length,
                injected: document.querySelectorAll('#injected').length,
                text: document.body.innerText};""")
    seen["console"] = [entry["message"] for entry in driver.get_log("browser")]
    if args.screenshot:
        driver.save_screenshot(args.screenshot)
    print(json.dumps(seen))
finally:
    driver.quit()
