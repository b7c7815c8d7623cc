#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Cockpit page in a real browser.

Debian's cockpit-ws serves packaging/cockpit/kmodd on 127.0.0.1 (a local session: no login)
with its bridge's system bus pointed at a private dbus-daemon, where kmodd runs in sandbox
mode on a module tree of the test fixtures. Headless Chromium, driven by Selenium, checks
that the page lists what `kmodctl list` lists, loads a module with the page and sees it in
both, shows a module linked into the tree without a reload, explains a module, unloads it,
and says so when kmodd is not running. Screenshots go to the output directory.

Usage: cockpit_page_test.py BUILD_DIR SOURCE_DIR OUTPUT_DIR
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

RELEASE = "6.1.0-page"
TIMEOUT = 20


class Failure(Exception):
    pass


def wait_until(what, check, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as error:  # the page may be between two renders
            last = error
        time.sleep(0.1)
    raise Failure(f"timed out waiting for {what} (last: {last!r})")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class World:
    """The private bus, the tree, kmodd and cockpit-ws."""

    def __init__(self, build, source, output):
        self.build = build
        self.source = source
        self.output = output
        self.dir = tempfile.mkdtemp(prefix="kmodd-page-")
        self.kmodctl = os.path.join(build, "bin/kmodctl")
        self.fixtures = os.path.join(build, "tests/fixtures/modules")
        self.processes = {}
        self.socket = os.path.join(self.dir, "bus")
        self.address = "unix:path=" + self.socket
        self.module_dir = os.path.join(self.dir, "root/lib/modules", RELEASE)
        os.makedirs(os.path.join(self.module_dir, "kernel"))
        for name in ("mod1", "mod2", "mod3", "crc_helper", "blockdev"):
            shutil.copy(os.path.join(self.fixtures, name + ".ko"),
                        os.path.join(self.module_dir, "kernel"))

    def spawn(self, key, args, env=None, log=None):
        out = open(os.path.join(self.dir, (log or key) + ".log"), "ab")
        self.processes[key] = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                               env=env, start_new_session=True)

    def stop(self, key):
        process = self.processes.pop(key, None)
        if process and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def start_bus(self):
        config = os.path.join(self.dir, "bus.conf")
        with open(config, "w") as file:
            file.write(BUS_CONFIG.format(socket=self.socket))
        self.spawn("bus", ["dbus-daemon", "--config-file=" + config, "--nofork"])
        wait_until("the private bus", lambda: os.path.exists(self.socket))

    def start_kmodd(self):
        self.spawn("kmodd", [
            os.path.join(self.build, "bin/kmodd"), "--bus", self.address,
            "--modules-dir", os.path.join(self.dir, "root/lib/modules"),
            "--kernel-release", RELEASE, "--sandbox-kernel", os.path.join(self.dir, "sandbox"),
            "--depmod-config", "/dev/null", "--modprobe-config", "/dev/null", "--cmdline", "",
            "--no-durable", "--debounce-ms", "20", "--config", "/dev/null"])
        wait_until("kmodd on the bus", lambda: self.ctl("status", check=False).returncode == 0)

    def start_cockpit(self):
        # The page as an installed package would be: <data dir>/cockpit/kmodd.
        data = os.path.join(self.dir, "share")
        os.makedirs(os.path.join(data, "cockpit"))
        os.symlink(os.path.join(self.source, "packaging/cockpit/kmodd"),
                   os.path.join(data, "cockpit/kmodd"))
        env = dict(os.environ)
        env["XDG_DATA_DIRS"] = data + ":/usr/share"
        env["XDG_CONFIG_DIRS"] = os.path.join(self.dir, "etc")
        env["DBUS_SYSTEM_BUS_ADDRESS"] = self.address
        self.port = free_port()
        self.spawn("cockpit", ["/usr/lib/cockpit/cockpit-ws", "--no-tls", "--address",
                               "127.0.0.1", "--port", str(self.port),
                               "--local-session=/usr/bin/cockpit-bridge"], env=env)

        def listening():
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", self.port)) == 0
        wait_until("cockpit-ws", listening)

    def ctl(self, *args, check=True):
        result = subprocess.run([self.kmodctl, "--bus", self.address, *args],
                                capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise Failure(f"kmodctl {' '.join(args)}: {result.stderr}")
        return result

    def listed(self):
        return [row["name"] for row in json.loads(self.ctl("list", "--json").stdout)]

    def close(self):
        for key in list(self.processes):
            self.stop(key)
        for name in ("kmodd", "cockpit"):
            log = os.path.join(self.dir, name + ".log")
            if os.path.exists(log):
                shutil.copy(log, os.path.join(self.output, name + ".log"))
        shutil.rmtree(self.dir, ignore_errors=True)


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    service = ChromeService(executable_path="/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service)


def page_rows(driver):
    return [row.get_attribute("data-module")
            for row in driver.find_elements(By.CSS_SELECTOR, "#loaded tbody tr")]


def run(world, driver):
    shots = []

    def shot(name):
        path = os.path.join(world.output, name + ".png")
        driver.save_screenshot(path)
        shots.append(path)

    # Loaded before the page opens, by kmodd: blockdev.
    world.ctl("load", "blockdev")
    driver.get(f"http://127.0.0.1:{world.port}/cockpit/@localhost/kmodd/index.html")
    wait_until("the list", lambda: page_rows(driver) == world.listed())
    summary = driver.find_element(By.ID, "summary").text
    if f"Kernel {RELEASE}: 5 modules" not in summary:
        raise Failure(f"summary says {summary!r}")
    shot("01-list")

    # A load through the page appears in the page and in kmodctl list.
    driver.find_element(By.ID, "load-name").send_keys("mod2")
    driver.find_element(By.ID, "load-button").click()
    wait_until("mod2 in the page", lambda: "mod2" in page_rows(driver))
    if "mod2" not in world.listed():
        raise Failure("the page's load is not in kmodctl list")
    wait_until("the same list", lambda: sorted(page_rows(driver)) == sorted(world.listed()))
    origins = {row.get_attribute("data-module"):
               row.find_elements(By.TAG_NAME, "td")[4].text
               for row in driver.find_elements(By.CSS_SELECTOR, "#loaded tbody tr")}
    if origins.get("mod2") != "explicit" or origins.get("mod1") != "dependency":
        raise Failure(f"origins in the page: {origins}")
    shot("02-loaded-mod2")

    # The details of a dependency: why, reverse dependencies, unload plan.
    driver.find_element(By.CSS_SELECTOR, "#loaded tbody tr[data-module='mod1']").click()
    why = wait_until("mod1's explanation", lambda: driver.find_element(
        By.ID, "details-why").text if "as a dependency of 'mod2'" in driver.find_element(
            By.ID, "details-why").text else None)
    if "asked for it" not in why:
        raise Failure(f"the chain does not reach who asked: {why!r}")
    holders = driver.find_element(By.ID, "details-holders").text
    if "mod2" not in holders:
        raise Failure(f"holders of mod1: {holders!r}")
    shot("03-details-mod1")

    # Filtering.
    driver.find_element(By.ID, "filter").send_keys("dependency")
    wait_until("the filtered list",
               lambda: set(page_rows(driver)) == {"mod1", "mod3", "crc_helper"} or None)
    driver.find_element(By.ID, "filter").clear()
    driver.execute_script("document.getElementById('filter').dispatchEvent(new Event('input'))")

    # A module linked into the tree shows up in a search without a reload.
    search = driver.find_element(By.ID, "search")
    search.send_keys("mod_dash")
    search.submit()
    wait_until("no match yet", lambda: "No module matches" in driver.find_element(
        By.ID, "search-results").text)
    outside = os.path.join(world.dir, "home/dev")
    os.makedirs(outside)
    shutil.copy(os.path.join(world.fixtures, "mod_dash.ko"), os.path.join(outside, "mod-dash.ko"))
    os.makedirs(os.path.join(world.module_dir, "extra"))
    os.symlink(os.path.join(outside, "mod-dash.ko"),
               os.path.join(world.module_dir, "extra/mod-dash.ko"))
    wait_until("the linked module in the results", lambda: driver.find_elements(
        By.CSS_SELECTOR, "#search-results li[data-module='mod_dash']"))
    wait_until("the new count", lambda: "6 modules" in driver.find_element(By.ID, "summary").text)
    shot("04-linked-module-found")

    # Unload through the page: mod2 and what was loaded for it go.
    driver.find_element(By.CSS_SELECTOR, "#loaded tbody tr[data-module='mod2']").click()
    wait_until("the unload plan", lambda: "mod1" in driver.find_element(
        By.ID, "details-unload-plan").text)
    driver.find_element(By.ID, "details-unload").click()
    wait_until("mod2 gone", lambda: "mod2" not in page_rows(driver))
    if world.listed() != ["blockdev"]:
        raise Failure(f"after the unload kmodctl lists {world.listed()}")
    shot("05-unloaded")

    # kmodd stops: the page says so; it comes back: the page follows.
    world.stop("kmodd")
    wait_until("the not-running notice", lambda: driver.find_element(
        By.ID, "unavailable").is_displayed())
    shot("06-kmodd-not-running")
    world.start_kmodd()
    wait_until("the list again", lambda: driver.find_element(By.ID, "main").is_displayed() and
               page_rows(driver) == world.listed())
    shot("07-kmodd-back")
    return shots


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    build, source, output = (os.path.abspath(arg) for arg in sys.argv[1:])
    os.makedirs(output, exist_ok=True)
    world = World(build, source, output)
    driver = None
    try:
        world.start_bus()
        world.start_kmodd()
        world.start_cockpit()
        driver = browser()
        shots = run(world, driver)
        for path in shots:
            print("screenshot:", path)
        print("cockpit page: every check passed")
        return 0
    except Exception:  # report, keep the page as it was, fail
        traceback.print_exc()
        if driver:
            driver.save_screenshot(os.path.join(output, "failure.png"))
            with open(os.path.join(output, "failure.html"), "w") as file:
                file.write(driver.page_source)
            for entry in driver.get_log("browser"):
                print("browser:", entry, file=sys.stderr)
        return 1
    finally:
        if driver:
            driver.quit()
        world.close()


if __name__ == "__main__":
    sys.exit(main())
