"""Browser tests: Debian's headless Chromium from this box through nginx on the machine."""

import base64
import hashlib
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

#: Where the screenshots are kept (git-ignored: /test-results/).
ARTEFACTS = Path(__file__).resolve().parents[2] / "test-results" / "browser"
#: As root, with no network but loopback and the machine: nothing fetched in the background.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,800",
    "--disable-features=HttpsUpgrades",  # else Chromium may upgrade http:// itself, before nginx redirects it
]


def spki_sha256(pem):
    """Base64 SHA-256 of the first certificate's SubjectPublicKeyInfo in ``pem``, as Chromium pins it."""
    key = x509.load_pem_x509_certificate(pem).public_key()
    der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="module")
def browser(machine_address, tmp_path_factory):
    """Headless Chromium trusting only the machine's certificate (read over SSH), logging console and network."""
    pin = spki_sha256(Path(os.environ["REQUESTS_CA_BUNDLE"]).read_bytes())  # written by machine_address
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    options.add_argument(f"--ignore-certificate-errors-spki-list={pin}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def site(machine_address):
    """The site's base URL (no trailing slash)."""
    return f"https://{machine_address}"


@pytest.fixture(autouse=True)
def _screenshot(request, browser):
    """Keep a screenshot of the page each test ends on: test-results/browser/<test>.png."""
    yield
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTEFACTS / f"{request.node.name}.png"))
