"""What users see in the Airflow UI, through a real api-server (and a real browser where there is one).

Two runs of the real DAG: one copies everything (and updates the manifest Asset), one fails
because BuildPass refuses a photo with a hostile validation message. Then ``airflow api-server``
with the SimpleAuthManager, a viewer and an admin: Chromium signs in as the viewer, opens the
failed run in the grid, clicks its "Copy report" tab and reads the report there; the API checks
cover the connection form metadata, the connection "Test" button and the Asset event.
Screenshots go to ``docs/``.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from sandbox.secrets_check import find_leaks
from sandbox.stack import ACC_CLIENT, BP_CLIENT, DAG_ID, Stack, _stop, _wait, free_ports

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1050",
)
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
DAY = datetime(2026, 4, 7, tzinfo=UTC)
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>&amp;'
USERS = {"viewer": ("viewer", secrets.token_urlsafe(12)), "admin": ("admin", secrets.token_urlsafe(12))}


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class Run:
    logical_date: datetime
    config: dict[str, Any]
    window_id: str
    report: dict[str, Any]
    run_id: str = ""  # `dags test` names runs after the wall clock: looked up by logical date


@dataclass
class Served:
    base: str
    ok: Run
    failed: Run
    rejected: str  # the photo BuildPass refused

    def token(self, role: str) -> str:
        user, password = USERS[role]
        response = requests.post(f"{self.base}/auth/token", json={"username": user, "password": password}, timeout=30)
        response.raise_for_status()
        return str(response.json()["access_token"])

    def get(self, path: str, role: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token(role)}"} if role else {}
        return requests.get(self.base + path, headers=headers, timeout=60)

    def report_path(self, run: Run) -> str:
        return f"/acc-buildpass/report/{DAG_ID}/{quote(run.run_id, safe='')}"


def _config(stack: Stack, projects: list[str], prefix: str) -> dict[str, Any]:
    config = stack.config(projects, prefix=prefix)
    config["retry"] = {"attempts": 4, "initial_wait": 0.1, "max_wait": 1, "max_retry_after": 5}
    return config


def _run(stack: Stack, start: datetime, end: datetime, config: dict[str, Any], expect_ok: bool) -> Run:
    from acc_buildpass.models import Window

    rc, output = stack.run_dag(start.isoformat(), end.isoformat(), config)
    assert (rc == 0) == expect_ok, output[-3000:]
    window_id = Window(start, end).id
    report = stack.report(config, window_id)
    assert report is not None, output[-3000:]
    return Run(datetime.fromisoformat(stack.last_logical_date), config, window_id, report)


def _run_ids(base: str, token: str) -> dict[datetime, str]:
    response = requests.get(
        f"{base}/api/v2/dags/{DAG_ID}/dagRuns",
        params={"limit": 100, "order_by": "-id"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    response.raise_for_status()
    return {datetime.fromisoformat(r["logical_date"]): r["dag_run_id"] for r in response.json()["dag_runs"]}


@pytest.fixture(scope="module")
def served(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # A project that copies cleanly (with photos skipped, each with its reason) over two days...
    clean, refused = str(uuid.uuid4()), str(uuid.uuid4())
    stack.seed_acc(clean, count=24, start=iso(DAY), end=iso(DAY + timedelta(days=2)), seed=31, deleted=3, videos=2)
    prefix = f"ui-{clean[:8]}"
    ok = _run(stack, DAY, DAY + timedelta(days=1), _config(stack, [clean], prefix), expect_ok=True)
    # ...and on the second day, with a second project, one photo BuildPass refuses with a hostile message.
    day2 = DAY + timedelta(days=1)
    stack.seed_acc(refused, count=6, start=iso(day2), end=iso(day2 + timedelta(days=1)), seed=32, deleted=1, videos=1)
    photos = stack.admin("acc", "GET", f"/_admin/photos?project_id={refused}")["photos"]
    rejected = next(p["id"] for p in photos if not p.get("deletedAt") and p["mediaType"] == "NORMAL")
    stack.admin("buildpass", "POST", "/_admin/reject", {"externalSourceId": rejected, "message": HOSTILE})
    try:
        config = _config(stack, [clean, refused], prefix)
        failed = _run(stack, day2, day2 + timedelta(days=1), config, expect_ok=False)
    finally:
        stack.admin("buildpass", "POST", "/_admin/reject", {"externalSourceId": rejected, "clear": True})

    home = tmp_path_factory.mktemp("api-server")
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps(dict(USERS.values())))
    port = free_ports(1)[0]
    base = f"http://127.0.0.1:{port}"
    env = stack.env(failed.config)
    env.update(
        {
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{user}:{role}" for role, (user, _) in USERS.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        }
    )
    with open(home / "api-server.log", "wb") as log:
        proc = subprocess.Popen(
            [stack.bin("airflow"), "api-server", "-H", "127.0.0.1", "-p", str(port), "-w", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait("airflow api-server", lambda: requests.get(f"{base}/api/v2/monitor/health", timeout=5).ok, 180, proc)
        served = Served(base=base, ok=ok, failed=failed, rejected=rejected)
        run_ids = _run_ids(base, served.token("viewer"))
        for run in (ok, failed):
            run.run_id = run_ids[run.logical_date]
        yield served
    finally:
        _stop(proc, 20)


# -- the report page --------------------------------------------------------------------------


def test_the_report_page_needs_a_user_allowed_to_read_the_runs(served: Served) -> None:
    anonymous = served.get(served.report_path(served.failed))
    assert anonymous.status_code == 401
    assert served.failed.report["projects"][0]["acc_project_id"] not in anonymous.text

    page = served.get(served.report_path(served.failed), "viewer")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for project in served.failed.report["projects"]:
        assert project["acc_project_id"] in page.text
    assert "&lt;script&gt;" in page.text and "<script" not in page.text

    # The report names the run that wrote it: this one, not a later run of the same window.
    assert served.failed.report["run_id"] == served.failed.run_id and 'id="superseded"' not in page.text
    clean = served.get(served.report_path(served.ok), "viewer").text
    assert f"Every eligible photo is in BuildPass ({served.ok.report['totals']['eligible']})" in clean

    missing = served.get(f"/acc-buildpass/report/{DAG_ID}/no-such-run", "viewer")
    assert missing.status_code == 404 and "No run no-such-run" in missing.text


def test_a_run_that_copied_everything_updates_the_manifest_asset(served: Served, stack: Stack) -> None:
    response = served.get("/api/v2/assets/events?name_pattern=acc_buildpass_manifest&limit=100", "viewer")
    response.raise_for_status()
    ours = [
        e for e in response.json()["asset_events"] if e["source_run_id"] in (served.ok.run_id, served.failed.run_id)
    ]
    # The failed run emits no event: a downstream DAG only ever sees windows copied in full.
    assert [e["source_run_id"] for e in ours] == [served.ok.run_id]
    (event,) = ours
    # A window of at most batch_size photos is copied, and announced, by extract; a bigger one by report.
    small = served.ok.report["totals"]["eligible"] <= served.ok.config["batch_size"]
    assert event["name"] == "acc_buildpass_manifest"
    assert event["source_task_id"] == ("extract" if small else "report")
    extra, prefix = event["extra"], served.ok.config["staging_prefix"]
    assert extra["bucket"] == stack.bucket
    assert extra["report"] == f"{prefix}/windows/{served.ok.window_id}/report.json"
    assert extra["totals"] == served.ok.report["totals"]
    assert extra["manifests"], "no manifest key in the event"
    s3 = stack.s3()
    for key in [extra["report"], *extra["manifests"]]:
        assert key.startswith(f"{prefix}/windows/{served.ok.window_id}/")
        s3.head_object(Bucket=extra["bucket"], Key=key)  # raises when the key names nothing
    issued = stack.admin("acc", "GET", "/_admin/secrets") + stack.admin("buildpass", "GET", "/_admin/secrets")
    known = [*issued, stack.s3_key, stack.s3_secret, ACC_CLIENT[1], BP_CLIENT[1], stack.refresh_token]
    assert find_leaks(known, {"asset event extra": json.dumps(extra)}) == []


# -- connections ------------------------------------------------------------------------------


def test_the_connection_form_offers_both_types_with_their_labels(served: Served) -> None:
    assert served.get("/ui/connections/hook_meta").status_code == 401
    response = served.get("/ui/connections/hook_meta", "admin")
    response.raise_for_status()
    meta = {hook["connection_type"]: hook for hook in response.json()}
    acc, buildpass = meta["acc"], meta["buildpass"]
    assert acc["hook_name"] == "Autodesk Construction Cloud" and buildpass["hook_name"] == "BuildPass"
    for hook in (acc, buildpass):
        fields = hook["standard_fields"]
        assert (fields["host"]["title"], fields["login"]["title"], fields["password"]["title"]) == (
            "API base URL",
            "Client ID",
            "Client secret",
        )
        assert fields["port"]["hidden"] is True
    assert acc["standard_fields"]["host"]["placeholder"] == "https://developer.api.autodesk.com"
    refresh = acc["extra_fields"]["refresh_token"]["schema"]
    assert refresh["title"] == "Refresh token" and refresh["format"] == "password"
    assert acc["extra_fields"]["token_store"]["schema"]["title"] == "Token store directory"
    region = buildpass["extra_fields"]["region_id"]["schema"]
    assert region["title"] == "Region" and region["enum"] == ["au1", "us1", None]


def test_the_connection_test_button_signs_in_to_both_apis(served: Served) -> None:
    def test(role: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(
            f"{served.base}/api/v2/connections/test",
            json=body,
            headers={"Authorization": f"Bearer {served.token(role)}"},
            timeout=60,
        )

    for conn_type, expected in (("acc", "ACC accepted"), ("buildpass", "BuildPass accepted")):
        response = test("admin", {"connection_id": f"{conn_type}_default", "conn_type": conn_type})
        assert response.status_code == 200, response.text
        assert response.json()["status"] is True and expected in response.json()["message"]

        wrong = "wrong-" + secrets.token_hex(6)
        body = {"connection_id": f"{conn_type}_default", "conn_type": conn_type, "password": wrong}
        refused = test("admin", body).json()
        assert refused["status"] is False and "sign-in failed" in refused["message"]
        assert wrong not in refused["message"]

    # Testing reads the stored secrets: a viewer may not.
    assert test("viewer", {"connection_id": "acc_default", "conn_type": "acc"}).status_code == 403


# -- in a browser -----------------------------------------------------------------------------


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (Debian packages chromium, chromium-driver)")
def test_a_user_signs_in_and_reads_the_report_in_the_run_tab(served: Served) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    assert CHROMEDRIVER.exists(), "chromium is installed without chromedriver: install Debian's chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
    options.add_argument(f"--user-data-dir={profile.name}")
    browser = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    wait = WebDriverWait(browser, 60)
    report = served.failed.report
    try:
        # Sign in through the login page, as a viewer.
        browser.get(served.base + "/")
        user, password = USERS["viewer"]
        wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys(user)
        browser.find_element(By.NAME, "password").send_keys(password)
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button[type=submit]"))).click()
        wait.until(lambda b: "/auth/login" not in b.current_url)

        # The failed run in the grid, with its tabs.
        browser.get(f"{served.base}/dags/{DAG_ID}/runs/{quote(served.failed.run_id, safe='')}")
        tab = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "a[title='Copy report']")))
        wait.until(ec.presence_of_element_located((By.XPATH, "//*[normalize-space()='Failed']")))
        DOCS.mkdir(exist_ok=True)
        browser.save_screenshot(str(DOCS / "grid.png"))

        # Its "Copy report" tab: the report, inside Airflow's page.
        tab.click()
        wait.until(ec.frame_to_be_available_and_switch_to_it((By.CSS_SELECTOR, "iframe[title='Copy report']")))
        wait.until(ec.presence_of_element_located((By.ID, "projects")))
        totals = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#projects tfoot td")]
        keys = ("found", "skipped", "eligible", "downloaded", "created", "present", "failed")
        assert totals == ["Total", "", *(str(report["totals"][k]) for k in keys)]
        rows = [
            [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in browser.find_elements(By.CSS_SELECTOR, "#projects tbody tr")
        ]
        assert [r[0] for r in rows] == [p["acc_project_id"] for p in report["projects"]]
        text = browser.find_element(By.TAG_NAME, "body").text
        assert "1 photo(s) could not be copied" in text
        reasons = {reason for p in report["projects"] for reason in p["skipped"]}
        assert "mediaType VIDEO not copied" in reasons and all(reason in text for reason in reasons)
        # The refused photo, with BuildPass's message shown as text: nothing of it ran or loaded.
        failed = browser.find_element(By.CSS_SELECTOR, "#failed tbody tr").text
        assert served.rejected in failed and HOSTILE in failed
        assert browser.find_elements(By.TAG_NAME, "img") == []
        assert browser.execute_script("return window.__pwned === undefined")
        browser.switch_to.default_content()
        assert "plugin/acc-buildpass-report" in browser.current_url
        browser.save_screenshot(str(DOCS / "report.png"))
    finally:
        browser.quit()
        profile.cleanup()
