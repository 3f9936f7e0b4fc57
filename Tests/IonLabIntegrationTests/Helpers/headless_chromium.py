"""Debian's Chromium, headless, through selenium and Debian's chromedriver, kept on loopback: no background
networking, no component updates, and a resolver that finds nothing but 127.0.0.1. Shared by the browser tests."""
from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1600,1000",
                 "--no-first-run", "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-default-apps", "--disable-domain-reliability", "--no-pings", "--no-proxy-server",
                 "--disable-client-side-phishing-detection", "--disable-features=OptimizationHints,MediaRouter,Translate",
                 '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1']:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
